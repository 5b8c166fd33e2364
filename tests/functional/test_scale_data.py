"""The scale data set (scripts/scale): the generator's database is the one chatd itself
writes for the same requests.

A small plan (300 orders, 3,000 messages, one sales rep in 100 of them) is written
twice: by the generator, through the store, and by posting every action through a
real server (REST for orders, WebSocket for messages, statuses, disputes and reads,
each user on a connection of their own, the server's clock moved to each action's
time, the contact filter in its default `block` mode). Every table chatd keeps is
then equal row for row, and a server over the generated file answers inbox, replay
and search as the server that was posted to does. On PostgreSQL the generator's
copy answers the same again.
"""

from __future__ import annotations

import contextlib
import sqlite3

import aiohttp
import pytest

from chatd.app import create_app
from chatd.config import StoreConfig
from chatd.edge.keys import CHAT
from scripts.scale.generate import fill_sqlite, generate
from scripts.scale.plan import BIG_USER_ID, Dispute, NewOrder, Plan, Post, Read, Spec, Status, User
from tests.conftest import make_config, with_sections
from tests.support.client import API_KEY, Client, request, settled, token
from tests.support.clock import inject
from tests.support.postgres_server import new_database

SPEC = Spec(orders=300, messages=3000, big_orders=100, long_orders=1, long_messages=300, dispute_share=0.2)
# limits that only pace clients (posting from one test as fast as it can); the rest as shipped
PACE = {"rate_per_s": 10_000.0, "rate_burst": 10_000, "read_rate_per_s": 10_000.0, "read_burst": 10_000}
SECTIONS = {"filter": {"mode": "block"}, "sla": {"reply_within_s": 0.0}}  # no escalation: the clock jumps
# every table chatd keeps (what does not hold rows here, the outbox, notifications, contacts, is empty in both)
TABLES = {
    "orders": "id",
    "messages": "order_id, seq",
    "read_markers": "order_id, user_id",
    "user_stats": "user_id",
    "staff_markers": "order_id",
    "staff_follows": "user_id, order_id",
    "responses": "order_id, asked_seq",
    "message_log": "id",
    "order_words": "id",
    "search_state": "id",
    "buyer_reps": "buyer_id",
    "webhook_outbox": "id",
    "notifications": "id",
    "contacts": "user_id",
}
QUERIES = ("pallet", "invoice damaged", "forklift", "Lindqvist", "Hamburg crates")


def _server_config(tmp_path, store: StoreConfig):
    return with_sections(make_config(tmp_path, store, **PACE), SECTIONS)


class Poster:
    """A plan's actions through a running server, one connection per user."""

    def __init__(self, base: str, ws_url: str, clock) -> None:
        self.base, self.ws_url, self.clock = base, ws_url, clock
        self.conns: dict[str, Client] = {}
        self.http = aiohttp.ClientSession(headers={"Authorization": f"Bearer {API_KEY}"})

    async def conn(self, u: User) -> Client:
        if u.id not in self.conns:
            self.conns[u.id] = await Client.open(self.ws_url, token(u.id, u.role, u.name))
        c = self.conns[u.id]
        c.frames.clear()  # events for others' messages: nothing waits for them
        return c

    async def answer(self, u: User, frame: dict) -> dict:
        got = await request(await self.conn(u), frame, "ack")
        assert got["type"] == "ack", got
        return got

    async def apply(self, a) -> None:
        if isinstance(a, Read):
            c = await self.conn(a.user)
            await c.send({"type": "read", "order": a.order, "seq": a.seq})
            await settled(c)
            return
        self.clock.t = a.ts / 1000
        if isinstance(a, NewOrder):
            body = {
                "buyer": {"id": a.buyer.id, "name": a.buyer.name},
                "supplier": {"id": a.supplier.id, "name": a.supplier.name},
                "sales_rep": {"id": a.rep.id, "name": a.rep.name} if a.rep else None,
            }
            async with self.http.put(f"{self.base}/api/v1/orders/{a.order}", json=body) as r:
                assert r.status == 201, await r.text()
            return
        frame: dict
        if isinstance(a, Post):
            frame = {"type": "send", "order": a.order, "client_id": a.client_id, "text": a.text, "kind": a.kind}
        elif isinstance(a, Status):
            frame = {"type": "set_status", "order": a.order, "client_id": a.client_id, "status": a.status}
        else:
            assert isinstance(a, Dispute)
            frame = {"type": "dispute", "order": a.order, "client_id": a.client_id, "action": a.action}
            frame["reason"] = a.reason
        ack = await self.answer(a.user, frame)
        assert ack["ts"] == a.ts and not ack["duplicate"], (a, ack)

    async def close(self) -> None:
        for c in self.conns.values():
            await c.close()
        await self.http.close()


