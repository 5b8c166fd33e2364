"""`chatd migrate-store`: a SQLite installation filled through the ordinary
paths (REST, WebSocket, uploads, a webhook receiver that is down) is copied
into a real PostgreSQL database, and a chatd server on that database answers
every question as the SQLite server did: history, seq, read markers and
unread counts, inbox, threads and search, attachment downloads; it delivers
the webhook events still pending and carries on with the next seq."""

from __future__ import annotations

import asyncio
import hashlib
import io
import re
import sqlite3
import subprocess
import sys
import uuid

import aiohttp
import asyncpg
import pytest

from chatd.store import copy
from chatd.store.sqlite import migrations as sqlite_migrations
from tests.support import samples
from tests.support.client import API_KEY, Client, request, settled, token
from tests.support.postgres_server import new_database
from tests.support.procs import ROOT, ServerProc, child_env
from tests.support.receiver import Receiver, get

HOOK_SECRET = "webhook-secret-for-migrate-tests"  # a plain secret, as 0.1 configs have: its bytes are the key
PEOPLE = {  # user -> (role, orders they may join)
    "buyer1": ("buyer", ("M-1", "M-2")),
    "supplier1": ("supplier", ("M-1", "M-3")),
    "rep1": ("sales_rep", ("M-1", "M-3")),
    "supplier2": ("supplier", ("M-2",)),
    "buyer2": ("buyer", ("M-3",)),
    "boss": ("staff", ("M-1", "M-2", "M-3")),
}
ORDERS = ("M-1", "M-2", "M-3")
THREAD_QUERIES = (
    "",
    "?limit=2",
    "?q=pallets",
    "?q=pal%20dam",
    "?dispute=open",
    "?unread_for=buyer1",
    "?has_messages=any",
    "?has_messages=false",
    "?q=margin",
)


def migrate_store(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "chatd", "migrate-store", *args],
        cwd=ROOT,
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )


async def api(base: str, method: str, path: str, body=None, auth: str = API_KEY):
    async with aiohttp.ClientSession() as s:
        async with s.request(method, base + path, json=body, headers={"Authorization": f"Bearer {auth}"}) as r:
            return r.status, (await r.json() if r.content_type == "application/json" else await r.read())


async def upload(base: str, order: str, data: bytes, name: str, auth: str) -> dict:
    form = aiohttp.FormData()
    form.add_field("file", io.BytesIO(data), filename=name, content_type="application/octet-stream")
    async with aiohttp.ClientSession() as s:
        async with s.post(
            f"{base}/api/v1/orders/{order}/attachments", data=form, headers={"Authorization": f"Bearer {auth}"}
        ) as r:
            assert r.status == 201, await r.text()
            return await r.json()


async def client(srv: ServerProc, user: str) -> Client:
    return await Client.open(srv.ws_url, token(user, PEOPLE[user][0]))


async def acked(c: Client, frame: dict) -> dict:
    frame = {"client_id": str(uuid.uuid4()), **frame}
    answer = await request(c, frame, "ack")
    assert answer["type"] == "ack", answer
    return answer


