"""The HTTP side of a WebSocket: answer the upgrade, then take the socket from aiohttp.

Once the 101 is written, aiohttp's handler, request, headers, parser and
tasks would stay alive as long as the socket, for nothing chatd reads again:
the transport gets a protocol of chatd's own (chatd.edge.websocket), aiohttp
is told the connection is gone from it (so its server forgets it and writes
no response), and the handler returns at once. A bad upgrade request gets
the very 400 that aiohttp's WebSocketResponse gives.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
from collections.abc import Callable
from email.utils import formatdate
from typing import TypeVar

from aiohttp import web
from aiohttp.http_websocket import WS_KEY

from chatd.edge.websocket import WebSocket

S = TypeVar("S", bound=WebSocket)


class Detached(web.StreamResponse):
    """What the handler hands back for a socket served by chatd: aiohttp writes nothing.

    Its status 101 tells chatd.logs.AccessLogger that the socket writes its
    own request line when it closes."""

    def __init__(self) -> None:
        super().__init__(status=101)

    async def prepare(self, request: web.BaseRequest) -> None:
        return None

    async def write_eof(self, data: bytes = b"") -> None:
        return None


async def check(request: web.Request) -> None:
    """Raise aiohttp's own HTTPBadRequest unless `request` is a WebSocket upgrade it would accept."""
    try:
        if not web.WebSocketResponse(compress=False).can_prepare(request):
            await web.WebSocketResponse(compress=False).prepare(request)  # raises, with its message
            raise web.HTTPBadRequest(text="not a WebSocket upgrade")  # not reached
    except ValueError:  # aiohttp's base64 decoding of a key that is not ASCII
        raise web.HTTPBadRequest(text="Sec-WebSocket-Key is not a base64 value") from None


def take(request: web.Request, make: Callable[[asyncio.Transport], S]) -> S:
    """Answer 101 and serve the connection with `make(transport)` from now on.

    Call after check(), and return Detached() from the handler right after:
    nothing may await in between."""
    transport = request.transport
    if transport is None:
        raise ConnectionResetError("Connection lost")
    key = request.headers["Sec-WebSocket-Key"]
    accept = base64.b64encode(hashlib.sha1(key.encode() + WS_KEY).digest()).decode()
    transport.write(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: upgrade\r\n"
        f"Sec-WebSocket-Accept: {accept}\r\nDate: {formatdate(usegmt=True)}\r\n"
        "Server: chatd\r\n\r\n".encode()
    )
    sock = make(transport)
    transport.set_protocol(sock)
    http = request.protocol
    http.transport = None  # so that it neither writes to nor closes the socket any more
    http.connection_lost(None)  # its server forgets the connection; the handler still returns
    if sock.reader is not None:
        # what the client sent after its request, before the 101 (aiohttp kept it), is read now
        http.set_parser(sock.reader)
    transport.resume_reading()  # in case aiohttp paused it for that
    return sock