def dump(path) -> dict[str, list[tuple]]:
    with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
        return {t: db.execute(f"SELECT * FROM {t} ORDER BY {key}").fetchall() for t, key in TABLES.items()}


def fts_hits(path) -> dict[str, list[int]]:
    with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
        return {
            w: [
                r[0]
                for r in db.execute("SELECT rowid FROM messages_fts WHERE messages_fts MATCH ? ORDER BY rowid", (w,))
            ]
            for w in ("pallet*", "invoice", "lindqvist", "delivery*", "damaged")
        }


async def answers(base: str, ws_url: str, plan: Plan) -> dict:
    """What a server says about the data: the busy rep's inbox (every page), a replay of the
    long order with `since` as its supplier, and the threads search for some words."""
    out: dict = {}
    rep = await Client.open(ws_url, token(BIG_USER_ID, "sales_rep", plan.big_user.name))
    pages, cursor = [], None
    while True:
        page = await request(rep, {"type": "inbox", "limit": 200, **({"cursor": cursor} if cursor else {})}, "inbox")
        pages.append(page)
        if not (cursor := page["next_cursor"]):
            break
    out["inbox"] = pages
    await rep.close()
    long_order = plan.orders[0]
    supplier = await Client.open(ws_url, token(long_order.supplier.id, "supplier", long_order.supplier.name))
    joined = await supplier.join(long_order.id, since=long_order.n - 120, limit=1000)
    msgs = [await supplier.expect("message", order=long_order.id) for _ in range(120)]
    out["replay"] = {k: joined[k] for k in ("last_seq", "read_seq", "unread", "truncated", "status")}, msgs
    await supplier.close()
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {API_KEY}"}) as http:
        for q in QUERIES:
            out[q], cursor = [], None
            while True:  # every page, through the cursor
                params = {"q": q, "limit": "40", **({"cursor": cursor} if cursor else {})}
                async with http.get(f"{base}/api/v1/threads", params=params) as r:
                    assert r.status == 200
                    body = await r.json()
                out[q] += [
                    (
                        t["order"],
                        t["activity_ts"],
                        t["last_message"]["seq"],
                        t["match_count"],
                        [m["seq"] for m in t["matches"]],
                    )
                    for t in body["threads"]
                ]
                if not (cursor := body["next_cursor"]):
                    break
    return out


@pytest.fixture
async def generated(tmp_path):
    plan = Plan(SPEC)
    await fill_sqlite(str(tmp_path / "generated.sqlite3"), plan, say=lambda _line: None)
    return plan, tmp_path / "generated.sqlite3"


