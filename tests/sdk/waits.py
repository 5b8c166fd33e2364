"""Waiting on a client's events: bounded, and never a bare sleep."""

from __future__ import annotations

import asyncio

from chatd import wire
from tests.support.client import TIMEOUT


async def next_event(client, kind: type, timeout: float = TIMEOUT, **match):
    """The next event of this type (and these field values); others are skipped."""
    async with asyncio.timeout(timeout):
        async for ev in client:
            if isinstance(ev, kind) and all(getattr(ev, k) == v for k, v in match.items()):
                return ev
    raise AssertionError(f"the client ended while waiting for {kind.__name__} {match}")


async def messages(client, n: int, order: str | None = None, timeout: float = TIMEOUT) -> list[wire.Message]:
    """The next `n` messages (of `order`), in the order the client yields them."""
    got: list[wire.Message] = []
    async with asyncio.timeout(timeout):
        async for ev in client:
            if isinstance(ev, wire.Message) and (order is None or ev.order == order):
                got.append(ev)
                if len(got) == n:
                    return got
    raise AssertionError(f"the client ended after {len(got)} of {n} messages")
