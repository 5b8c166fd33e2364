"""chatd.mail.addresses without a store: the address format, the signature, case."""

from __future__ import annotations

import pytest

from chatd.mail.addresses import InvalidToken, NotAReplyAddress, NotOurDomain, ReplyAddresses, new_token_id

DOMAIN = "reply.shop.test"


def addresses(secret: str = "s" * 32) -> ReplyAddresses:
    return ReplyAddresses(None, secret, DOMAIN)  # type: ignore[arg-type] - no store needed here


def test_an_address_is_short_lowercase_and_reads_back_in_any_case():
    a = addresses()
    token_id = new_token_id()
    address = a.address(token_id)
    local, domain = address.split("@")
    assert domain == DOMAIN and local.startswith("reply+") and len(local) == 38 <= 64
    assert local == local.lower() and set(local[6:]) <= set("abcdefghijklmnopqrstuvwxyz234567")
    for variant in (address, address.upper(), f'"{local}"@{DOMAIN.upper()}.', f" {address} "):
        assert a.token_id(variant) == token_id


def test_a_token_is_refused_without_the_right_signature():
    a, other = addresses(), addresses("another secret, another key....")
    token_id = new_token_id()
    forged = other.address(token_id)
    with pytest.raises(InvalidToken):
        a.token_id(forged)
    good = a.address(token_id)
    local, domain = good.split("@")
    for bad in (local[:-1] + ("b" if local[-1] == "a" else "a"), local[:-2], local + "a", "reply+" + "1" * 32):
        with pytest.raises(InvalidToken):
            a.token_id(f"{bad}@{domain}")


def test_other_domains_and_mailboxes_are_not_reply_addresses():
    a = addresses()
    good = a.address(new_token_id())
    with pytest.raises(NotOurDomain):
        a.token_id(good.replace(DOMAIN, "elsewhere.test"))
    with pytest.raises(NotOurDomain):
        a.token_id("no-at-sign")
    with pytest.raises(NotAReplyAddress):
        a.token_id(f"postmaster@{DOMAIN}")
