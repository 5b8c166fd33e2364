"""What every REST route shares: the caller, JSON errors, JSON bodies and query integers.

A caller is a `Principal`: the `API_KEY` (the host platform's backend) or a
verified connection token, the same `Identity` the WebSocket edge uses.
Errors answer `{"error": {"code", "message"}}` with the status of the code.
"""

from __future__ import annotations

import hmac
from typing import Any, TypeVar

import msgspec
from aiohttp import web
from aiohttp.typedefs import Handler

from chatd import logs
from chatd.auth.tokens import Identity, verify
from chatd.edge.keys import CONFIG
from chatd.errors import BadRequest, ChatError, Forbidden, Unauthorized
from chatd.wire import MAX_INT, decode_json, encode


class ApiKey:
    """The caller holds the api key: the host platform's backend, which may act on every order."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "API_KEY"


API_KEY = ApiKey()
Principal = Identity | ApiKey
T = TypeVar("T")


def json_response(data: Any, status: int = 200) -> web.Response:
    return web.Response(body=encode(data), status=status, content_type="application/json")


def error_response(code: str, message: str, status: int, ref: str | None = None) -> web.Response:
    """`{"error": {"code", "message", "ref"?}}`: `ref` the order or `client_id` it concerns, as in `error` frames."""
    error = {"code": code, "message": message} if ref is None else {"code": code, "message": message, "ref": ref}
    return json_response({"error": error}, status)


@web.middleware
async def errors_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    if "\x00" in request.path or any("\x00" in v for v in request.query.values()):  # as in every frame: no U+0000
        return error_response("bad_request", "the URL may not contain U+0000 (NUL)", 400)
    try:
        return await handler(request)
    except ChatError as exc:
        return error_response(exc.code, exc.message, exc.http_status, exc.ref)
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        return error_response("bad_request", f"invalid body: {exc}", 400)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code = {404: "not_found", 405: "bad_request", 413: "too_large"}.get(exc.status, "bad_request")
        return error_response(code, exc.reason, exc.status)


def principal(request: web.Request) -> Principal:
    """`Authorization: Bearer <api key or token>`, or `unauthorized`."""
    header = request.headers.get("Authorization", "")
    scheme, _, credential = header.partition(" ")
    if scheme.lower() != "bearer" or not credential:
        raise Unauthorized("Authorization: Bearer <api key or token> is required")
    cfg = request.app[CONFIG]
    # compared as bytes: aiohttp decodes a header's bytes that are not UTF-8 with surrogateescape
    given, key = (v.encode("utf-8", "surrogateescape") for v in (credential, cfg.auth.api_key))
    if key and hmac.compare_digest(given, key):
        logs.about(request, "api_key")
        return API_KEY
    if credential.count(".") != 2:  # not a JWT (header.claims.signature): meant as the api key
        raise Unauthorized("invalid api key")
    ident = verify(credential, cfg.auth.secret, filter_mode=cfg.filter.mode)
    logs.about(request, ident.id)
    return ident


def viewer(who: Principal) -> Identity | None:
    """What the chat service takes: an identity, or None for the api key."""
    return None if isinstance(who, ApiKey) else who


def require_api_or_staff(who: Principal) -> None:
    if not isinstance(who, ApiKey) and who.role != "staff":
        raise Forbidden("api key or staff token required")


async def body(request: web.Request, kind: type[T]) -> T:
    return decode_json(await request.read(), kind)


def int_param(request: web.Request, name: str) -> int | None:
    """A query integer within what the store holds (0 to 2^63-1), written as ASCII digits
    (`int` would also take "5_0", "+5", " 5" and other scripts' digits); empty is absent."""
    raw = request.query.get(name)
    if raw is None or raw == "":
        return None
    try:
        if len(raw) > 20 or not (raw.isascii() and raw.isdigit()):
            raise ValueError(raw)
        value = int(raw)
        if not 0 <= value <= MAX_INT:
            raise ValueError(raw)
    except ValueError as exc:
        raise BadRequest(f"{name} must be an integer from 0 to {MAX_INT}") from exc
    return value