async def fill(srv: ServerProc) -> dict:
    """Orders, messages of every kind, read markers (the shared staff one and follows too),
    an attachment sent and one not yet sent: through REST and WebSocket."""
    base = srv.base
    for order, buyer, supplier, rep in (
        ("M-1", "buyer1", "supplier1", "rep1"),
        ("M-2", "buyer1", "supplier2", None),
        ("M-3", "buyer2", "supplier1", "rep1"),
    ):
        st, body = await api(
            base,
            "PUT",
            f"/api/v1/orders/{order}",
            {
                "buyer": {"id": buyer, "name": buyer.title()},
                "supplier": {"id": supplier, "name": supplier.title()},
                "sales_rep": {"id": rep, "name": rep.title()} if rep else None,
            },
        )
        assert st == 201, body
    buyer, supplier, rep = [await client(srv, u) for u in ("buyer1", "supplier1", "rep1")]
    supplier2, staff = await client(srv, "supplier2"), await client(srv, "boss")
    try:
        await acked(buyer, {"type": "send", "order": "M-1", "text": "Are the pallets ready?"})
        await acked(supplier, {"type": "send", "order": "M-1", "text": "The pallets leave on Friday"})
        # a bot that holds no slot of M-1 read it so far: a side marker, which the rest is unread on
        bot = await Client.open(srv.ws_url, token("statusbot", "bot", orders=["M-1"]))
        try:
            await bot.join("M-1", limit=0)
            await bot.send({"type": "read", "order": "M-1", "seq": 2})
            await settled(bot)
        finally:
            await bot.close()
        await acked(
            rep, {"type": "send", "order": "M-1", "kind": "note", "text": "internal: margin on pallets is thin"}
        )
        await acked(
            supplier, {"type": "set_status", "order": "M-1", "status": "shipped", "text": "Shipped with Parcel Express"}
        )
        await acked(buyer, {"type": "dispute", "order": "M-1", "action": "open", "reason": "two pallets damaged"})
        photo = await upload(base, "M-1", samples.png(3, 2), "damage.png", token("buyer1", "buyer"))
        await acked(
            buyer, {"type": "send", "order": "M-1", "text": "photo of the damage", "attachments": [photo["id"]]}
        )
        unsent = await upload(base, "M-1", samples.pdf(2000), "claim.pdf", token("buyer1", "buyer"))
        for i in range(3):
            await acked(supplier2, {"type": "send", "order": "M-2", "text": f"quote {i} for crates"})
        await acked(supplier2, {"type": "help", "order": "M-2", "text": "the buyer asks for a discount"})  # still open
        st, body = await api(
            base,
            "POST",
            "/api/v1/orders/M-2/messages",
            {"client_id": "erp-1", "text": "Invoice INV-1 issued", "kind": "system"},
        )
        assert st == 201, body
        await buyer.send({"type": "read", "order": "M-1", "seq": 2})
        for order in ORDERS:  # joining as staff follows (the snapshot's joins then write nothing)
            await staff.join(order, limit=0)
        await staff.send({"type": "read", "order": "M-1", "seq": 3})  # the shared staff marker
        await rep.send({"type": "read", "order": "M-1", "seq": 5})
        for c in (buyer, staff, rep):
            await settled(c)
        st, body = await api(base, "POST", "/api/v1/orders/M-2/read", {"user": "buyer1", "seq": 1})
        assert st == 200, body
    finally:
        for c in (buyer, supplier, rep, supplier2, staff):
            await c.close()
    return {"photo": photo["id"], "unsent": unsent["id"]}


def offline(value):
    """`value` without who is online (connections come and go between the two servers)."""
    if isinstance(value, dict):
        return {k: offline(v) for k, v in value.items() if k != "online"}
    if isinstance(value, list):
        return [offline(v) for v in value]
    return value


async def snapshot(srv: ServerProc, atts: dict) -> dict:
    """Everything the API answers about the chats, with nothing written."""
    base, out = srv.base, {}
    for order in ORDERS:
        out[f"order {order}"] = offline(await api(base, "GET", f"/api/v1/orders/{order}"))
        out[f"messages {order}"] = await api(base, "GET", f"/api/v1/orders/{order}/messages?limit=200")
    out["messages M-1 as buyer"] = await api(base, "GET", "/api/v1/orders/M-1/messages", auth=token("buyer1", "buyer"))
    for q in THREAD_QUERIES:
        out[f"threads {q}"] = offline(await api(base, "GET", "/api/v1/threads" + q))
    out["threads as staff"] = offline(await api(base, "GET", "/api/v1/threads", auth=token("boss", "staff")))
    st, page = await api(base, "GET", "/api/v1/threads?has_messages=any&limit=2")
    assert st == 200 and page["next_cursor"], page  # carries the snapshot's log id
    out["threads page 1"] = offline(page)
    out["threads page 2"] = offline(
        await api(base, "GET", f"/api/v1/threads?has_messages=any&limit=2&cursor={page['next_cursor']}")
    )
    assert out["threads page 2"][0] == 200
    for user, (_role, orders) in PEOPLE.items():
        c = await client(srv, user)
        try:
            inbox = await request(c, {"type": "inbox", "limit": 50}, "inbox")
            out[f"inbox {user}"] = inbox
            for order in orders:
                joined = await c.join(order, limit=0)
                out[f"joined {user} {order}"] = offline({k: v for k, v in joined.items() if k != "_taken"})
        finally:
            await c.close()
    for name, att_id in atts.items():
        st, headers, body = await get(f"{base}/api/v1/attachments/{att_id}", token("buyer1", "buyer"))
        out[f"attachment {name}"] = (
            st,
            headers.get("Content-Type"),
            headers.get("Content-Disposition"),
            hashlib.sha256(body).hexdigest(),
        )
    st, headers, body = await get(f"{base}/api/v1/attachments/{atts['photo']}", token("supplier1", "supplier"))
    out["photo as supplier"] = (st, hashlib.sha256(body).hexdigest())
    return out


def digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def rows(output: str) -> dict[str, tuple[int, int]]:
    return {m[1]: (int(m[2]), int(m[3])) for m in re.finditer(r"^  (\w+) +(\d+) +(\d+)$", output, re.M)}


async def test_a_sqlite_installation_moves_to_postgresql(tmp_path):
    down, up = Receiver(HOOK_SECRET), Receiver(HOOK_SECRET)
    await down.start()
    await up.start()
    down.fail_next = 10**9  # every delivery fails: events stay in the outbox
    hooks = {"secret": HOOK_SECRET, "backoff_initial_s": 0.5, "backoff_max_s": 1.0, "max_attempts": 1000}
    (tmp_path / "sqlite").mkdir()
    (tmp_path / "pg").mkdir()
    old = ServerProc(tmp_path / "sqlite", {"store": {"url": ""}, "webhooks": {"url": down.url, **hooks}})
    new = None
    try:
        await old.astart()
        atts = await fill(old)
        before = await snapshot(old, atts)
        assert before["attachment photo"][0] == 200 and before["attachment unsent"][0] == 200
        assert before["inbox buyer1"]["total_unread"] > 0
        assert old.stop() == 0

        source = old.db_path
        pending = {
            r[0]
            for r in sqlite3.connect(f"file:{source}?mode=ro", uri=True).execute(
                "SELECT event_id FROM webhook_outbox WHERE dead = 0"
            )
        }
        assert pending, "the receiver was down: events wait in the outbox"
        side_sql = "SELECT side_unread FROM user_stats WHERE user_id = 'statusbot'"
        side = sqlite3.connect(f"file:{source}?mode=ro", uri=True).execute(side_sql).fetchone()[0]
        assert side > 0, "the copy has a side-marker total to carry"
        source_digest = digest(source)
        beside = sorted(p.name for p in source.parent.iterdir())

        url = new_database()
        done = await asyncio.to_thread(migrate_store, "--from", f"sqlite://{source}", "--to", url)
        assert done.returncode == 0, done.stderr
        counts = rows(done.stdout)
        assert set(counts) == {t.name for t in copy.TABLES}, done.stdout
        assert all(src == dst for src, dst in counts.values()), done.stdout
        assert counts["messages"][0] == 11 and counts["orders"][0] == 3 and counts["attachments"][0] == 2
        assert counts["webhook_outbox"][0] == len(pending) and counts["message_attachments"][0] == 1
        assert "every table's rows match" in done.stdout
        assert digest(source) == source_digest  # read, never written
        assert sorted(p.name for p in source.parent.iterdir()) == beside  # no -wal or -shm left beside it
        conn = await asyncpg.connect(url)
        try:
            assert await conn.fetchval(side_sql) == side  # the part of the bot's total on side markers
            # identities continue after the copied ids
            for table, column in copy.SEQUENCES:
                assert await conn.fetchval(
                    f"SELECT pg_sequence_last_value(pg_get_serial_sequence('{table}', '{column}'))"
                ) == await conn.fetchval(f"SELECT MAX({column}) FROM {table}")
        finally:
            await conn.close()

        again = await asyncio.to_thread(migrate_store, "--from", f"sqlite://{source}", "--to", url)
        assert again.returncode == 1 and "already holds chatd data" in again.stderr, again.stderr

        # the same attachment files: [attachments] dir points where the SQLite installation kept them
        new = ServerProc(
            tmp_path / "pg",
            {
                "store": {"url": url},
                "attachments": {"dir": str(source.parent / "attachments")},
                "webhooks": {"url": up.url, **hooks},
            },
        )
        await new.astart()
        after = await snapshot(new, atts)
        assert after.keys() == before.keys()
        for key in before:
            assert after[key] == before[key], key

        # the events still pending in SQLite are delivered from PostgreSQL
        await up.wait_for(lambda reqs: pending <= {r["json"]["id"] for r in reqs}, timeout=20)

        # and it carries on: the next seq, a new log id (newest in threads and search), new outbox ids
        supplier = await client(new, "supplier1")
        try:
            ack = await acked(supplier, {"type": "send", "order": "M-3", "text": "Pallets for you too"})
        finally:
            await supplier.close()
        assert ack["seq"] == 1
        buyer_ack = await api(
            new.base,
            "POST",
            "/api/v1/orders/M-1/messages",
            {"client_id": "erp-2", "text": "Replacement pallets ordered", "kind": "system"},
        )
        assert buyer_ack[0] == 201 and buyer_ack[1]["seq"] == before["order M-1"][1]["last_seq"] + 1
        st, body = await api(new.base, "GET", "/api/v1/threads?q=pallets")
        assert [t["order"] for t in body["threads"]] == ["M-1", "M-3"]
        assert body["threads"][0]["matches"][0]["text"] == "Replacement pallets ordered"
        st, body = await api(new.base, "GET", "/api/v1/threads?limit=2")
        assert [t["order"] for t in body["threads"]] == ["M-1", "M-3"]
        await up.wait_for(
            lambda reqs: any(r["json"].get("message", {}).get("text") == "Pallets for you too" for r in reqs),
            timeout=20,
        )
    finally:
        old.stop()
        if new is not None:
            new.stop()
        await down.stop()
        await up.stop()
    down.assert_verified()  # deliveries signed on SQLite and on PostgreSQL pass the standardwebhooks library
    up.assert_verified()


