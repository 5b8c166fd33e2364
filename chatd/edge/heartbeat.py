"""Every open WebSocket of an app, and their keep-alive with one timer.

aiohttp keeps two timer handles per socket for its heartbeat (the next ping,
the pong deadline) and resets one on every read. Here one timer ticks every
`heartbeat_s / 2` for all sockets: a socket counts the ticks since its peer
last sent a byte (any frame, a pong too). After two quiet ticks, that is
between `heartbeat_s` and 1.5 x `heartbeat_s` of silence, it is pinged;
one tick later (`heartbeat_s / 2`) still quiet, it is dropped (1006, no
close frame), as aiohttp does. A tick walks the sockets in slices so that
10,000 of them never stop the loop for long.
"""

from __future__ import annotations

import asyncio

from chatd.edge.websocket import OPEN, WebSocket

SLICE = 1000  # sockets per loop turn in a tick
PING_AT, DROP_AT = 3, 4  # quiet ticks


class Sockets:
    """The open sockets: what shutdown closes and the heartbeat walks."""

    def __init__(self, heartbeat_s: float | None, close_timeout_s: float = 5.0, buffer_bytes: int = 65536) -> None:
        self.open: set[WebSocket] = set()
        self.heartbeat_s = heartbeat_s if heartbeat_s and heartbeat_s > 0 else None
        self.close_timeout_s = close_timeout_s
        self.buffer_bytes = buffer_bytes  # a socket's unsent backlog past which its peer's pings go unanswered
        self._loop: asyncio.AbstractEventLoop | None = None
        self._timer: asyncio.TimerHandle | None = None

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
        return self._loop

    def add(self, sock: WebSocket) -> None:
        self.open.add(sock)
        if self._timer is None and self.heartbeat_s is not None:
            self._timer = self.loop.call_later(self.heartbeat_s / 2, self._tick)

    def discard(self, sock: WebSocket) -> None:
        self.open.discard(sock)

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _tick(self) -> None:
        assert self.heartbeat_s is not None
        if not self.open:
            self._timer = None  # the next socket starts it again
            return
        self._timer = self.loop.call_later(self.heartbeat_s / 2, self._tick)
        self._beat(list(self.open), 0)

    def _beat(self, socks: list[WebSocket], start: int) -> None:
        for sock in socks[start : start + SLICE]:
            if sock.state is not OPEN:
                continue
            idle = sock.idle = sock.idle + 1
            if idle == PING_AT:
                sock.ping()
            elif idle >= DROP_AT:
                sock.drop()
        if start + SLICE < len(socks):
            self.loop.call_soon(self._beat, socks, start + SLICE)
