"""Connection tokens: HS256 JWTs signed by the host platform (PyJWT).

The clock and the secret are passed in, so this is testable without waiting.
"""

from __future__ import annotations

import time
from typing import Any, Literal

import jwt

from chatd import contact_filter
from chatd.auth.permissions import CONTACT_FILTERED, ROLES
from chatd.errors import InvalidSignature, Unauthorized
from chatd.wire import TOKEN_CHARS

MAX_ID_CHARS = 200  # sub: an id, refused past it (cutting it could name someone else)
MAX_NAME_CHARS = 200  # name: display only, cut to it (it is copied into every message)
MAX_EXP = 253_402_300_799  # 9999-12-31T23:59:59Z: an `exp` past it (or NaN, infinity) is no time at all

SIGNED_ELSEWHERE = (
    "token signed with another secret: sign tokens with the [auth] secret this server has (env CHATD_AUTH_SECRET)"
)

Orders = Literal["*"] | frozenset[str] | None  # a bot's claim: every order, these orders; None for people


class Identity:
    """A verified token: the user, their role, a bot's order claim, expiry (s), and
    `slot_name`: the name as it shows from a buyer's, supplier's or sales rep's slot
    (contact details masked unless the filter is off), for a staff or bot token
    whose id holds one; a participant's `name` is that already."""

    __slots__ = ("id", "name", "role", "orders", "exp", "slot_name")

    def __init__(self, id: str, name: str, role: str, orders: Orders, exp: float, slot_name: str = "") -> None:
        self.id = id
        self.name = name
        self.role = role
        self.orders = orders  # None, "*", or a frozenset of order ids (bots)
        self.exp = exp
        self.slot_name = slot_name or name

    def expired(self, now: float | None = None) -> bool:
        return (time.time() if now is None else now) >= self.exp


def _unwritable(text: str) -> bool:
    """Whether a claim holds what no store or frame can carry: U+0000, or a lone UTF-16
    surrogate (PyJWT's json accepts "\\ud83d", a JavaScript string cut inside an emoji)."""
    if "\x00" in text:
        return True
    try:
        text.encode()
    except UnicodeEncodeError:
        return True
    return False


def verify(token: str, secret: str, now: float | None = None, filter_mode: str = "off") -> Identity:
    """Check signature, expiry and claims; raise `Unauthorized` otherwise. Unless the
    contact filter (`filter_mode`) is off, a participant's name comes with its
    contact details masked (contact_filter.masked_name)."""
    if len(token) > TOKEN_CHARS:  # the bound of the auth frame's token, on every path
        raise Unauthorized(f"invalid token: longer than {TOKEN_CHARS} characters")
    if not token.isascii():  # base64url and dots; PyJWT would raise UnicodeEncodeError on a header's escaped bytes
        raise Unauthorized("invalid token: a JWT holds only ASCII characters")
    try:
        claims = jwt.decode(
            token,
            secret,
            algorithms=["HS256"],
            options={"require": ["sub", "role", "exp"], "verify_exp": False},
        )
    except jwt.InvalidSignatureError as exc:
        raise InvalidSignature(SIGNED_ELSEWHERE) from exc
    except jwt.PyJWTError as exc:
        raise Unauthorized(f"invalid token: {exc}") from exc
    sub, role, exp = claims.get("sub"), claims.get("role"), claims.get("exp")
    if not isinstance(sub, str) or not sub or len(sub) > MAX_ID_CHARS:
        raise Unauthorized(f"token sub must be a string of 1 to {MAX_ID_CHARS} characters")
    if _unwritable(sub):
        raise Unauthorized("token sub may not contain U+0000 (NUL) or a lone UTF-16 surrogate")
    if role not in ROLES:
        raise Unauthorized(f"token role must be one of {sorted(ROLES)}")
    if isinstance(exp, bool) or not isinstance(exp, (int, float)) or not 0 <= exp <= MAX_EXP:  # NaN fails too
        raise Unauthorized(f"token exp must be a number of Unix seconds from 0 to {MAX_EXP}")
    if (time.time() if now is None else now) >= exp:
        raise Unauthorized("token expired")
    name = claims.get("name")
    if not isinstance(name, str) or not name:
        name = sub
    elif _unwritable(name):
        raise Unauthorized(
            "token name may not contain U+0000 (NUL) or a lone UTF-16 surrogate (cut a name by code points)"
        )
    name = name[:MAX_NAME_CHARS]
    slot_name = name if filter_mode == "off" else contact_filter.masked_name(name, MAX_NAME_CHARS)
    if role in CONTACT_FILTERED:
        name = slot_name
    orders: Orders = None
    if role == "bot":
        raw = claims.get("orders")
        if raw == "*":
            orders = "*"
        elif isinstance(raw, list) and all(isinstance(o, str) for o in raw):
            orders = frozenset(raw)
        else:
            orders = frozenset()
    return Identity(sub, name, role, orders, float(exp), slot_name)


def issue(
    secret: str,
    sub: str,
    role: str,
    name: str | None = None,
    ttl_s: float = 3600,
    orders: str | list[str] | None = None,
    now: float | None = None,
) -> str:
    """Sign a token (development, bots, tests); the host platform does this in production."""
    if role not in ROLES:
        raise ValueError(f"role must be one of {sorted(ROLES)}")
    claims: dict[str, Any] = {
        "sub": sub,
        "name": name or sub,
        "role": role,
        "exp": int((time.time() if now is None else now) + ttl_s),
    }
    if orders is not None:
        claims["orders"] = orders
    return jwt.encode(claims, secret, algorithm="HS256")
