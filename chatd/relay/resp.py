"""A bare Redis connection for the relay's hot path: PUBLISH batches out,
pub/sub messages in.

redis-py pays a coroutine, a timeout and a dict per pub/sub message and per
pipelined command; at a few thousand events a second that cost more CPU than
the fan-out itself. Here every read is parsed by hiredis in one go and each
message is handed to a callback; publishes are packed into one write per
batch, and their replies only counted. Everything else (scripts, presence,
admission) stays on redis-py.
"""

from __future__ import annotations

import asyncio
import collections
import ssl
from collections.abc import Callable
from typing import Any, cast

import hiredis
from redis.asyncio.connection import parse_url
from redis.exceptions import ResponseError

# a pub/sub reply as hiredis parses it: [kind, channel, data or count] (hiredis types its replies Any)
OnPush = Callable[[Any], None]

_PUBLISH = b"*3\r\n$7\r\nPUBLISH\r\n$%d\r\n%b\r\n$%d\r\n%b\r\n"


def pack(*args: bytes | str | int) -> bytes:
    """One command in RESP."""
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        b = a if isinstance(a, bytes) else str(a).encode()
        out.append(b"$%d\r\n%b\r\n" % (len(b), b))
    return b"".join(out)


def pack_publish(channel: bytes, payload: bytes) -> bytes:
    return _PUBLISH % (len(channel), channel, len(payload), payload)


class Connection(asyncio.Protocol):
    """Replies are matched in order: first to `call`s (the handshake), then
    counted against `send`s, and what is left over (pub/sub pushes) goes to
    `on_push`."""

    def __init__(self, on_push: OnPush | None = None) -> None:
        self.on_push = on_push
        self.lost: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.unanswered = 0  # replies still due for `send`
        self.errors = 0  # error replies to `send`
        self._reader = hiredis.Reader()
        self._calls: collections.deque[asyncio.Future[Any]] = collections.deque()
        self._drained: asyncio.Future[None] | None = None
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # create_connection and create_unix_connection give a Transport; Protocol types it as the base class
        self._transport = cast(asyncio.Transport, transport)

    @property
    def _open_transport(self) -> asyncio.Transport:
        assert self._transport is not None  # set by connection_made(), before connect() returns
        return self._transport

    def connection_lost(self, exc: Exception | None) -> None:
        err = ConnectionError(f"redis connection lost: {exc!r}" if exc else "redis connection closed")
        if not self.lost.done():
            self.lost.set_exception(err)
            self.lost.exception()  # retrieved: nobody need be waiting
        for fut in (*self._calls, self._drained):
            if fut is not None and not fut.done():
                fut.set_exception(err)
        self._calls.clear()

    def data_received(self, data: bytes) -> None:
        reader = self._reader
        reader.feed(data)
        while (reply := reader.gets()) is not False:
            if self._calls:
                fut = self._calls.popleft()
                if not fut.done():
                    fut.set_result(reply)
            elif self.unanswered:
                self.unanswered -= 1
                if isinstance(reply, hiredis.ReplyError):
                    self.errors += 1
                if not self.unanswered and self._drained is not None and not self._drained.done():
                    self._drained.set_result(None)
            else:
                assert self.on_push is not None  # pushes come only on a connection given on_push
                self.on_push(reply)

    async def call(self, *args: bytes | str | int) -> object:
        """One command and its reply (raised if an error); not while `send`s are unanswered."""
        assert not self.unanswered
        self._check()
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._calls.append(fut)
        self._open_transport.write(pack(*args))
        reply = await fut
        if isinstance(reply, hiredis.ReplyError):
            raise ResponseError(str(reply))
        return reply

    def send(self, data: bytes, replies: int) -> None:
        """Packed commands whose replies are only counted."""
        self._check()
        self.unanswered += replies
        self._open_transport.write(data)

    def write(self, data: bytes) -> None:
        """Packed commands whose replies come as pushes (SUBSCRIBE, UNSUBSCRIBE)."""
        self._check()
        self._open_transport.write(data)

    async def drained(self) -> None:
        """Until every `send` has its reply."""
        if self.unanswered:
            if self._drained is None or self._drained.done():
                self._drained = asyncio.get_running_loop().create_future()
            await self._drained

    def _check(self) -> None:
        if self.lost.done():
            self.lost.result()  # raises why

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()


async def connect(url: str, on_push: OnPush | None = None, timeout: float = 2.0) -> Connection:
    """Connected, authenticated and on the URL's database (same URL rules as redis-py)."""
    opts = parse_url(url)
    loop = asyncio.get_running_loop()
    factory = lambda: Connection(on_push)  # noqa: E731
    async with asyncio.timeout(timeout):
        if "path" in opts:
            _, conn = await loop.create_unix_connection(factory, opts["path"])
        else:
            tls = ssl.create_default_context() if url.startswith("rediss:") else None
            _, conn = await loop.create_connection(
                factory, opts.get("host", "localhost"), opts.get("port", 6379), ssl=tls
            )
        try:
            if opts.get("password"):
                await conn.call("AUTH", *([opts["username"]] if opts.get("username") else []), opts["password"])
            if opts.get("db"):
                await conn.call("SELECT", opts["db"])
        except BaseException:
            conn.close()
            raise
    return conn
