"""chatd.config: the relay section, `[relay] url` and CHATD_RELAY_URL, and the old names
`[broker]` / CHATD_BROKER_URL still read (with a warning) for one release."""

from __future__ import annotations

import logging

import pytest

from chatd import config

SECRETS = {"CHATD_AUTH_SECRET": "s" * 32, "CHATD_API_KEY": "k" * 24}
URL = "redis://127.0.0.1:6399/0"


def load(tmp_path, toml: str, **env):
    path = tmp_path / "config.toml"
    path.write_text(toml)
    return config.load(path, {**SECRETS, **env})


def deprecations(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "chatd.config" and r.levelno == logging.WARNING]


def test_relay_section(tmp_path, caplog):
    assert load(tmp_path, f'[relay]\nurl = "{URL}"\n').relay.url == URL
    assert load(tmp_path, "").relay.url == ""
    assert deprecations(caplog) == []


def test_broker_section_is_read_as_relay_with_a_warning(tmp_path, caplog):
    caplog.set_level(logging.WARNING, "chatd.config")
    assert load(tmp_path, f'[broker]\nurl = "{URL}"\n').relay.url == URL
    assert deprecations(caplog) == ["config: [broker] is deprecated, rename it to [relay]"]


def test_broker_and_relay_sections_together_are_refused(tmp_path):
    with pytest.raises(ValueError, match=r"keep only \[relay\]"):
        load(tmp_path, f'[broker]\nurl = "{URL}"\n[relay]\nurl = "{URL}"\n')


def test_relay_url_from_the_environment(tmp_path, caplog):
    other = "redis://127.0.0.1:6400/1"
    assert load(tmp_path, f'[relay]\nurl = "{URL}"\n', CHATD_RELAY_URL=other).relay.url == other
    assert deprecations(caplog) == []


def test_old_environment_name_is_read_with_a_warning(tmp_path, caplog):
    caplog.set_level(logging.WARNING, "chatd.config")
    assert load(tmp_path, "", CHATD_BROKER_URL=URL).relay.url == URL
    assert deprecations(caplog) == ["config: CHATD_BROKER_URL is deprecated, use CHATD_RELAY_URL"]
    other = "redis://127.0.0.1:6400/1"
    assert load(tmp_path, "", CHATD_BROKER_URL=URL, CHATD_RELAY_URL=other).relay.url == other


def test_email_section_defaults_and_checks(tmp_path):
    email = load(tmp_path, "").email
    assert (email.reply_domain, email.inbound_host, email.inbound_port, email.max_message_bytes) == (
        "",
        "127.0.0.1",
        0,
        10 * 1024 * 1024,
    )
    got = load(tmp_path, '[email]\nreply_domain = "Reply.Shop.Example"\ninbound_port = 2525\n').email
    assert (got.reply_domain, got.inbound_port) == ("reply.shop.example", 2525)
    for bad, match in (
        ('reply_domain = "reply@shop"', "domain name"),
        ('reply_domain = "a..b"', "domain name"),
        ("inbound_port = 2525", "needs reply_domain"),
        ('reply_domain = "r.test"\ninbound_port = 70000', "inbound_port"),
        ('reply_domain = "r.test"\nmax_message_bytes = 10', "max_message_bytes"),
    ):
        with pytest.raises(ValueError, match=match):
            load(tmp_path, f"[email]\n{bad}\n")
