"""A WebSocket client for timing: it counts frames as the bytes arrive and decodes only the
ones asked for, so measuring 10,000 replayed frames does not measure a JSON decoder.

Server frames are unmasked text frames (chatd never fragments); the client masks
what it sends, as RFC 6455 requires.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import struct
import time
from typing import Any


class FrameCounter(asyncio.Protocol):
    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.upgraded = asyncio.get_running_loop().create_future()
        self.count = 0  # text frames since `expect`
        self.want = 0
        self.first: bytes | None = None  # the first and last payloads since `expect`
        self.last: bytes | None = None
        self.done: asyncio.Future[float] | None = None
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        for fut in (self.upgraded, self.done):
            if fut is not None and not fut.done():
                fut.set_exception(ConnectionError("closed by the server"))

    def data_received(self, data: bytes) -> None:
        self.buf += data
        if not self.upgraded.done():
            head, sep, rest = bytes(self.buf).partition(b"\r\n\r\n")
            if not sep:
                return
            self.buf = bytearray(rest)
            if not head.startswith(b"HTTP/1.1 101"):
                self.upgraded.set_exception(ConnectionError(head.decode(errors="replace")))
                return
            self.upgraded.set_result(None)
        self._frames()

    def _frames(self) -> None:
        b, at, end = self.buf, 0, len(self.buf)
        while end - at >= 2:
            opcode, n, head = b[at] & 0x0F, b[at + 1] & 0x7F, 2
            if n == 126:
                if end - at < 4:
                    break
                n, head = struct.unpack_from("!H", b, at + 2)[0], 4
            elif n == 127:
                if end - at < 10:
                    break
                n, head = struct.unpack_from("!Q", b, at + 2)[0], 10
            if end - at < head + n:
                break
            if opcode == 0x1 and self.done is not None and not self.done.done():
                self.count += 1
                if self.count == 1:
                    self.first = bytes(b[at + head : at + head + n])
                if self.count == self.want:
                    self.last = bytes(b[at + head : at + head + n])
                    self.done.set_result(time.perf_counter())
            at += head + n
        del b[:at]

    def send(self, frame: dict[str, Any]) -> None:
        payload = json.dumps(frame).encode()
        mask = os.urandom(4)
        n = len(payload)
        head = bytes((0x81, 0x80 | n)) if n < 126 else struct.pack("!BBH", 0x81, 0x80 | 126, n)
        masked = bytes(c ^ mask[i % 4] for i, c in enumerate(payload))
        assert self.transport is not None
        self.transport.write(head + mask + masked)

    async def request(self, frame: dict[str, Any], frames: int, timeout: float = 60.0) -> float:
        """Send `frame`, wait for `frames` text frames: the seconds from the send to the last one."""
        self.count, self.want, self.first, self.last = 0, frames, None, None
        self.done = asyncio.get_running_loop().create_future()
        started = time.perf_counter()
        self.send(frame)
        ended = await asyncio.wait_for(self.done, timeout)
        self.done = None
        return ended - started

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


async def connect(port: int, token: str) -> FrameCounter:
    """A connection to chatd on 127.0.0.1, authenticated (its `ready` read)."""
    loop = asyncio.get_running_loop()
    _, client = await loop.create_connection(FrameCounter, "127.0.0.1", port)
    key = base64.b64encode(os.urandom(16)).decode()
    assert client.transport is not None
    client.transport.write(
        f"GET /ws HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
    )
    await asyncio.wait_for(client.upgraded, 10)
    await client.request({"type": "auth", "token": token}, 1)
    assert client.first is not None and json.loads(client.first)["type"] == "ready", client.first
    return client
