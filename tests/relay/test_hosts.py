"""Several hosts: chatd processes with their own configs and data directories,
sharing one PostgreSQL and one Redis, all real and on 127.0.0.1.

Clients on either host see one room, one seq and one unread count. A host
killed with SIGKILL while four senders stream loses no acknowledged message;
its clients carry on on the other host without a gap or a duplicate.
PostgreSQL restarted mid-stream: sends answer `unavailable` (never an ack),
`/readyz` fails, and chatd recovers by itself. Redis restarted: messages
still reach members on both hosts.
"""

from __future__ import annotations

import asyncio
import collections
import json

import aiohttp
import pytest
import websockets
from websockets.asyncio.client import connect

from tests.relay.test_relay import ORDER, seqs
from tests.support.client import API_KEY, Client, token
from tests.support.cluster import Cluster, health
from tests.support.postgres_server import PostgresProc, new_database
from tests.support.wait import wait_for

WINDOW = 8  # sends in flight per sender connection
TEST_TIMEOUT_S = 90.0  # each test's whole run


@pytest.fixture
async def hosts(cluster_factory):
    """Two hosts on a fresh database of the shared PostgreSQL and one Redis."""
    return await cluster_factory(2, store={"url": new_database()})


async def export(c: Cluster, i: int, order: str) -> list[dict]:
    """Every stored message of the order (operator view), in seq order, through host i's REST."""
    async with aiohttp.ClientSession() as s:
        async with s.get(
            f"{c.nodes[i].base}/api/v1/orders/{order}/messages?format=ndjson",
            headers={"Authorization": f"Bearer {API_KEY}"},
        ) as r:
            assert r.status == 200, await r.text()
            return [json.loads(line) for line in (await r.text()).splitlines() if line]


async def status_of(base: str, path: str) -> int:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=15)) as s:
        async with s.get(base + path) as r:
            return r.status


async def until(events: list[asyncio.Event], tasks: list[asyncio.Task], timeout: float, what: str) -> None:
    """Wait for every event; a sender task that fails meanwhile raises its error at once."""
    waiter = asyncio.ensure_future(asyncio.gather(*(e.wait() for e in events)))
    deadline = asyncio.get_running_loop().time() + timeout
    try:
        running = set(tasks)
        while not waiter.done():
            left = deadline - asyncio.get_running_loop().time()
            if left <= 0:
                raise AssertionError(f"timed out waiting for {what}")
            done, _ = await asyncio.wait({waiter, *running}, timeout=left, return_when=asyncio.FIRST_COMPLETED)
            for t in done - {waiter}:
                t.result()  # a failure is raised here
                running.discard(t)
    finally:
        waiter.cancel()


def texts(client: Client, order: str) -> list[tuple[int, str]]:
    return [(f["seq"], f["text"]) for f in client.frames if f.get("type") == "message" and f.get("order") == order]


class Sender:
    """One bot sending `n` numbered messages with client_ids, `WINDOW` in flight.

    Acks on one connection come in send order. When the connection breaks it
    reconnects to the next URL and sends again, with the same client_ids,
    every message without an ack, then the rest."""

    def __init__(self, name: str, order: str, urls: list[str], n: int) -> None:
        self.name, self.order, self.urls, self.n = name, order, urls, n
        self.cids = [f"{name}-{i}" for i in range(n)]
        self.text = {cid: f"{name} says {i}" for i, cid in enumerate(self.cids)}
        self.acked: dict[str, int] = {}  # client_id -> seq
        self.duplicates: set[str] = set()  # acked as already stored (sent again after a break)
        self.connections = 0
        self.sent: set[str] = set()
        self.acked_at_break: int | None = None
        self.unacked_at_break = 0  # sent, not acked, when the connection broke
        self.started = asyncio.Event()  # a fifth of its messages acked

    async def run(self) -> None:
        while len(self.acked) < self.n:
            url = self.urls[min(self.connections, len(self.urls) - 1)]
            self.connections += 1
            assert self.connections <= len(self.urls), f"{self.name}: a connection broke on its last host"
            try:
                await self._session(url)
            except (OSError, websockets.ConnectionClosed, websockets.InvalidHandshake):
                pass
            if len(self.acked) < self.n and self.acked_at_break is None:
                self.acked_at_break = len(self.acked)
                self.unacked_at_break = len(self.sent - self.acked.keys())

    async def _session(self, url: str) -> None:
        async with connect(url, max_size=None, open_timeout=10) as ws:
            await ws.send(json.dumps({"type": "auth", "token": token(self.name, "bot", orders="*")}))
            assert json.loads(await asyncio.wait_for(ws.recv(), 10))["type"] == "ready"
            todo = collections.deque(cid for cid in self.cids if cid not in self.acked)
            in_flight: collections.deque[str] = collections.deque()
            while todo or in_flight:
                while todo and len(in_flight) < WINDOW:
                    cid = todo.popleft()
                    await ws.send(
                        json.dumps({"type": "send", "order": self.order, "client_id": cid, "text": self.text[cid]})
                    )
                    in_flight.append(cid)
                    self.sent.add(cid)
                f = json.loads(await asyncio.wait_for(ws.recv(), 15))
                if f["type"] in ("message", "unread", "notify"):
                    continue
                assert f["type"] == "ack", f  # no error: a dying host says nothing, the survivor serves
                cid = in_flight.popleft()
                assert f["client_id"] == cid, (f, cid)  # acks in send order
                assert cid not in self.acked
                self.acked[cid] = f["seq"]
                if f["duplicate"]:
                    self.duplicates.add(cid)
                if len(self.acked) >= self.n // 5:
                    self.started.set()


