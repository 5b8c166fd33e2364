"""What one connection can make the server hold is bounded in bytes.

Measured where it matters: the resident memory (peak RSS, VmHWM) of a real
chatd process, with its default limits, while a buyer asks for hundreds of
large history pages and reads none of them.
"""

from __future__ import annotations

import asyncio
import os
import re
import time

import aiohttp
import pytest

from tests.support.client import API_KEY, Client, request, token
from tests.support.procs import ServerProc
from tests.support.rawws import RawWS

TEXT = "x" * 4000  # the longest text allowed by default
MESSAGES = 200  # one history page at the cap: about 850 KB encoded
REQUESTS = 500  # unbounded, that is over 400 MB of answers
RSS_GROWTH_MAX = 64 << 20
CLOSE_WAIT_S = 10.0

pytestmark = pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="reads RSS from /proc")


def _peak_rss(pid: int) -> int:
    """The process's peak resident set size in bytes (VmHWM)."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM in /proc status")


async def _closes(session, base: str) -> int:
    """Connections the server closed with 1013 or 4429, from /metrics."""
    async with session.get(base + "/metrics") as r:
        text = await r.text()
    total = 0.0
    for m in re.finditer(r'^chatd_ws_closes_total\{by="server",code="(\d+)"\} (\S+)$', text, re.M):
        if m.group(1) in ("1013", "4429"):
            total += float(m.group(2))
    return int(total)


async def _server_closed_one(session, base: str) -> bool:
    """Poll the server's own counters (bounded) until it has closed a connection."""
    deadline = time.monotonic() + CLOSE_WAIT_S
    delay = 0.02
    while time.monotonic() < deadline:
        if await _closes(session, base) >= 1:
            return True
        await asyncio.sleep(delay)
        delay = min(delay * 2, 0.2)
    return False


async def test_history_flood_without_reading_is_bounded_in_bytes(tmp_path):
    srv = ServerProc(tmp_path)
    await srv.astart()
    clients: list[Client] = []
    try:
        async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {API_KEY}"}) as s:
            body = {"buyer": {"id": "buyer1", "name": "Buyer"}, "supplier": {"id": "supplier1", "name": "Supplier"}}
            async with s.put(srv.base + "/api/v1/orders/m1", json=body) as r:
                assert r.status == 201
            staff = await Client.open(srv.ws_url, token("staff1", "staff"))  # staff: no rate limit
            clients.append(staff)
            for i in range(MESSAGES):
                assert (await staff.post("m1", TEXT[:-4] + f"{i:04d}"))["seq"] == i + 1
            bystander = await Client.open(srv.ws_url, token("supplier1", "supplier"))
            clients.append(bystander)
            await bystander.join("m1")

            before = _peak_rss(srv.proc.pid)
            attacker = await RawWS.open(srv.port, rcvbuf=4096)
            try:
                await attacker.send({"type": "auth", "token": token("buyer1", "buyer")})
                await attacker.until("ready")
                # hundreds of pages asked for at once; from here on it reads nothing
                for _ in range(REQUESTS):
                    await attacker.send({"type": "history", "order": "m1", "limit": 200})
                closed = await _server_closed_one(s, srv.base)
                growth = _peak_rss(srv.proc.pid) - before
                assert closed, f"the flooding connection is still open; peak RSS grew {growth >> 20} MiB"
                print(f"peak RSS growth: {growth / 2**20:.1f} MiB")
                assert growth < RSS_GROWTH_MAX, f"peak RSS grew {growth >> 20} MiB"

                # the other participant is unaffected: it still reads, sends and receives
                page = await request(bystander, {"type": "history", "order": "m1", "limit": 200}, "history")
                assert len(page["messages"]) == MESSAGES
                assert (await bystander.post("m1", "still here"))["type"] == "ack"
                assert (await staff.post("m1", "and you?"))["type"] == "ack"
                await bystander.expect("message", text="and you?")
                assert bystander.close_code is None and staff.close_code is None

                # the attacker, reading at last, finds a bounded prefix and its close code
                frames, code = await asyncio.wait_for(attacker.drain(), 20)
                assert code in (1013, 4429)
                pages = [f for f in frames if f.get("type") == "history"]
                assert len(pages) < REQUESTS
            finally:
                attacker.close()
    finally:
        for c in clients:
            await c.close()
        srv.stop()
