"""Opening one authenticated socket: connect, send `auth`, read `ready`.

Network failures become `ConnectionFailed` (worth retrying); a refused token
comes back as the server's refusal (`Unauthorized`, or its subclass
`InvalidSignature` for a token signed with another secret), for the caller to
decide whether a fresh token is worth a try.
"""

from __future__ import annotations

import asyncio
import base64
import json
from typing import Any

import msgspec
import websockets
from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as ws_connect

from chatd import wire
from chatd.client.errors import ConnectionFailed, InvalidSignature, Unauthorized

UNAUTHORIZED_CLOSE = 4401
TOO_BIG_CLOSE = 1009  # the server's answer to a frame over its `max_frame_bytes`
SIGNED_ELSEWHERE_REASON = "token signed with another secret"  # the server's close reason with 4401
MAX_INBOUND_BYTES = 2**24  # a full history page of long messages fits


def token_exp(token: str | None) -> float | None:
    """The `exp` claim of a JWT, read without verifying it (only to refresh in time)."""
    if token is None:
        return None
    try:
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        exp = claims.get("exp")
        return float(exp) if isinstance(exp, (int, float)) else None
    except (AttributeError, IndexError, ValueError):
        return None


async def _authenticate(ws: ClientConnection, url: str, token: str, timeout_s: float) -> Any:
    """Send `auth` and read the first frame; a close instead becomes the server's reason."""
    try:
        await ws.send(wire.encode(wire.Auth(token)), text=True)
        async with asyncio.timeout(timeout_s):
            return wire.server_decoder.decode(await ws.recv())
    except websockets.ConnectionClosed as exc:
        rcvd = exc.rcvd
        if rcvd is not None and rcvd.code == UNAUTHORIZED_CLOSE:
            if rcvd.reason == SIGNED_ELSEWHERE_REASON:
                return InvalidSignature(rcvd.reason)
            return Unauthorized(rcvd.reason or "unauthorized")
        why = f": {rcvd.reason or 'no reason given'} (close {rcvd.code})" if rcvd is not None else ""
        raise ConnectionFailed(
            f"{url} closed the connection during auth{why}",
            url,
            close_code=rcvd.code if rcvd is not None else None,
            close_reason=rcvd.reason if rcvd is not None else None,
        ) from exc
    except TimeoutError as exc:
        raise ConnectionFailed(f"{url} did not answer auth", url) from exc
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        raise ConnectionFailed(f"{url} does not speak the chatd protocol", url) from exc


def _describe(exc: BaseException) -> str:
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, websockets.InvalidStatus):
        return f"HTTP {exc.response.status_code} instead of a WebSocket upgrade (is this a chatd server?)"
    if isinstance(exc, TimeoutError):
        return "timed out"
    return str(exc) or type(exc).__name__


async def handshake(url: str, token: str, timeout_s: float) -> tuple[ClientConnection, wire.Ready] | Unauthorized:
    """An open, authenticated socket and its `ready`, or why the token was
    refused (the socket is closed then)."""
    try:
        ws = await ws_connect(
            url, open_timeout=timeout_s, max_size=MAX_INBOUND_BYTES, compression=None, close_timeout=2
        )
    except (OSError, TimeoutError, websockets.InvalidHandshake, websockets.InvalidURI) as exc:
        raise ConnectionFailed(f"cannot connect to {url}: {_describe(exc)}", url) from exc
    try:
        frame = await _authenticate(ws, url, token, timeout_s)
    except asyncio.CancelledError:
        ws.transport.abort()  # aclose() during a reconnect: no close handshake to wait for
        raise
    except BaseException:
        await ws.close()
        raise
    if isinstance(frame, wire.Ready):
        return ws, frame
    await ws.close()
    if isinstance(frame, Unauthorized):
        return frame
    if isinstance(frame, wire.ErrorFrame) and frame.code in ("unauthorized", "invalid_signature"):
        return InvalidSignature(frame.message) if frame.code == "invalid_signature" else Unauthorized(frame.message)
    raise ConnectionFailed(f"{url} answered auth with {type(frame).__name__}", url)