def check_history(msgs: list[dict], senders: list, others: int = 0) -> None:
    """Gapless seqs 1..N; each sender's every message stored once, with its acked
    seq and text, in the order it was sent; besides them only `others` messages."""
    assert [m["seq"] for m in msgs] == list(range(1, len(msgs) + 1))
    stored = {(m["sender"]["id"], m["client_id"]): m for m in msgs}
    assert len(stored) == len(msgs), "a client_id was stored twice"
    assert len(msgs) == sum(s.n for s in senders) + others
    for s in senders:
        missing = [cid for cid in s.cids if (s.name, cid) not in stored]
        assert not missing, f"{s.name}: acked, not stored: {missing}"
        mine = [stored[(s.name, cid)] for cid in s.cids]
        assert [m["seq"] for m in mine] == [s.acked[cid] for cid in s.cids], f"{s.name}: a seq is not the acked one"
        assert [m["text"] for m in mine] == [s.text[cid] for cid in s.cids]
        assert [m["seq"] for m in mine] == sorted(m["seq"] for m in mine), f"{s.name}: stored out of send order"


async def test_two_hosts_one_room_one_seq_one_unread(hosts):
    c = hosts

    async def body():
        st, _ = await c.api(0, "PUT", "/api/v1/orders/h1", ORDER)
        assert st == 201
        buyer = await c.client(0, "buyer1", "buyer")
        rep = await c.client(0, "rep1", "sales_rep")
        supplier = await c.client(1, "supplier1", "supplier")
        buyer_tab = await c.client(1, "buyer1", "buyer")  # the same user's second tab, on the other host
        for cl in (buyer, rep, supplier, buyer_tab):
            await cl.join("h1")

        # both hosts write the one room at once: one seq
        async def post(cl: Client, tag: str) -> list[int]:
            out = []
            for k in range(10):
                ack = await cl.post("h1", f"{tag} {k}")
                assert ack["type"] == "ack", ack
                out.append(ack["seq"])
            return out

        a, b = await asyncio.gather(post(rep, "rep"), post(supplier, "supplier"))
        assert sorted(a + b) == list(range(1, 21)) and a == sorted(a) and b == sorted(b)
        stored = [(m["seq"], m["text"]) for m in await export(c, 0, "h1")]
        assert stored == [(m["seq"], m["text"]) for m in await export(c, 1, "h1")]
        for cl in (buyer, rep, supplier, buyer_tab):  # every member, either host: the same messages in seq order
            await cl.expect("message", seq=20)
            assert texts(cl, "h1") == stored

        # one unread count for the buyer, whichever host a connection is on
        for cl in (buyer, buyer_tab):
            u = await cl.expect("unread", order="h1", count=20)
            assert u["total"] == 20
        buyer.skip()  # the count of 8 it got while message 8 came in is not the answer
        await buyer_tab.send({"type": "read", "order": "h1", "seq": 12})  # read on host B ...
        u = await buyer.expect("unread", order="h1", count=8)  # ... counts on host A
        assert u["total"] == 8
        probe = await c.client(0, "buyer1", "buyer")
        j = await probe.join("h1")
        assert (j["last_seq"], j["read_seq"], j["unread"]) == (20, 12, 8)
        ack = await supplier.post("h1", "one more")
        assert ack["seq"] == 21
        for cl in (buyer, buyer_tab, probe):
            u = await cl.expect("unread", order="h1", count=9)
            assert u["total"] == 9
        st, page = await c.api(1, "GET", "/api/v1/orders/h1/messages?after=0&limit=100")
        assert st == 200 and [m["seq"] for m in page["messages"]] == list(range(1, 22))

    await asyncio.wait_for(body(), TEST_TIMEOUT_S)


