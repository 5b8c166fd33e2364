"""A WebSocket client done by hand on a plain socket, for tests that need to
control reading: a slow reader that stops taking bytes (small SO_RCVBUF) and
reads what it was sent, close frame included, only afterwards."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import socket
import struct


class RawWS:
    def __init__(self, sock: socket.socket, buf: bytes) -> None:
        self.sock = sock
        self.buf = buf
        self.loop = asyncio.get_running_loop()

    @classmethod
    async def open(cls, port: int, path: str = "/ws", rcvbuf: int | None = None) -> RawWS:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf is not None:  # before connect, so the window is small from the start
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        sock.setblocking(False)
        loop = asyncio.get_running_loop()
        await loop.sock_connect(sock, ("127.0.0.1", port))
        key = base64.b64encode(os.urandom(16)).decode()
        await loop.sock_sendall(
            sock,
            (
                f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
            ).encode(),
        )
        buf = b""
        while b"\r\n\r\n" not in buf:
            chunk = await loop.sock_recv(sock, 4096)
            if not chunk:
                raise ConnectionError("closed during the handshake")
            buf += chunk
        head, _, rest = buf.partition(b"\r\n\r\n")
        if not head.startswith(b"HTTP/1.1 101"):
            raise ConnectionError(head.decode(errors="replace"))
        return cls(sock, rest)

    async def send(self, frame: dict, opcode: int = 0x1) -> None:
        await self._send_raw(opcode, json.dumps(frame).encode())

    async def _send_raw(self, opcode: int, payload: bytes) -> None:
        mask = os.urandom(4)
        n = len(payload)
        if n < 126:
            head = bytes((0x80 | opcode, 0x80 | n))
        elif n < 65536:
            head = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, n)
        else:
            head = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, n)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        await self.loop.sock_sendall(self.sock, head + mask + masked)

    async def _fill(self) -> bool:
        chunk = await self.loop.sock_recv(self.sock, 65536)
        self.buf += chunk
        return bool(chunk)

    def _parse(self):
        """One complete frame from the buffer: (opcode, payload), or None."""
        b = self.buf
        if len(b) < 2:
            return None
        opcode, n, at = b[0] & 0x0F, b[1] & 0x7F, 2
        if n == 126:
            if len(b) < 4:
                return None
            n, at = struct.unpack("!H", b[2:4])[0], 4
        elif n == 127:
            if len(b) < 10:
                return None
            n, at = struct.unpack("!Q", b[2:10])[0], 10
        if len(b) < at + n:
            return None
        self.buf = b[at + n :]
        return opcode, b[at : at + n]

    async def next_frame(self):
        """The next frame (opcode, payload); None at end of stream."""
        while True:
            f = self._parse()
            if f is not None:
                return f
            if not await self._fill():
                return None

    async def until(self, type_: str) -> list[dict]:
        """Read text frames until one of this type; return them all."""
        out = []
        while True:
            f = await self.next_frame()
            if f is None:
                raise ConnectionError(f"closed before {type_}")
            if f[0] == 0x1:
                out.append(json.loads(f[1]))
                if out[-1].get("type") == type_:
                    return out

    async def drain(self) -> tuple[list[dict], int | None]:
        """Read everything up to the close frame: (text frames, close code)."""
        frames = []
        while True:
            f = await self.next_frame()
            if f is None:
                return frames, None
            opcode, payload = f
            if opcode == 0x1:
                frames.append(json.loads(payload))
            elif opcode == 0x8:
                code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else None
                try:
                    await self._send_raw(0x8, payload[:2])
                except OSError:
                    pass
                return frames, code
            elif opcode == 0x9:
                await self._send_raw(0xA, payload)

    def close(self) -> None:
        self.sock.close()
