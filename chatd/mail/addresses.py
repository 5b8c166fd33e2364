"""Reply addresses: `reply+<token>@<[email] reply_domain>`, one per recipient and order.

The token is a random id that the store keeps (whose it is, for which order,
revoked or not) followed by a truncated HMAC-SHA256 of that id under a key
derived from `[auth] secret`: a forged or mistyped address is refused without
a store read, and no address can be made without the secret. Both halves are
lowercase base32 (a-z, 2-7), so an address survives mail systems that fold the
case of local parts; it is read case-insensitively.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from collections.abc import Callable

import msgspec

from chatd.errors import NotFound
from chatd.store.base import Store

PREFIX = "reply+"
ID_BYTES = 10  # 80 random bits: 16 characters
MAC_BYTES = 10  # 80 bits of the HMAC: 16 characters
TOKEN_RE = re.compile(r"[a-z2-7]{32}")  # id + mac; the local part is 6 + 32 = 38 characters (at most 64)


def b32(raw: bytes) -> str:
    """Lowercase base32 without padding."""
    return base64.b32encode(raw).decode("ascii").rstrip("=").lower()


def new_token_id() -> str:
    return b32(secrets.token_bytes(ID_BYTES))


def derive_key(secret: str) -> bytes:
    """The signing key: `[auth] secret` itself never signs two kinds of thing."""
    return hmac.new(secret.encode(), b"chatd reply addresses v1", hashlib.sha256).digest()


class NotOurDomain(NotFound):
    """Mail for another domain: this listener relays nothing."""


class NotAReplyAddress(NotFound):
    """A local part of the reply domain that is not `reply+<token>`."""


class InvalidToken(NotFound):
    """A token with a wrong signature, unknown, revoked, or whose user holds no slot now."""


class Recipient(msgspec.Struct, frozen=True):
    """Who a reply address posts as, checked against the order now."""

    token: str  # the token's id in the store
    user_id: str
    name: str
    role: str  # their slot on the order: buyer, supplier, sales_rep
    order_id: str


class ReplyAddresses:
    """Mint (`address_for`) and read (`recipient`) reply addresses."""

    def __init__(self, store: Store, secret: str, domain: str, new_id: Callable[[], str] = new_token_id) -> None:
        self.store = store
        self.domain = domain.lower()  # [email] reply_domain
        self._key = derive_key(secret)
        self._new_id = new_id

    def _mac(self, token_id: str) -> str:
        return b32(hmac.new(self._key, token_id.encode(), hashlib.sha256).digest()[:MAC_BYTES])

    def address(self, token_id: str) -> str:
        return f"{PREFIX}{token_id}{self._mac(token_id)}@{self.domain}"

    async def address_for(self, user_id: str, order_id: str) -> str:
        """The Reply-To address of `user_id` for `order_id`: the same one each time
        until it is revoked, then a new one. `not_found` unless the user holds a
        participant slot (buyer, supplier, sales rep) on the order."""
        token_id = await self.store.mint_reply_token(user_id, order_id, self._new_id())
        if token_id is None:
            raise NotFound("no such order, or the user holds no participant slot on it", ref=order_id)
        return self.address(token_id)

    async def reply_to(self, user_id: str, order_id: str) -> str | None:
        """`address_for`, or None when the user holds no slot on the order (the
        Reply-To of a notification: without one the mail goes out all the same)."""
        try:
            return await self.address_for(user_id, order_id)
        except NotFound:
            return None

    def token_id(self, address: str) -> str:
        """The token id of a reply address of this domain, its signature checked
        (any case); raises NotOurDomain, NotAReplyAddress or InvalidToken."""
        local, at, domain = address.strip().rpartition("@")
        if not at or domain.lower().rstrip(".") != self.domain:
            raise NotOurDomain(f"relay access denied: this server takes mail for reply addresses @{self.domain} only")
        local = local.lower()
        if local.startswith('"') and local.endswith('"') and len(local) > 1:
            local = local[1:-1]
        if not local.startswith(PREFIX):
            raise NotAReplyAddress(f"no such mailbox: only {PREFIX}<token>@{self.domain} addresses take mail here")
        token = local[len(PREFIX) :]
        half = len(token) // 2
        if not TOKEN_RE.fullmatch(token) or not hmac.compare_digest(token[half:], self._mac(token[:half])):
            raise InvalidToken(_INVALID)
        return token[:half]

    async def recipient(self, address: str) -> Recipient:
        """Whom `address` posts as: a live token whose user holds a slot on its order now."""
        token_id = self.token_id(address)
        token = await self.store.reply_token(token_id)
        if token is None or token.revoked_ts is not None:
            raise InvalidToken(_INVALID)
        order = await self.store.get_order(token.order_id)
        role = order.roles().get(token.user_id) if order is not None else None
        if order is None or role is None:  # left the slot (its revocation may be on its way)
            raise InvalidToken(_INVALID)
        person = {"buyer": order.buyer, "supplier": order.supplier}.get(role) or order.sales_rep
        assert person is not None  # the role came from one of the slots
        return Recipient(token_id, token.user_id, person.name, role, order.id)

    async def revoke(self, user_id: str, order_id: str) -> bool:
        """Revoke the user's live address for the order (also done by the store when
        they leave their slot); whether there was one."""
        return await self.store.revoke_reply_tokens(order_id, [user_id]) > 0


_INVALID = "this reply address is not valid (revoked or unknown): reply in the chat instead"