async def test_kill_9_one_host_while_four_senders_stream(hosts):
    c = hosts
    a, b = c.nodes

    async def body():
        st, _ = await c.api(1, "PUT", "/api/v1/orders/h2", ORDER)
        assert st == 201
        reader_a = await c.client(0, "buyer1", "buyer")  # on the host that dies
        reader_b = await c.client(1, "supplier1", "supplier")  # on the survivor all along
        await reader_a.join("h2")
        await reader_b.join("h2")
        senders = [Sender(f"bot{i}", "h2", [a.ws_url, b.ws_url] if i < 2 else [b.ws_url], 200) for i in range(4)]
        tasks = [asyncio.create_task(s.run()) for s in senders]
        try:
            await until([s.started for s in senders[:2]], tasks, 30, "the first acks")
            await a.akill()  # SIGKILL while all four stream
            assert all(len(s.acked) < s.n for s in senders), "a sender had finished before the kill"
            await reader_a.closed()
            assert reader_a.close_code != 1001  # no goodbye from a killed process
            held = seqs(reader_a, "h2")
            assert held == list(range(1, len(held) + 1))
            # the reader resumes on the other host while the senders still stream
            resumed = await c.client(1, "buyer1", "buyer")
            j = await resumed.join("h2", since=held[-1] if held else 0, limit=1000)
            assert not j["truncated"] and j["read_seq"] == 0
            await asyncio.wait_for(asyncio.gather(*tasks), 60)
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        for s in senders[:2]:  # the kill landed mid-stream (sends in flight), they carried on on B
            assert s.connections == 2 and s.acked_at_break is not None and s.unacked_at_break > 0, s.name
        assert all(s.connections == 1 for s in senders[2:])

        msgs = await export(c, 1, "h2")
        check_history(msgs, senders)
        total = len(msgs)
        for cl in (resumed, reader_b):
            await cl.expect("message", seq=total, timeout=20)
        # no gap, no duplicate: what A delivered, then what B replayed and delivered after it
        assert held + seqs(resumed, "h2") == list(range(1, total + 1))
        assert seqs(reader_b, "h2") == list(range(1, total + 1))
        st, page = await c.api(1, "GET", f"/api/v1/orders/h2/messages?after={total - 5}&limit=10")
        assert [m["seq"] for m in page["messages"]] == list(range(total - 4, total + 1))

    await asyncio.wait_for(body(), TEST_TIMEOUT_S)


@pytest.fixture
async def own_postgres():
    """A PostgreSQL server of this test's own: it is stopped and started again."""
    pg = PostgresProc()
    await asyncio.to_thread(pg.start)
    yield pg
    await asyncio.to_thread(pg.stop)


class Retrier:
    """A client sending numbered messages one at a time; an `unavailable` answer
    is sent again, with the same client_id, until it is acked."""

    def __init__(self, client: Client, name: str, order: str) -> None:
        self.client, self.name, self.order = client, name, order
        self.cids: list[str] = []
        self.text: dict[str, str] = {}
        self.acked: dict[str, int] = {}
        self.duplicates: set[str] = set()
        self.unavailable = 0
        self.limit: int | None = None  # stop after this many messages (set by the test)
        self.started = asyncio.Event()  # 20 acked
        self.refused = asyncio.Event()  # one `unavailable` seen
        self.resumed = asyncio.Event()  # an ack after an `unavailable`

    @property
    def n(self) -> int:
        return len(self.cids)

    async def run(self, cap: int = 2000) -> None:
        i = 0
        while self.limit is None or i < self.limit:
            assert i < cap, f"{self.name}: still sending after {cap} messages"
            cid = f"{self.name}-{i}"
            self.cids.append(cid)
            self.text[cid] = f"{self.name} says {i}"
            delay = 0.02
            while True:
                f = await self.client.post(self.order, self.text[cid], client_id=cid)  # bounded: helpers.TIMEOUT
                if f["type"] == "ack":
                    break
                assert f["type"] == "error" and f["code"] == "unavailable", f
                self.unavailable += 1
                self.refused.set()
                await asyncio.sleep(delay)  # the client's back-off before it sends again
                delay = min(delay * 2, 0.2)
            assert cid not in self.acked
            self.acked[cid] = f["seq"]
            if f["duplicate"]:
                self.duplicates.add(cid)
            if self.refused.is_set():
                self.resumed.set()
            if len(self.acked) >= 20:
                self.started.set()
            i += 1


