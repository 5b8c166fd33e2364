"""An idle joined connection holds its state and nothing else: no task, no
timer handle of its own, no aiohttp request. The socket is taken from aiohttp after
the upgrade (chatd.edge.upgrade) and served by callbacks (chatd.edge.websocket); the
heartbeat and token expiry are one timer each for every socket. Counted in the
in-process server: what 30 more joined connections add, then what their closing leaves.
"""

from __future__ import annotations

import asyncio
import os

from tests.support.client import settled

ROOMS = 10


def _server_tasks() -> int:
    """Tasks running chatd's or aiohttp's server code (the test's clients run tasks too)."""
    n = 0
    for task in asyncio.all_tasks():
        code = getattr(task.get_coro(), "cr_code", None)
        name = code.co_filename if code is not None else ""
        if f"{os.sep}chatd{os.sep}" in name or f"aiohttp{os.sep}web_" in name:
            n += 1
    return n


def _server_timers(loop: asyncio.AbstractEventLoop) -> int:
    """Timer handles whose callback is chatd's or aiohttp's server code (the asyncio loop's heap)."""
    n = 0
    for handle in getattr(loop, "_scheduled", ()):
        fn = getattr(handle, "_callback", None)
        module = getattr(getattr(fn, "__func__", fn), "__module__", "") or ""
        if module.startswith("chatd.") or module.startswith("aiohttp.web"):
            n += 1
    return n


async def _joined(server, room: int, k: int):
    user, role = (f"b{room}", "buyer") if k == 0 else (f"s{room}", "supplier") if k == 1 else (f"r{room}", "sales_rep")
    c = await server.client(user, role)
    await c.join(f"idle-{room}")
    return c


async def test_idle_joined_connections_hold_no_task_timer_or_request(server):
    for room in range(ROOMS + 1):
        await server.order(f"idle-{room}", buyer=f"b{room}", supplier=f"s{room}", rep=f"r{room}")
    loop = asyncio.get_running_loop()
    http = server.srv.runner.server  # aiohttp's connections
    first = [await _joined(server, ROOMS, k) for k in range(3)]  # the shared timers exist from here
    await settled(first[-1])
    before = (_server_tasks(), _server_timers(loop), len(http.connections))
    conns = [await _joined(server, room, k) for room in range(ROOMS) for k in range(3)]
    await settled(conns[-1])
    assert (_server_tasks(), _server_timers(loop), len(http.connections)) == before
    for c in conns:
        assert c.close_code is None
    # and each still works: a message reaches the room
    await conns[0].post("idle-0", "still here")
    await conns[1].expect("message", text="still here")