async def test_the_generated_database_is_what_posting_through_chatd_writes(tmp_path, aiohttp_server, generated):
    plan, path = generated
    assert sum(o.n for o in plan.orders) == SPEC.messages and len(plan.big_order_ids) == 100
    posted_path = tmp_path / "posted.sqlite3"
    srv = await aiohttp_server(create_app(_server_config(tmp_path, StoreConfig(path=str(posted_path)))))
    base, ws_url = f"http://127.0.0.1:{srv.port}", f"ws://127.0.0.1:{srv.port}/ws"
    poster = Poster(base, ws_url, inject(srv))
    try:
        for action in Plan(SPEC).actions():
            await poster.apply(action)
    finally:
        await poster.close()
    await srv.app[CHAT].store.index_search()
    posted_answers = await answers(base, ws_url, plan)

    generated_tables, posted_tables = dump(path), dump(posted_path)
    for table in TABLES:
        assert generated_tables[table] == posted_tables[table], table
    counts = {t: len(rows) for t, rows in generated_tables.items()}
    assert counts["messages"] == 3000 and counts["orders"] == 300 and counts["staff_markers"] > 0, counts
    assert fts_hits(path) == fts_hits(posted_path)

    other = await aiohttp_server(create_app(_server_config(tmp_path, StoreConfig(path=str(path)))))
    got = await answers(f"http://127.0.0.1:{other.port}", f"ws://127.0.0.1:{other.port}/ws", plan)
    assert got == posted_answers
    inbox = [e for page in got["inbox"] for e in page["orders"]]
    assert len(inbox) == 100 and any(e["unread"] for e in inbox)
    assert all(got[q] for q in ("pallet", "forklift", "Lindqvist"))


async def test_a_search_walking_the_threads_finds_what_reading_every_match_finds(
    tmp_path, aiohttp_server, generated, monkeypatch
):
    """The store reads a rare word's matches whole and walks the threads for a common one
    (chatd.store.sqlite.search): made to walk in small steps for every word, and to give
    up walking half way, it lists the same threads with the same matches, page after page."""
    from chatd.store.sqlite import search

    plan, path = generated
    srv = await aiohttp_server(create_app(_server_config(tmp_path, StoreConfig(path=str(path)))))
    base, ws_url = f"http://127.0.0.1:{srv.port}", f"ws://127.0.0.1:{srv.port}/ws"
    whole = await answers(base, ws_url, plan)
    monkeypatch.setattr(search, "READ_WHOLE", -1)
    for scan, ask, scans in ((7, 3, 1000), (7, 3, 2), (300, 400, 2)):
        monkeypatch.setattr(search, "SCAN", scan)
        monkeypatch.setattr(search, "ASK", ask)
        monkeypatch.setattr(search, "SCANS", scans)
        walked = await answers(base, ws_url, plan)
        for q in QUERIES:
            assert walked[q] == whole[q], (q, scan, ask, scans)


WALKS = {"READ_WHOLE": -1, "SCAN": 7, "ASK": 3, "SCANS": 2}  # every search walks, in small steps, then reads whole


@pytest.mark.parametrize("walk", [False, True], ids=["as-tuned", "walking"])
async def test_the_postgresql_copy_answers_as_the_sqlite_file(tmp_path, aiohttp_server, generated, walk, monkeypatch):
    """Also with the PostgreSQL store walking the threads for every word (chatd.store.postgres.search)."""
    from chatd.store.postgres import search

    for name, value in WALKS.items() if walk else ():
        monkeypatch.setattr(search, name, value)
    plan, path = generated
    url = new_database()
    await generate(url, SPEC, via=str(tmp_path / "via.sqlite3"), say=lambda _line: None)
    assert dump(tmp_path / "via.sqlite3") == dump(path)  # the same plan, the same file
    sqlite_srv = await aiohttp_server(create_app(_server_config(tmp_path, StoreConfig(path=str(path)))))
    pg_srv = await aiohttp_server(create_app(_server_config(tmp_path, StoreConfig(url=url))))
    want = await answers(f"http://127.0.0.1:{sqlite_srv.port}", f"ws://127.0.0.1:{sqlite_srv.port}/ws", plan)
    got = await answers(f"http://127.0.0.1:{pg_srv.port}", f"ws://127.0.0.1:{pg_srv.port}/ws", plan)
    assert got == want