async def test_postgres_restarted_mid_stream(own_postgres, cluster_factory):  # the database outlives the hosts
    pg = own_postgres
    c = await cluster_factory(2, store={"url": pg.new_database()})

    async def body():
        st, _ = await c.api(0, "PUT", "/api/v1/orders/h3", ORDER)
        assert st == 201
        reader = await c.client(0, "buyer1", "buyer")
        await reader.join("h3")
        senders = [Retrier(await c.client(i, f"bot{i}", "bot", orders="*"), f"bot{i}", "h3") for i in range(2)]
        tasks = [asyncio.create_task(s.run()) for s in senders]
        try:
            await until([s.started for s in senders], tasks, 30, "the first acks")
            acked_before = sum(len(s.acked) for s in senders)  # check_history: each is stored, with its seq
            await asyncio.to_thread(pg.halt)  # mid-stream; returns once the server is gone
            for node in c.nodes:  # while the database is away: not ready, not healthy
                assert await status_of(node.base, "/readyz") == 503
                assert (await status_of(node.base, "/healthz")) == 503
            # both hosts answer `unavailable` (the retriers assert that no other answer comes)
            await until([s.refused for s in senders], tasks, 20, "`unavailable` on both hosts")
            probe = await c.client(1, "staff1", "staff")
            f = await probe.post("h3", "while the database is away", client_id="probe-1")
            assert (f["type"], f["code"]) == ("error", "unavailable")
            for node in c.nodes:
                assert await status_of(node.base, "/readyz") == 503

            await asyncio.to_thread(pg.start)  # same port, same data; chatd is not restarted
            for node in c.nodes:
                await wait_for(
                    lambda node=node: health(node.base).get("store") == "ok",
                    timeout=20,
                    what=f"store back on {node.base}",
                )
                assert await status_of(node.base, "/readyz") == 200
            await until([s.resumed for s in senders], tasks, 20, "acks again on both hosts")
            for s in senders:  # a few more each, then stop
                s.limit = s.n + 10
            await asyncio.wait_for(asyncio.gather(*tasks), 30)
            f = await probe.post("h3", "while the database is away", client_id="probe-1")
            assert f["type"] == "ack" and not f["duplicate"]  # refused before: it was never stored
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        assert all(s.unavailable > 0 for s in senders)

        msgs = await export(c, 1, "h3")
        check_history(msgs, senders, others=1)  # the probe's, once
        assert [m["seq"] for m in msgs if m["client_id"] == "probe-1"] == [f["seq"]]
        assert len(msgs) > acked_before > 0
        total = len(msgs)
        await reader.expect("message", seq=total, timeout=20)
        got = seqs(reader, "h3")
        assert got == sorted(set(got))  # never out of order, never twice
        held = set(got)
        upto = 0
        while upto + 1 in held:
            upto += 1
        if upto < total:
            # a gap the hub could not read while the database was away (it goes on
            # past it): the client resumes with `since`, as after a reconnect
            await reader.send({"type": "leave", "order": "h3"})
            await reader.expect("left", order="h3")
            reader.frames.clear()
            await reader.join("h3", since=upto)
            await reader.expect("message", seq=total, timeout=20)
            assert seqs(reader, "h3") == list(range(upto + 1, total + 1))
        for node in c.nodes:  # asyncpg's pool logged a traceback for each reconnect it tried
            assert "Traceback" not in node.log(), node.log()

    await asyncio.wait_for(body(), TEST_TIMEOUT_S)


async def test_redis_restarted_with_two_hosts_on_postgres(hosts, redis_proc):
    c = hosts

    async def body():
        await c.api(0, "PUT", "/api/v1/orders/h4", ORDER)
        buyer = await c.client(0, "buyer1", "buyer")
        supplier = await c.client(1, "supplier1", "supplier")
        bots = [await c.client(i, f"bot{i}", "bot", orders="*") for i in range(2)]
        await buyer.join("h4")
        await supplier.join("h4")

        async def post(tag: str, n: int) -> None:
            async def one(bot: Client, i: int) -> None:
                for k in range(n):
                    ack = await bot.post("h4", f"{tag}{i}-{k}")
                    assert ack["type"] == "ack", ack

            await asyncio.gather(*(one(bot, i) for i, bot in enumerate(bots)))

        await post("before", 10)
        await asyncio.to_thread(redis_proc.kill)
        for node in c.nodes:
            await wait_for(lambda node=node: health(node.base).get("relay") == "degraded", what="degraded relay")
        await post("during", 10)  # stored in PostgreSQL, delivered on the sender's host at once
        st, page = await c.api(1, "GET", "/api/v1/orders/h4/messages?after=0&limit=100")
        assert [m["seq"] for m in page["messages"]] == list(range(1, 41))
        await asyncio.to_thread(redis_proc.start)
        for node in c.nodes:
            await wait_for(lambda node=node: health(node.base).get("relay") == "ok", what="relay back")
        await post("after", 10)
        for cl in (buyer, supplier):
            await cl.expect("message", seq=60, timeout=20)
            assert seqs(cl, "h4") == list(range(1, 61))

    await asyncio.wait_for(body(), TEST_TIMEOUT_S)
