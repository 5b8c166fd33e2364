"""The error tree and close codes: the two ways chatd says no.

A `ChatError` answers one request (an `error` frame or a JSON error) and keeps
the connection open; a `CloseCode` ends the connection. Imports no chatd module.
"""

from __future__ import annotations

from enum import IntEnum


class CloseCode(IntEnum):
    """WebSocket close codes of the contract."""

    GOING_AWAY = 1001  # server shutting down; reconnect to another instance
    INVALID_TEXT = 1007  # a text frame that is not UTF-8 (aiohttp's reader closes with it)
    MESSAGE_TOO_BIG = 1009  # frame larger than the configured maximum
    INTERNAL = 1011  # unexpected server error on this connection
    TRY_AGAIN_LATER = 1013  # outbound queue full: the client reads too slowly
    UNAUTHORIZED = 4401  # no valid auth in time, or the token expired
    TOO_MANY = 4429  # too many connections for this user, or rate limit abused


# error.code -> HTTP status for the REST edge.
HTTP_STATUS = {
    "bad_request": 400,
    "unauthorized": 401,
    "invalid_signature": 401,
    "forbidden": 403,
    "not_found": 404,
    "conflict": 409,
    "too_large": 413,
    "blocked_content": 422,
    "rate_limited": 429,
    "internal": 500,
    "unavailable": 503,
}


class ChatError(Exception):
    """A request the server refuses; the connection stays open.

    `code` is one of the contract's error codes, `ref` the `client_id` or
    `order` the error concerns (echoed in the `error` frame).
    """

    code = "internal"

    def __init__(self, message: str, ref: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.ref = ref

    @property
    def http_status(self) -> int:
        return HTTP_STATUS[self.code]


class BadRequest(ChatError):
    code = "bad_request"


class Unauthorized(ChatError):
    code = "unauthorized"


class InvalidSignature(Unauthorized):
    """A well-formed token signed with another key than `[auth] secret`: the host
    platform and chatd do not share the secret (a setup error, not an expiry)."""

    code = "invalid_signature"


class Forbidden(ChatError):
    code = "forbidden"


class NotFound(ChatError):
    """Also what outsiders get for `forbidden`: they must not learn an order exists."""

    code = "not_found"


class RateLimited(ChatError):
    code = "rate_limited"


class TooLarge(ChatError):
    code = "too_large"


class Conflict(ChatError):
    code = "conflict"


class Unavailable(ChatError):
    code = "unavailable"


class Internal(ChatError):
    code = "internal"


class BlockedContent(ChatError):
    """The text carries what the deployment forbids (contact details between buyer and supplier)."""

    code = "blocked_content"
