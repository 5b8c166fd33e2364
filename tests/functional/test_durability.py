"""Durability against a real server process (issue 2, points 6 and 9).

`kill -9` in the middle of a stream of sends loses no acknowledged message,
stores none twice, and leaves seqs gapless; a retry of the unacknowledged
ones after the restart stores each exactly once. SIGTERM closes sockets with
1001, flushes queued writes and exits 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import sqlite3
import urllib.request

import pytest
import websockets
from websockets.asyncio.client import connect

from chatd.store.sqlite.migrations import MIGRATIONS
from tests.support.client import API_KEY, Client, token
from tests.support.postgres_server import sqlite_only
from tests.support.procs import ServerProc
from tests.support.rawws import RawWS
from tests.support.wait import wait_for

ORDER = "d1"
WINDOW = 32  # sends in flight per connection


class Pump:
    """One connection sending numbered messages as fast as acks allow, until it breaks."""

    def __init__(self, url: str, tok: str, prefix: str) -> None:
        self.url, self.tok, self.prefix = url, tok, prefix
        self.sent: dict[str, str] = {}  # client_id -> text
        self.acked: dict[str, int] = {}  # client_id -> seq
        self.close_code: int | None = None
        self.first_acks = asyncio.Event()

    async def run(self, signal_after: int) -> None:
        window = asyncio.Semaphore(WINDOW)
        async with connect(self.url, max_size=None) as ws:
            await ws.send(json.dumps({"type": "auth", "token": self.tok}))
            assert json.loads(await ws.recv())["type"] == "ready"

            async def read():
                try:
                    async for raw in ws:
                        f = json.loads(raw)
                        if f["type"] == "ack":
                            assert f["client_id"] not in self.acked and not f["duplicate"]
                            self.acked[f["client_id"]] = f["seq"]
                            if len(self.acked) >= signal_after:
                                self.first_acks.set()
                            window.release()
                        elif f["type"] == "error":
                            raise AssertionError(f)
                finally:
                    for _ in range(WINDOW):  # wake the sender: the connection is over
                        window.release()

            reader = asyncio.create_task(read())
            try:
                i = 0
                while not reader.done():
                    await window.acquire()
                    cid = f"{self.prefix}-{i}"
                    self.sent[cid] = f"{self.prefix} message {i}"
                    await ws.send(
                        json.dumps({"type": "send", "order": ORDER, "client_id": cid, "text": self.sent[cid]})
                    )
                    i += 1
                    if i % WINDOW == 0:
                        await asyncio.sleep(0)  # let the reader take acks
            except websockets.ConnectionClosed:
                pass
            finally:
                await asyncio.gather(reader, return_exceptions=True)
                if reader.done() and not reader.cancelled() and reader.exception():
                    exc = reader.exception()
                    if not isinstance(exc, websockets.ConnectionClosed):
                        raise exc
                self.close_code = ws.close_code


def export(proc: ServerProc) -> list[dict]:
    req = urllib.request.Request(
        f"{proc.base}/api/v1/orders/{ORDER}/messages?format=ndjson", headers={"Authorization": f"Bearer {API_KEY}"}
    )
    with urllib.request.urlopen(req, timeout=10) as r:
        return [json.loads(line) for line in r.read().decode().splitlines() if line]


def put_order(proc: ServerProc) -> None:
    body = json.dumps(
        {"buyer": {"id": "buyer1", "name": "B"}, "supplier": {"id": "supplier1", "name": "S"}, "sales_rep": None}
    ).encode()
    req = urllib.request.Request(
        f"{proc.base}/api/v1/orders/{ORDER}",
        data=body,
        method="PUT",
        headers={"Authorization": f"Bearer {API_KEY}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=10) as r:
        assert r.status in (200, 201)


@pytest.fixture
def synchronous():
    return "normal"


@pytest.fixture
async def proc(tmp_path, synchronous):
    p = ServerProc(tmp_path, {"store": {"synchronous": synchronous}})
    await p.astart()
    yield p
    await asyncio.to_thread(p.stop)


def check_stored(msgs: list[dict], pumps: list[Pump]) -> dict[tuple[str, str], int]:
    """Gapless seqs, each (sender, client_id) once, every acked one with its acked seq."""
    assert [m["seq"] for m in msgs] == list(range(1, len(msgs) + 1))
    stored = {(m["sender"]["id"], m["client_id"]): m for m in msgs}
    assert len(stored) == len(msgs), "a client_id was stored twice"
    for pump, sender in pumps:
        for cid, seq in pump.acked.items():
            m = stored.get((sender, cid))
            assert m is not None, f"acked message {cid} (seq {seq}) lost"
            assert m["seq"] == seq and m["text"] == pump.sent[cid]
        for cid in pump.sent:
            if (sender, cid) in stored:
                assert stored[(sender, cid)]["text"] == pump.sent[cid]
    return {k: m["seq"] for k, m in stored.items()}


@pytest.mark.parametrize("synchronous", ["normal", "full"])
@sqlite_only("reads the database file and its WAL after the kill")
async def test_kill_9_mid_stream_loses_no_acked_message(proc):
    put_order(proc)
    buyer = await Client.open(proc.ws_url, token("buyer1", "buyer"))
    await buyer.join(ORDER)
    pumps = [
        (Pump(proc.ws_url, token("staff1", "staff"), "staff"), "staff1"),
        (Pump(proc.ws_url, token("bot1", "bot", orders="*"), "bot"), "bot1"),
    ]
    tasks = [asyncio.create_task(p.run(signal_after=150)) for p, _ in pumps]
    await asyncio.wait_for(asyncio.gather(*(p.first_acks.wait() for p, _ in pumps)), 30)
    await proc.akill()  # SIGKILL while both are still sending
    await asyncio.wait_for(asyncio.gather(*tasks), 30)
    await asyncio.wait_for(buyer.closed(), 10)
    assert buyer.close_code != 1001  # no goodbye from a killed process
    in_flight = sum(len(p.sent) - len(p.acked) for p, _ in pumps)
    assert in_flight > 0, "the kill did not land mid-stream"

    await proc.astart()
    with contextlib.closing(sqlite3.connect(proc.db_path)) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert db.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
    stored = check_stored(await asyncio.to_thread(export, proc), pumps)
    acked = sum(len(p.acked) for p, _ in pumps)
    assert acked <= len(stored) <= acked + in_flight

    # the clients retry whatever had no ack: each is stored exactly once
    for pump, sender in pumps:
        c = await Client.open(proc.ws_url, token(sender, "staff" if sender == "staff1" else "bot", orders="*"))
        for cid, text in pump.sent.items():
            if cid in pump.acked:
                continue
            ack = await c.post(ORDER, text, client_id=cid)
            assert ack["type"] == "ack"
            assert ack["duplicate"] == ((sender, cid) in stored)
            pump.acked[cid] = ack["seq"]
        await c.close()
    msgs = await asyncio.to_thread(export, proc)
    check_stored(msgs, pumps)
    assert len(msgs) == sum(len(p.sent) for p, _ in pumps)

    # the buyer's unread count survived and is exact
    buyer = await Client.open(proc.ws_url, token("buyer1", "buyer"))
    j = await buyer.join(ORDER, since=len(msgs))
    assert (j["last_seq"], j["unread"], j["read_seq"]) == (len(msgs), len(msgs), 0)
    await buyer.close()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
async def test_graceful_shutdown_closes_1001_and_flushes(proc, sig):
    put_order(proc)
    watcher = await Client.open(proc.ws_url, token("buyer1", "buyer"))
    await watcher.join(ORDER)
    idle = await Client.open(proc.ws_url, token("supplier1", "supplier"))
    pumps = [(Pump(proc.ws_url, token("staff1", "staff"), "staff"), "staff1")]
    task = asyncio.create_task(pumps[0][0].run(signal_after=100))
    await asyncio.wait_for(pumps[0][0].first_acks.wait(), 30)
    proc.proc.send_signal(sig)
    assert await watcher.closed() == 1001
    assert await idle.closed() == 1001
    await asyncio.wait_for(task, 30)
    assert pumps[0][0].close_code == 1001
    code = await asyncio.to_thread(proc.proc.wait, 30)
    assert code == 0, proc.log()
    assert "Traceback" not in proc.log(), proc.log()
    # the WAL was checkpointed into the database on the way out
    wal = proc.db_path.with_name(proc.db_path.name + "-wal")
    assert not wal.exists() or wal.stat().st_size == 0

    await proc.astart()
    msgs = await asyncio.to_thread(export, proc)
    check_stored(msgs, pumps)
    # what the server had taken in was written, acked or not
    assert len(msgs) >= len(pumps[0][0].acked)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
async def test_a_second_signal_while_shutting_down_is_only_logged(tmp_path, sig):
    """A second signal while the shutdown waits for a socket's close (a double Ctrl-C,
    `timeout` signalling the process group): aiohttp raised GracefulExit inside its own
    cleanup, the store was never closed and the process hung until SIGKILL."""
    proc = ServerProc(tmp_path, {"server": {"shutdown_timeout_s": 60.0}})
    await proc.astart()
    try:
        raw = await RawWS.open(proc.port)
        await raw.send({"type": "auth", "token": token("buyer1", "buyer")})
        await raw.until("ready")
        proc.proc.send_signal(sig)
        opcode, payload = await asyncio.wait_for(raw.next_frame(), 30)
        assert opcode == 0x8 and int.from_bytes(payload[:2], "big") == 1001  # the shutdown waits for our close
        proc.proc.send_signal(sig)
        await wait_for(lambda: "already shutting down" in proc.log(), what="the second signal to be logged")
        raw.sock.close()  # the shutdown goes on
        code = await asyncio.to_thread(proc.proc.wait, 30)
        assert code == 0, proc.log()
        assert "Traceback" not in proc.log(), proc.log()
    finally:
        proc.kill()