async def test_every_table_is_copied_or_accounted_for(tmp_path):
    """A table added by a later migration must be taught to the copy (or said to need none)."""
    db = sqlite3.connect(tmp_path / "s.sqlite3", isolation_level=None)
    sqlite_migrations.migrate(db)
    sqlite_tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    db.close()
    copied = {t.name for t in copy.TABLES}
    fts_shadows = ("messages_fts_", "order_words_fts_", "email_words_fts_")  # FTS5's own tables
    assert {t for t in sqlite_tables if not t.startswith(fts_shadows)} == copied | set(copy.NOT_COPIED)

    from chatd.store.postgres import migrations as pg_migrations

    conn = await asyncpg.connect(new_database())
    try:
        await pg_migrations.migrate(conn)
        pg_tables = {
            r[0] for r in await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = current_schema()")
        }
        identities = {
            (r[0], r[1])
            for r in await conn.fetch(
                "SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = current_schema() "
                "AND (is_identity = 'YES' OR column_default LIKE 'nextval(%')"
            )
        }
    finally:
        await conn.close()
    assert pg_tables == copied | {"chatd_schema"} | set(copy.DERIVED)
    assert identities == set(copy.SEQUENCES)


@pytest.mark.parametrize("case", ["old schema", "unknown table", "not chatd", "missing"])
async def test_a_source_it_cannot_copy_whole_is_refused(tmp_path, case):
    path = tmp_path / "chatd.sqlite3"
    if case != "missing":
        db = sqlite3.connect(path, isolation_level=None)
        if case == "not chatd":
            db.execute("CREATE TABLE notes (x)")
        else:
            sqlite_migrations.migrate(db)
            if case == "old schema":
                db.execute("PRAGMA user_version = 4")
            else:
                db.execute("CREATE TABLE later_feature (x)")
        db.close()
    before = path.read_bytes() if path.exists() else None
    url = new_database()
    done = await asyncio.to_thread(migrate_store, "--from", str(path), "--to", url)
    assert done.returncode == 1
    expected = {
        "old schema": "start this chatd on it once",
        "unknown table": "later_feature",
        "not chatd": "not a chatd database",
        "missing": "no such file",
    }[case]
    assert expected in done.stderr, done.stderr
    assert (path.read_bytes() if path.exists() else None) == before


@pytest.mark.parametrize("open_meanwhile", [False, True], ids=["closed", "open-in-wal-mode"])
async def test_a_source_written_during_the_copy_is_refused(tmp_path, open_meanwhile):
    """Stop chatd first: a write while the copy runs rolls the whole copy back."""
    path = tmp_path / "chatd.sqlite3"
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode = WAL")
    sqlite_migrations.migrate(db)
    db.execute(
        "INSERT INTO orders (id, status, buyer_id, buyer_name, supplier_id, supplier_name, created_ts) "
        "VALUES ('W-1', 'open', 'b', 'B', 's', 'S', 1)"
    )
    if not open_meanwhile:
        db.close()  # the last connection: -wal and -shm go, the file alone is complete

    def write_meanwhile(line: str) -> None:
        if line.startswith("messages:"):
            w = db if open_meanwhile else sqlite3.connect(path, isolation_level=None)
            w.execute(
                "INSERT INTO orders (id, status, buyer_id, buyer_name, supplier_id, supplier_name, "
                "created_ts) VALUES ('W-2', 'open', 'b', 'B', 's', 'S', 2)"
            )
            if not open_meanwhile:
                w.close()

    url = new_database()
    with pytest.raises(copy.CopyError, match="written to while it was copied"):
        await copy.copy_store(f"sqlite://{path}", url, progress=write_meanwhile)
    conn = await asyncpg.connect(url)
    try:
        assert await conn.fetchval("SELECT COUNT(*) FROM orders") == 0
    finally:
        await conn.close()
    if open_meanwhile:
        db.close()
