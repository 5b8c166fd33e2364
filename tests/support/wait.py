"""The one wait helper, and the one time unit every test deadline is scaled by.

Tests wait on events; where none exists (a process's health, a file on disk)
they poll with `wait_for`, bounded by a deadline. A slow machine gets longer
deadlines, never longer sleeps: `CHATD_TEST_TIME_SCALE=3 make test`.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable
from typing import Any

SCALE = float(os.environ.get("CHATD_TEST_TIME_SCALE", "1"))


def seconds(s: float) -> float:
    """`s` seconds of deadline on this machine."""
    return s * SCALE


async def wait_for(
    cond: Callable[[], Any] | Callable[[], Awaitable[Any]], timeout: float = 15.0, what: str = "condition"
) -> Any:
    """Poll `cond` (sync: run in a thread; or a coroutine function) until it is
    truthy, and return its value; AssertionError after `timeout` (scaled)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds(timeout)
    delay = 0.02
    while True:
        value = await cond() if asyncio.iscoroutinefunction(cond) else await asyncio.to_thread(cond)
        if value:
            return value
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(delay)
        delay = min(delay * 2, 0.2)
