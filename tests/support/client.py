"""Test helpers: a real chatd on 127.0.0.1 and a WebSocket client that waits on frames."""

from __future__ import annotations

import asyncio
import json
import uuid

import websockets
from websockets.asyncio.client import connect

from chatd.auth.tokens import issue
from tests.support.wait import seconds

SECRET = "test-secret-0123456789abcdef0123456789"
API_KEY = "test-api-key"
TIMEOUT = seconds(10.0)  # every wait of a client, scaled (tests/support/wait.py)


def token(sub: str, role: str, name: str | None = None, ttl_s: float = 3600, orders=None) -> str:
    return issue(SECRET, sub, role, name or sub.title(), ttl_s, orders)


class Client:
    """A WebSocket client that keeps every frame and lets tests wait for one."""

    def __init__(self, ws) -> None:
        self.ws = ws
        self.frames: list[dict] = []
        self._seen = 0
        self._new = asyncio.Event()
        self._reader = asyncio.create_task(self._read())
        self.close_code: int | None = None

    @classmethod
    async def open(cls, url: str, tok: str | None = None, **kw) -> Client:
        ws = await connect(url, max_size=None, open_timeout=TIMEOUT, **kw)
        c = cls(ws)
        if tok is not None:
            await c.send({"type": "auth", "token": tok})
            await c.expect("ready")
        return c

    async def _read(self) -> None:
        try:
            async for raw in self.ws:
                self.frames.append(json.loads(raw))
                self._new.set()
        except websockets.ConnectionClosed:
            pass
        finally:
            self.close_code = self.ws.close_code
            self._new.set()

    async def send(self, frame: dict) -> None:
        await self.ws.send(json.dumps(frame))

    async def expect(self, type_: str, timeout: float = TIMEOUT, **match) -> dict:
        """The next not-yet-taken frame of this type (and these field values)."""

        async def find():
            while True:
                for i in range(self._seen, len(self.frames)):
                    f = self.frames[i]
                    if f.get("_taken"):
                        continue
                    if f.get("type") == type_ and all(f.get(k) == v for k, v in match.items()):
                        f["_taken"] = True
                        return f
                if self._reader.done():
                    raise AssertionError(f"closed ({self.close_code}) while waiting for {type_} {match}")
                self._new.clear()
                await self._new.wait()

        return await asyncio.wait_for(find(), timeout)

    def skip(self) -> None:
        """Frames received so far are no longer waited for: the next `expect`
        answers with one that arrives after this (an old frame may match too)."""
        self._seen = len(self.frames)

    def of_type(self, type_: str, **match) -> list[dict]:
        return [f for f in self.frames if f.get("type") == type_ and all(f.get(k) == v for k, v in match.items())]

    async def join(self, order: str, **kw) -> dict:
        await self.send({"type": "join", "order": order, **kw})
        return await self.expect("joined", order=order)

    async def post(self, order: str, text: str, kind: str = "text", client_id: str | None = None) -> dict:
        cid = client_id or str(uuid.uuid4())
        await self.send({"type": "send", "order": order, "client_id": cid, "text": text, "kind": kind})
        while True:
            f = await self._next_of(("ack", "error"))
            if f.get("client_id") == cid or f.get("ref") == cid:
                return f

    async def _next_of(self, types) -> dict:
        async def find():
            while True:
                for f in self.frames:
                    if not f.get("_taken") and f.get("type") in types:
                        f["_taken"] = True
                        return f
                if self._reader.done():
                    raise AssertionError(f"closed ({self.close_code}) while waiting for {types}")
                self._new.clear()
                await self._new.wait()

        return await asyncio.wait_for(find(), TIMEOUT)

    async def closed(self, timeout: float = TIMEOUT) -> int | None:
        await asyncio.wait_for(asyncio.shield(self._reader), timeout)
        return self.close_code

    async def close(self) -> None:
        await self.ws.close()
        await asyncio.gather(self._reader, return_exceptions=True)


async def request(client: Client, frame: dict, *types: str) -> dict:
    """Send a frame; return the next untaken frame of one of `types`, or an `error`."""
    await client.send(frame)
    return await client._next_of((*types, "error"))


async def settled(client: Client) -> None:
    """Wait until every frame sent so far on this connection has been handled.

    The server answers frames in order and every reply shares one outbound
    path, so once the `pong` arrives, whatever those frames caused for this
    connection has arrived before it.
    """
    await request(client, {"type": "ping"}, "pong")


def short_token(sub: str, role: str, valid_s: float) -> tuple[str, float]:
    """A token that expires `valid_s` seconds from now (fractional exp), and that moment."""
    import time

    import jwt

    exp = time.time() + valid_s
    return jwt.encode({"sub": sub, "name": sub.title(), "role": role, "exp": exp}, SECRET, algorithm="HS256"), exp
