"""The SDK's exceptions: one tree, rooted at `ChatdError`, keyed by the contract's codes.

    ChatdError                  .code, .message, .ref
    ├── BadRequest              bad_request
    ├── Unauthorized            unauthorized (token invalid or expired, wrong api key)
    │   └── InvalidSignature    invalid_signature (token signed with another secret than the server's)
    ├── Forbidden               forbidden
    ├── NotFound                not_found (also what outsiders get for forbidden)
    ├── RateLimited             rate_limited
    ├── TooLarge                too_large
    ├── BlockedContent          blocked_content
    ├── Conflict                conflict
    ├── Internal                internal
    └── Unavailable             unavailable
        ├── ConnectionFailed    the server could not be reached (wrong URL, down)
        └── ClientClosed        the client was closed, or gave up reconnecting

Errors the server sends (`error` frames, REST error bodies) become the class
of their code through `error_for`; a code this SDK does not know yet becomes
a plain `ChatdError` with that code.
"""

from __future__ import annotations


class ChatdError(Exception):
    """A request chatd refused or could not serve.

    `code` is one of the contract's error codes, `message` the server's
    explanation, `ref` the `client_id` or order the error concerns (if any).
    """

    code = "internal"

    def __init__(self, message: str, ref: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.ref = ref
        if code is not None:
            self.code = code

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"

    def __repr__(self) -> str:
        return f"{type(self).__name__}(code={self.code!r}, message={self.message!r}, ref={self.ref!r})"


class BadRequest(ChatdError):
    code = "bad_request"


class Unauthorized(ChatdError):
    code = "unauthorized"


class InvalidSignature(Unauthorized):
    """The token is signed with another secret than the server's `[auth] secret`:
    a setup error (the host platform and chatd do not share the key), not an expiry."""

    code = "invalid_signature"


class Forbidden(ChatdError):
    code = "forbidden"


class NotFound(ChatdError):
    code = "not_found"


class RateLimited(ChatdError):
    code = "rate_limited"


class TooLarge(ChatdError):
    code = "too_large"


class BlockedContent(ChatdError):
    code = "blocked_content"


class Conflict(ChatdError):
    code = "conflict"


class Internal(ChatdError):
    code = "internal"


class Unavailable(ChatdError):
    code = "unavailable"


class ConnectionFailed(Unavailable):
    """The server could not be reached: refused, unknown host, timeout, not chatd,
    or it closed the socket during auth (`close_code`, `close_reason`: e.g. 4429
    "too many connections")."""

    def __init__(self, message: str, url: str, close_code: int | None = None, close_reason: str | None = None) -> None:
        super().__init__(message)
        self.url = url
        self.close_code = close_code
        self.close_reason = close_reason


class ClientClosed(Unavailable):
    """The client is closed (by `aclose()`, or after giving up reconnecting)."""


_BY_CODE: dict[str, type[ChatdError]] = {
    cls.code: cls
    for cls in (
        BadRequest,
        Unauthorized,
        InvalidSignature,
        Forbidden,
        NotFound,
        RateLimited,
        TooLarge,
        BlockedContent,
        Conflict,
        Internal,
        Unavailable,
    )
}


def error_for(code: str, message: str, ref: str | None = None) -> ChatdError:
    """The exception for an error code from the server."""
    cls = _BY_CODE.get(code)
    if cls is None:
        return ChatdError(message, ref, code=code)
    return cls(message, ref)
