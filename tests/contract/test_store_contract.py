"""The Store contract (chatd/store/base.py), checked against every backend.

Each test runs once per name in tests.contract.stores.BACKENDS, over a real
database: a SQLite file, or a database of its own on a real PostgreSQL server
(tests/support/postgres_server.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import sys
import threading
from collections.abc import AsyncIterator, Awaitable
from pathlib import Path
from typing import Any

import msgspec
import pytest

from chatd.auth import permissions
from chatd.errors import BadRequest, ChatError, Conflict, Forbidden, Internal, NotFound, Unavailable
from chatd.responses import effect
from chatd.store.base import Store
from chatd.store.records import AttachmentRow, Person
from chatd.store.rows import Actor, now_ms
from chatd.wire import AttachmentRef
from tests.contract.stores import BACKENDS, BUYER, REP, SUPPLIER, make_store, put_order
from tests.support.clock import Clock

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(params=BACKENDS)
def store_backend(request) -> str:
    return request.param


@pytest.fixture
def store_where(store_backend, tmp_path) -> str:
    """The database every store of one test shares."""
    if store_backend == "postgres":
        from tests.support.postgres_server import new_database

        return new_database()
    return str(tmp_path / "contract.sqlite3")


@pytest.fixture
async def store_factory(store_backend, store_where):
    """Opens more stores over the same database (another instance, as far as
    the backend can tell); all closed at the end."""
    opened: list[Store] = []

    async def open_store(**hooks) -> Store:
        store = make_store(store_backend, store_where, **hooks)
        await store.open()
        opened.append(store)
        return store

    yield open_store
    for store in reversed(opened):
        await store.aclose()


@pytest.fixture
async def store(store_factory) -> Store:
    return await store_factory()


async def _seqs(store: Store, order_id: str, sees_notes: bool = True) -> list[int]:
    msgs, more = await store.history(order_id, sees_notes, None, 0, 10_000)
    assert not more
    return [m.seq for m in msgs]


# --- a write returns only after commit --------------------------------------------------


async def test_a_write_is_visible_to_another_store_once_it_returns(store, store_factory):
    await put_order(store, "o1")
    posted = await store.post(SUPPLIER, "o1", "hello", "c1")
    other = await store_factory()  # its own connections: sees only what committed
    assert await _seqs(other, "o1") == [posted.message.seq] == [1]
    assert (await other.get_order("o1")).last_seq == 1


async def test_a_write_queued_before_close_is_committed_by_close(store_factory):
    first = await store_factory()
    await put_order(first, "o1")
    pending = [asyncio.ensure_future(first.post(SUPPLIER, "o1", f"m{i}", f"c{i}")) for i in range(20)]
    await asyncio.sleep(0)  # one loop turn: each task has queued its write (tasks start in order)
    await first.aclose()  # flushes the queue first
    assert sorted(p.result().message.seq for p in pending) == list(range(1, 21))
    reopened = await store_factory()
    assert await _seqs(reopened, "o1") == list(range(1, 21))


# --- seq: gapless and unique, also across writers ----------------------------------------


async def test_seq_is_gapless_and_unique_with_two_stores_writing_at_once(store, store_factory):
    await put_order(store, "o1")
    other = await store_factory()
    a = [store.post(SUPPLIER, "o1", f"a{i}", f"a{i}") for i in range(150)]
    b = [other.post(BUYER, "o1", f"b{i}", f"b{i}") for i in range(150)]
    posted = await asyncio.gather(*[x for pair in zip(a, b, strict=True) for x in pair])
    seqs = sorted(p.message.seq for p in posted)
    assert seqs == list(range(1, 301))
    assert await _seqs(store, "o1") == list(range(1, 301))


async def test_seq_is_gapless_and_unique_with_other_processes_writing(store, store_backend, store_where):
    await put_order(store, "o1")
    procs = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "tests.contract.stores",
            store_backend,
            store_where,
            "o1",
            "100",
            f"p{i}",
            cwd=ROOT,
            stdout=asyncio.subprocess.PIPE,
        )
        for i in range(2)
    ]
    mine = await asyncio.gather(*(store.post(REP, "o1", f"here {i}", f"here-{i}") for i in range(100)))
    outputs = [await p.communicate() for p in procs]
    assert [p.returncode for p in procs] == [0, 0]
    theirs = [s for out, _ in outputs for s in msgspec.json.decode(out)]
    assert sorted(theirs + [p.message.seq for p in mine]) == list(range(1, 301))
    assert await _seqs(store, "o1") == list(range(1, 301))


# --- (order, sender, client_id) stored once ---------------------------------------------


async def test_a_repeated_client_id_returns_the_original(store):
    await put_order(store, "o1")
    first = await store.post(SUPPLIER, "o1", "hello", "c1")
    again = await store.post(SUPPLIER, "o1", "hello, edited", "c1")
    assert not first.duplicate and again.duplicate
    assert again.message == first.message and again.unread == []
    other_sender = await store.post(BUYER, "o1", "hi", "c1")  # the key includes the sender
    assert not other_sender.duplicate and other_sender.message.seq == 2
    assert await _seqs(store, "o1") == [1, 2]


async def test_a_client_id_repeated_through_two_stores_at_once_is_stored_once(store, store_factory):
    await put_order(store, "o1")
    other = await store_factory()
    posted = await asyncio.gather(*(s.post(SUPPLIER, "o1", "once", "same") for s in (store, other) for _ in range(5)))
    assert sum(not p.duplicate for p in posted) == 1
    assert {p.message.seq for p in posted} == {1}
    assert await _seqs(store, "o1") == [1]


async def test_a_repeated_status_change_is_answered_before_its_rules(store):
    await put_order(store, "o1")
    first = await store.set_status(SUPPLIER, "o1", "shipped", "st1", None)
    again = await store.set_status(SUPPLIER, "o1", "shipped", "st1", None)
    assert again.duplicate and again.message == first.message
    assert (await store.get_order("o1")).status == "shipped"
    assert await _seqs(store, "o1") == [1]


# --- side rows commit with their write or not at all ------------------------------------


async def test_outbox_events_commit_with_their_message(store, store_factory):
    seen = []

    def events(order, msg, present):
        seen.append(present)
        return [("message.created", {"order": order.id, "seq": msg.seq})]

    store.events_for_message = events
    store.events_for_order = lambda old, new: [("order.changed", {"order": new.id})] if old else []
    woken = []
    store.on_outbox = lambda: woken.append(True)
    await put_order(store, "o1")
    await store.post(SUPPLIER, "o1", "hello", "c1", present=frozenset({"s1"}))
    await store.post(SUPPLIER, "o1", "hello", "c1", present=frozenset())  # a repeat writes no event
    await put_order(store, "o1")  # an update announces itself
    assert seen == [frozenset({"s1"})]
    assert woken  # after the commit
    other = await store_factory()
    assert await other.outbox_counts() == (2, 0)
    claimed = await other.claim_events(now_ms(), now_ms() + 60_000, 10)
    assert sorted(e.type for e in claimed) == ["message.created", "order.changed"]
    body = msgspec.json.decode(next(e.body for e in claimed if e.type == "message.created"))
    assert body["seq"] == 1 and body["type"] == "message.created" and body["id"]
    assert await other.claim_events(now_ms(), now_ms() + 60_000, 10) == []  # leased
    await other.settle_events([e.id for e in claimed], [])
    assert await store.outbox_counts() == (0, 0)


async def test_a_failing_side_row_function_rolls_the_message_back(store):
    def broken(order, msg, present):
        raise RuntimeError("a bug in the event function")

    await put_order(store, "o1")
    store.events_for_message = broken
    with pytest.raises(Internal):
        await store.post(SUPPLIER, "o1", "lost", "c1")
    assert await _seqs(store, "o1") == []
    assert (await store.get_order("o1")).last_seq == 0
    assert await store.marker("o1", BUYER.id, False, 0) == (0, 0, 0)  # no unread left behind
    assert await store.outbox_counts() == (0, 0)
    store.events_for_message = None
    assert (await store.post(SUPPLIER, "o1", "kept", "c1")).message.seq == 1  # no seq was used up


async def test_attachment_links_commit_with_their_message(store):
    await put_order(store, "o1")
    row = AttachmentRow("a1", "o1", SUPPLIER.id, "p.png", "image/png", 3, "ab" * 32, now_ms())
    await store.add_attachment(row)
    assert (await store.attachment("a1")).linked is False
    ref = AttachmentRef("a1", "p.png", "image/png", 3)
    posted = await store.post(SUPPLIER, "o1", "", "c1", "note", attachments=[ref])
    assert posted.message.attachments == [ref]
    assert await store.attachment_links("a1") == [("o1", "note")]
    assert (await store.attachment("a1")).linked is True
    assert await store.delete_unreferenced(now_ms() + 1) == (0, [])  # linked: kept


async def test_a_message_whose_upload_was_deleted_is_refused_and_leaves_no_trace(store):
    await put_order(store, "o1")
    row = AttachmentRow("a1", "o1", SUPPLIER.id, "p.png", "image/png", 3, "cd" * 32, now_ms() - 10)
    await store.add_attachment(row)
    ref = AttachmentRef("a1", "p.png", "image/png", 3)
    assert await store.delete_unreferenced(now_ms()) == (1, ["cd" * 32])
    assert not await store.sha256_in_use("cd" * 32)
    store.events_for_message = lambda order, msg, present: [("message.created", {})]
    with pytest.raises(BadRequest, match="unknown attachment a1"):
        await store.post(SUPPLIER, "o1", "photo", "c1", attachments=[ref])
    assert await _seqs(store, "o1") == []
    assert await store.attachment_links("a1") == []
    assert await store.outbox_counts() == (0, 0)
    assert await store.sent("o1", SUPPLIER.id, "c1") is None


async def test_a_retry_whose_upload_was_deleted_since_is_the_stored_message(store):
    await put_order(store, "o1")
    await store.add_attachment(AttachmentRow("a1", "o1", SUPPLIER.id, "p.png", "image/png", 3, "cd" * 32, now_ms()))
    ref = AttachmentRef("a1", "p.png", "image/png", 3)
    first = await store.post(SUPPLIER, "o1", "photo", "c1", attachments=[ref])
    await store.delete_attachment("a1")
    again = await store.post(SUPPLIER, "o1", "photo", "c1", attachments=[ref])
    assert again.duplicate and again.message == first.message
    assert await store.sent("o1", SUPPLIER.id, "c1") == first.message
    assert await store.sent("o1", BUYER.id, "c1") is None  # another sender's client_id is theirs
    assert await _seqs(store, "o1") == [1]


# --- refusals raise ChatError before anything is written --------------------------------


async def test_refusals_raise_before_writing(store):
    store.events_for_message = lambda order, msg, present: [("message.created", {})]
    await put_order(store, "o1")
    outsider = Actor("x9", "X", "buyer")
    cases = [
        (Forbidden, store.post(BUYER, "o1", "a note", "n1", "note")),  # buyers write no notes
        (NotFound, store.post(outsider, "o1", "hi", "x1")),  # not a participant
        (NotFound, store.post(SUPPLIER, "nope", "hi", "x2")),  # no such order
        (Forbidden, store.set_status(BUYER, "o1", "cancelled", "st1", None)),
        (Conflict, store.dispute(SUPPLIER, "o1", "close", "d1", None)),  # none is open
        (Forbidden, store.dispute(SUPPLIER, "o1", "open", "d2", "why")),
    ]
    # queued together: they share a batch with a write that succeeds, which commits alone
    ok = store.post(SUPPLIER, "o1", "fine", "ok1")
    results = await asyncio.gather(*(c for _, c in cases), ok, return_exceptions=True)
    for (expected, _), got in zip(cases, results[:-1], strict=True):
        assert isinstance(got, expected) and isinstance(got, ChatError), got
    assert results[-1].message.seq == 1
    order = await store.get_order("o1")
    assert order.status == "open" and order.dispute is None and order.last_seq == 1
    assert await _seqs(store, "o1") == [1]
    assert await store.outbox_counts() == (1, 0)  # the message that was stored, only
    assert (await store.marker("o1", BUYER.id, False, order.last_seq))[:2] == (0, 1)  # "fine" only
    assert (await store.post(SUPPLIER, "o1", "next", "ok2")).message.seq == 2


async def test_a_batch_decides_each_write_on_the_order_as_the_writes_before_it_left_it(store):
    """Writes queued together share a batch, and PostgreSQL locks and reads the
    batch's orders in one statement up front: each write must still see the order
    as the writes before it in the batch left it (its people, its last seq)."""
    await put_order(store, "o1")
    newcomer = Actor("s2", "Supplier Two", "supplier")
    before = store.batches  # type: ignore[attr-defined]
    change, gone, took, welcome = await _together(
        store,
        store.put_order("o1", None, None, Person(newcomer.id, newcomer.name)),
        store.post(SUPPLIER, "o1", "still here?", "a1"),
        store.post(newcomer, "o1", "I took over", "a2"),
        store.post(BUYER, "o1", "welcome", "a3"),
        return_exceptions=True,
    )
    assert change.order.supplier.id == newcomer.id
    assert isinstance(gone, NotFound)  # the supplier the change replaced
    assert (took.message.seq, welcome.message.seq) == (1, 2)
    again = await _together(
        store,
        store.post(BUYER, "o1", "one", "b1"),
        store.post(newcomer, "o1", "two", "b2"),
        store.post(REP, "o1", "3", "b3"),
    )
    assert store.batches == before + 2  # type: ignore[attr-defined]  # else this shows nothing
    assert [p.message.seq for p in again] == [3, 4, 5]
    assert await _seqs(store, "o1") == [1, 2, 3, 4, 5]
    assert (await store.get_order("o1")).last_seq == 5


async def test_a_closed_store_answers_unavailable(store_factory):
    store = await store_factory()
    await put_order(store, "o1")
    await store.aclose()
    with pytest.raises(Unavailable):
        await store.post(SUPPLIER, "o1", "late", "c1")
    with pytest.raises(Unavailable):
        await store.get_order("o1")


# --- unread counts are exact -------------------------------------------------------------


async def test_unread_counts_are_exact(store, store_factory):
    await put_order(store, "o1")
    await put_order(store, "o2")
    other = await store_factory()
    writes = [store.post(SUPPLIER, "o1", f"t{i}", f"t{i}") for i in range(7)]
    writes += [other.post(REP, "o1", f"n{i}", f"n{i}", "note") for i in range(3)]  # buyers don't see notes
    writes += [other.post(SUPPLIER, "o2", f"u{i}", f"u{i}") for i in range(4)]
    await asyncio.gather(*writes)
    o1 = await store.get_order("o1")
    read_seq, unread, last_visible = await store.marker("o1", BUYER.id, False, o1.last_seq)
    assert (read_seq, unread) == (0, 7)
    assert last_visible == max(m.seq for m in (await store.history("o1", False, None, 0, 100))[0])
    # writing reads the order: what is unread is what others wrote after one's last message
    for who in (SUPPLIER, REP):
        msgs = (await store.history("o1", True, None, 0, 100))[0]
        own = max((m.seq for m in msgs if m.sender.id == who.id), default=0)
        expected = sum(1 for m in msgs if m.seq > own and m.sender.id != who.id)
        assert (await store.marker("o1", who.id, True, o1.last_seq))[:2] == (own, expected)
    assert await store.total_unread(BUYER.id) == 11

    marker = await store.mark_read(BUYER, "o1", BUYER.id, o1.last_seq)
    assert (marker.unread, marker.total) == (0, 4)
    assert await other.total_unread(BUYER.id) == 4
    replied = await store.post(BUYER, "o2", "thanks", "r1")  # writing reads the order
    assert replied.unread[-1].user == BUYER.id and replied.unread[-1].count == 0
    assert await other.total_unread(BUYER.id) == 0
    entries, total, _ = await other.inbox(_Ident(BUYER.id, "buyer"), 10, None)
    assert total == 0 and sorted((e[0], e[2]) for e in entries) == [("o1", 0), ("o2", 0)]
    back = await store.mark_read(None, "o1", BUYER.id, 2, backward=True)  # the api key marks unread
    visible_after_2 = len([m for m in (await store.history("o1", False, None, 2, 100))[0] if m.sender.id != BUYER.id])
    assert back.unread == visible_after_2 and await store.total_unread(BUYER.id) == visible_after_2
    entries, total, _ = await other.inbox(_Ident(BUYER.id, "buyer"), 10, None, ["o1", "o-none"])
    assert [(e[0], e[2]) for e in entries] == [("o1", visible_after_2)] and total == visible_after_2


async def test_a_batch_of_messages_reports_what_each_write_left(store):
    """Messages queued together are written as one batch (on PostgreSQL in one
    statement: chatd.store.postgres.batch); each still reports the unread counts,
    totals and reply clock as its own write left them, as if written one by one."""
    bot = Actor("bt1", "Bot", "bot", "*")
    await put_order(store, "o1")
    await put_order(store, "o2")
    await store.post(SUPPLIER, "o2", "older", "old-1")  # unread elsewhere: part of the totals
    await store.post(SUPPLIER, "o1", "stored", "c-stored")
    for order_id in ("o2", "o1"):
        await store.mark_read(bot, order_id, bot.id, 0, backward=True)  # side markers: the hidden sums
    roles = {a.id: a.role for a in (BUYER, SUPPLIER, REP, bot)}
    unread = {u: (await store.marker("o1", u, True, 1))[1] for u in roles}
    totals = {u: await store.total_unread(u) for u in roles}
    people = [BUYER, SUPPLIER, REP]
    posted = await _together(
        store,
        *(
            store.post(
                people[i % 3],
                "o1",
                f"Is pallet {i} ready?" if i % 3 == 0 else f"About pallet {i}",
                f"c{i}",
                "note" if i % 6 == 2 else "text",
            )
            for i in range(16)  # the last one asks: the clock runs at the end
        ),
    )
    assert [p.message.seq for p in posted] == list(range(2, 18))

    for p in posted:  # what is unread is what others wrote after one's last message
        m, expected = p.message, []
        for user, role in roles.items():
            before = unread[user]
            if user == m.sender.id:
                unread[user] = 0
            elif m.kind != "note" or permissions.sees_notes(role):
                unread[user] += 1
            totals[user] += unread[user] - before
            if user != m.sender.id and (m.kind != "note" or permissions.sees_notes(role)):
                expected.append((user, unread[user], totals[user]))
            elif user == m.sender.id and before and role != "bot":
                expected.append((user, 0, totals[user]))
        got = [(u.user, u.count, u.total) for u in p.unread]
        assert sorted(got) == sorted(expected), m.seq
        assert all(u.hidden == (u.total if u.user == bot.id else 0) for u in p.unread), m.seq  # the bot's are side
    for user in roles:
        assert await store.total_unread(user) == totals[user], user

    periods, since = [], None  # the reply clock, replayed over what was stored
    for m in (await store.history("o1", True, None, 0, 100))[0]:
        what = effect(m.sender.role, m.kind, m.text, bool(m.attachments))
        if what == "ask" and since is None:
            since = m
            periods.append((m.ts, None))
        elif what == "answer" and since is not None:
            periods[-1], since = (periods[-1][0], m.ts), None
    by_times = lambda ps: sorted(ps, key=lambda p: (p[0], p[1] or 0))  # noqa: E731
    assert len(periods) > 1 and by_times(await store.response_periods(0, None, None)) == by_times(periods)
    waiting = (await store.get_order("o1")).waiting
    assert since is not None and (waiting.seq, waiting.since) == (since.seq, since.ts)
    assert [p.waiting for p in posted if p.waiting_changed][-1] == waiting


async def test_a_batch_answers_repeats_as_the_originals(store):
    await put_order(store, "o1")
    stored = await store.post(SUPPLIER, "o1", "stored", "c-stored")
    writes = [store.post((BUYER, SUPPLIER)[i % 2], "o1", f"m{i}", f"c{i}") for i in range(6)]
    writes.insert(3, store.post(SUPPLIER, "o1", "again", "c1"))  # a repeat of one in the same batch
    writes.insert(5, store.post(SUPPLIER, "o1", "again", "c-stored"))  # of one stored before
    writes.append(store.post(BUYER, "o1", "last", "c-last"))
    posted = await _together(store, *writes)
    assert [p.duplicate for p in posted] == [False] * 3 + [True, False, True] + [False] * 3
    assert posted[3].message == posted[1].message and posted[5].message == stored.message
    assert [p.message.seq for p in posted if not p.duplicate] == list(range(2, 9))
    assert await _seqs(store, "o1") == list(range(1, 9))


async def test_a_batch_over_many_orders_reports_each_orders_counts(store):
    orders = [f"o{i}" for i in range(8)]
    for order_id in orders:
        await put_order(store, order_id)
    writes = [store.post((BUYER, SUPPLIER, REP)[i % 3], orders[i % 8], f"m{i}", f"c{i}") for i in range(40)]
    posted = await _together(store, *writes)
    for order_id in orders:
        mine = [p for p in posted if p.message.order == order_id]
        assert sorted(p.message.seq for p in mine) == list(range(1, 6))
        last_seq = max(p.message.seq for p in mine)
        last = {u.user: u.count for p in sorted(mine, key=lambda p: p.message.seq) for u in p.unread}
        for user, count in last.items():
            assert (await store.marker(order_id, user, True, last_seq))[1] == count, (order_id, user)


async def test_a_batch_writes_its_events_and_notifications_in_the_order_of_its_writes(store_factory):
    """On PostgreSQL a batch holds its messages' outbox events and notifications with
    them (chatd.store.postgres.batch): a write of the batch that runs a statement of its
    own must still find them written, and the events keep the messages' order."""
    from chatd.notifications import Rules
    from chatd.store.records import NotifyPrefs

    store = await store_factory(notifications_for=Rules(60).plan)
    store.events_for_message = lambda order, msg, present: [("message.created", {"seq": msg.seq})]
    await put_order(store, "n1")
    await store.set_notify_prefs(REP.id, NotifyPrefs(True, ["n1"]))
    before = store.batches  # type: ignore[attr-defined]
    await _together(
        store,
        *(store.post(SUPPLIER, "n1", f"m{i}", f"a{i}") for i in range(3)),
        store.mark_read(BUYER, "n1", BUYER.id, 3),  # reads what the three left pending
        *(store.post(SUPPLIER, "n1", f"m{i}", f"a{i}") for i in range(3, 5)),
    )
    assert store.batches == before + 1  # type: ignore[attr-defined]  # else this shows nothing
    (pending,) = await store.pending_notifications(BUYER.id)
    assert (pending.first_seq, pending.last_seq) == (4, 5)  # the read settled the first three
    assert await store.pending_notifications(REP.id) == []  # muted
    events = await store.claim_events(now_ms() + 10**9, now_ms() + 10**9, 10)
    bodies = [msgspec.json.decode(e.body) for e in sorted(events, key=lambda e: e.id)]
    assert [(b["type"], b["seq"]) for b in bodies] == [("message.created", seq) for seq in range(1, 6)]


def _script(seed: int) -> list[list[tuple]]:
    """Three batches of posts (some with a photo) and reads in two orders with the same
    people: in the first two each read goes to the newest message (what an open chat
    sends); the third also moves markers to older messages and back, and has staff
    reads and status changes (each a statement of its own amid the batch's held
    messages; a status message is the order's newest non-note)."""
    rng, people = random.Random(seed), [BUYER, SUPPLIER, REP, _BOT]
    batches: list[list[tuple]] = []
    for anywhere in (False, False, True):
        ops: list[tuple] = []
        for _ in range(24):
            who, order = rng.choice(people), rng.choice(("o1", "o2"))
            if rng.random() < 0.5:
                kind = "note" if who in (SUPPLIER, REP) and rng.random() < 0.3 else "text"
                ops.append(("post", who, order, kind, rng.randrange(4) if rng.random() < 0.2 else None))
            elif anywhere and rng.random() < 0.2:
                ops.append(("staff", order))
            elif anywhere and rng.random() < 0.2:
                ops.append(("status", SUPPLIER, order, rng.choice(("processing", "shipped"))))
            elif anywhere and rng.random() < 0.5:
                ops.append(("read", who, order, rng.randint(0, 20), rng.random() < 0.5))
            else:
                ops.append(("read", who, order, 1 << 40, False))
        batches.append(ops)
    return batches


_BOT = Actor("bt1", "Bot", "bot", "*")
_STAFF = Actor("st1", "Staff", "staff")


@contextlib.asynccontextmanager
async def _writer_held(store: Store) -> AsyncIterator[None]:
    """The writes queued meanwhile make one batch. PostgreSQL's writers run on a loop
    of their own, which would start a batch as soon as its first write arrives; that
    loop waits here. SQLite's writer is a task of this loop, which waits already."""
    wloop = getattr(store, "_wloop", None)
    if wloop is None:
        yield
        return
    held, release = threading.Event(), threading.Event()

    def hold() -> None:
        held.set()
        release.wait(30)

    wloop.call_soon_threadsafe(hold)
    await asyncio.to_thread(held.wait, 30)
    try:
        yield
    finally:
        release.set()


async def _together(store: Store, *writes: Awaitable[Any], return_exceptions: bool = False) -> list[Any]:
    """`writes` queued before the writer takes any of them (one batch per writer), which
    must not fail as a batch: the store would run each write alone, and answer as right."""
    failed: list[logging.LogRecord] = []
    watch = logging.Handler(logging.WARNING)
    watch.emit = failed.append  # type: ignore[method-assign]
    logging.getLogger("chatd.store").addHandler(watch)
    try:
        async with _writer_held(store):
            tasks = [asyncio.ensure_future(w) for w in writes]
            await asyncio.sleep(0)  # each task runs to its queued write
        results = await asyncio.gather(*tasks, return_exceptions=return_exceptions)
    finally:
        logging.getLogger("chatd.store").removeHandler(watch)
    assert not failed, [r.getMessage() for r in failed]
    return results


async def _play(store: Store, batches: list[list[tuple]], together: bool) -> list:
    """What each write of `batches` reports, then what they leave: markers, totals, notifications."""
    store.clock = lambda: 1_800_000_000.0  # type: ignore[attr-defined]
    people = [BUYER, SUPPLIER, REP, _BOT]
    photos = [AttachmentRow(f"a{k}", "o1", SUPPLIER.id, "p.png", "image/png", 3, f"{k:064x}", 1) for k in range(4)]
    for order in ("o1", "o2"):
        await put_order(store, order)
        await store.post(SUPPLIER, order, "first", "c-first")
        await store.mark_read(_BOT, order, _BOT.id, 0, backward=True)  # a side marker
    for row in photos:
        await store.add_attachment(row)
    refs = [AttachmentRef(row.id, row.name, row.mime, row.size) for row in photos]
    out: list = []
    for b, ops in enumerate(batches):
        writes = [
            store.post(op[1], op[2], f"m{b}-{i}", f"c{b}-{i}", op[3], [refs[op[4]]] if op[4] is not None else None)
            if op[0] == "post"
            else store.mark_staff_read([op[1]], None, False, _STAFF.id)
            if op[0] == "staff"
            else store.set_status(op[1], op[2], op[3], f"c{b}-{i}", None)
            if op[0] == "status"
            else store.mark_read(op[1], op[2], op[1].id, op[3], backward=op[4])
            for i, op in enumerate(ops)
        ]
        before = store.batches  # type: ignore[attr-defined]
        if together:
            results = await _together(store, *writes)
            assert store.batches - before == 1, b  # type: ignore[attr-defined]
        else:
            results = [await w for w in writes]
        for r in results:
            if isinstance(r, list):  # a staff read: the staff queue's view of each order
                out.append([(msgspec.structs.astuple(view), moved) for view, moved in r])
            elif r is None or not hasattr(r, "message"):
                out.append(msgspec.structs.astuple(r) if r is not None else None)
            else:
                got = sorted((u.user, u.count, u.total, u.side, u.hidden) for u in r.unread)
                out.append((r.message.seq, r.message.attachments, r.duplicate, got, r.waiting_changed, r.waiting))
    for p in people:
        out.append(await store.total_unread(p.id))
        for order in ("o1", "o2"):
            out.append(await store.marker(order, p.id, True, 10_000))
        out.append(
            sorted((n.order, n.first_seq, n.last_seq, n.reason) for n in await store.pending_notifications(p.id))
        )
    for row in photos:
        out.append((sorted(await store.attachment_links(row.id)), (await store.attachment(row.id)).linked))
    return out


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_a_batch_of_posts_and_reads_reports_what_one_at_a_time_does(store_factory, tmp_path, seed):
    """Posts and reads queued together (on PostgreSQL held and written with the batch's
    messages: chatd.store.postgres.batch) report and leave exactly what the same writes
    do one at a time on SQLite, the reference. One writer, so that both orders' writes
    share each batch (their people's totals span both)."""
    from chatd.notifications import Rules
    from chatd.store.sqlite import SqliteStore

    batches = _script(seed)
    reference = SqliteStore(str(tmp_path / "reference.sqlite3"), notifications_for=Rules(60).plan)
    await reference.open()
    try:
        expected = await _play(reference, batches, together=False)
    finally:
        await reference.aclose()
    store = await store_factory(notifications_for=Rules(60).plan, pool_size=2)
    got = await _play(store, batches, together=True)
    assert len(got) == len(expected)
    for i, (g, e) in enumerate(zip(got, expected, strict=True)):
        assert g == e, i


async def test_counts_are_plain_integers(store):
    """Counters reach the wire as JSON numbers: a driver's decimal sum would be a string there."""
    staff = Actor("bt1", "Bot", "bot", "*")  # a bot's marker is its own (staff share one: test_attention_contract)
    await put_order(store, "o1")
    await store.post(SUPPLIER, "o1", "one", "c1")
    marker = await store.mark_read(staff, "o1", staff.id, 0, backward=True)  # a side marker, at 0
    assert marker is None or marker.side
    posted = await store.post(SUPPLIER, "o1", "two", "c2")
    side = next(u for u in posted.unread if u.user == staff.id)
    assert side.side and (side.count, side.total, side.hidden) == (2, 2, 2)
    for u in posted.unread:
        assert all(type(v) is int for v in (u.count, u.total, u.hidden)), u
    marker = await store.mark_read(staff, "o1", staff.id, 1)
    assert all(
        type(v) is int
        for v in (marker.read_seq, marker.unread, marker.total, marker.hidden, marker.plain_seq, marker.plain_before)
    ), marker
    assert type(await store.visible_total(_Ident(staff.id, "bot", "*"))) is int
    assert type(await store.visible_total(_Ident(staff.id, "staff"))) is int
    assert all(type(v) is int for v in await store.marker("o1", BUYER.id, False, 2))


async def test_receipts_are_the_other_participants_markers_clamped_below_notes(store, store_factory):
    """`joined.receipts`: others' moved markers of participants (not side markers), as receipts carry them."""
    staff = Actor("st1", "Staff", "staff")
    await put_order(store, "o1")
    await store.post(SUPPLIER, "o1", "one", "c1")  # seq 1; the supplier's marker moves to it
    await store.post(REP, "o1", "plan", "c2", "note")  # seq 2; the rep's marker at the note
    await store.mark_read(staff, "o1", staff.id, 2)  # a side marker: no receipt
    other = await store_factory()
    assert await other.receipts("o1", BUYER.id, False) == [(REP.id, 1), (SUPPLIER.id, 1)]
    assert await other.receipts("o1", BUYER.id, True) == sorted([(REP.id, 2), (SUPPLIER.id, 1)])
    assert await store.receipts("o1", REP.id, True) == [(SUPPLIER.id, 1)]  # not one's own; the buyer read nothing
    await store.mark_read(BUYER, "o1", BUYER.id, 2)  # the note: past what the buyer may see
    assert (BUYER.id, 1) in await store.receipts("o1", SUPPLIER.id, True)  # clamped to the text


async def test_a_read_marker_stops_at_the_newest_message_its_user_may_see(store, store_factory):
    """`mark_read` past the end clamps to the marker's `last_seq`: for a reader of notes
    the newest message, for a buyer the newest non-note, never a note's seq."""
    await put_order(store, "o1")
    await store.post(SUPPLIER, "o1", "hello", "c1")  # seq 1
    for i in range(3):
        await store.post(REP, "o1", f"plan {i}", f"n{i}", "note")  # seqs 2..4
    marker = await store.mark_read(BUYER, "o1", BUYER.id, 1_000_000)
    assert (marker.read_seq, marker.plain_seq, marker.unread) == (1, 1, 0)
    other = await store_factory()
    assert await other.marker("o1", BUYER.id, False, 4) == (1, 0, 1)  # as `joined` reads it
    assert await store.mark_read(None, "o1", BUYER.id, 99, backward=True) is None  # the api key: clamped too
    assert (await store.mark_read(SUPPLIER, "o1", SUPPLIER.id, 1_000_000)).read_seq == 4
    bot = Actor("bt1", "Bot", "bot", "*")  # no marker yet: the new one clamps alike
    assert (await store.mark_read(bot, "o1", bot.id, 1_000_000)).read_seq == 4
    await store.post(SUPPLIER, "o1", "again", "c2")  # seq 5: the buyer may read on to it
    await store.post(REP, "o1", "plan 4", "n4", "note")  # seq 6
    marker = await other.mark_read(BUYER, "o1", BUYER.id, 1_000_000)
    assert (marker.read_seq, marker.unread) == (5, 0)
    assert await store.marker("o1", BUYER.id, False, 6) == (5, 0, 5)
    # below the newest, at a note: back to the newest message the buyer may see at or below it
    await store.post(SUPPLIER, "o1", "later", "c3")  # seq 7
    assert (await store.mark_read(None, "o1", BUYER.id, 4, backward=True)).read_seq == 1
    assert await other.marker("o1", BUYER.id, False, 7) == (1, 2, 7)
    assert (await store.mark_read(BUYER, "o1", BUYER.id, 6)).read_seq == 5
    assert (await store.mark_read(SUPPLIER, "o1", SUPPLIER.id, 6, backward=True)).read_seq == 6  # sees notes: as asked


async def test_an_export_reads_the_order_before_each_chunk_and_ends_at_its_bound(store):
    """`export` runs its rule on the order as read before each chunk: notes or not,
    or the end; and reads nothing past `upto` (a message stored meanwhile)."""
    await put_order(store, "o1")
    for i, kind in enumerate(["text", "note"] * 3, 1):
        await store.post(SUPPLIER, "o1", f"{kind} {i}", f"c{i}", kind)
    seen: list[int] = []  # the order's last_seq at each rule call
    answers = [True, False, None]

    def rule(order) -> bool | None:
        seen.append(order.last_seq)
        return answers[len(seen) - 1]

    chunks = []
    async for chunk in store.export("o1", rule, 6, chunk=2):
        chunks.append([(m.seq, m.kind) for m in chunk])
        if len(chunks) == 1:
            await store.post(SUPPLIER, "o1", "later", "later")  # seq 7
    assert chunks == [[(1, "text"), (2, "note")], [(3, "text"), (5, "text")]]
    assert seen == [6, 7, 7]  # read afresh each time; the third said stop
    whole = [m.seq for chunk in [c async for c in store.export("o1", lambda o: True, 6)] for m in chunk]
    assert whole == [1, 2, 3, 4, 5, 6]
    assert [c async for c in store.export("o1", lambda o: None, 7)] == []
    assert [c async for c in store.export("nope", lambda o: True, 7)] == []


class _Ident(msgspec.Struct, frozen=True):
    id: str
    role: str
    orders: object = None


# --- the backend implements the whole contract ---------------------------------------------


def test_the_backend_has_every_member_of_the_contract_and_awaits_alike(store_backend, store_where):
    import inspect

    backend = make_store(store_backend, store_where)  # not opened: only its shape is looked at
    members = {
        name
        for cls in Store.__mro__
        if cls.__module__ == "chatd.store.base"
        for name in list(vars(cls)) + list(getattr(cls, "__annotations__", {}))
        if not name.startswith("_")
    }
    missing = sorted(m for m in members if not hasattr(backend, m))
    assert missing == []
    for name in members:
        want = getattr(Store, name, None)
        if callable(want):
            got = getattr(type(backend), name)
            assert inspect.iscoroutinefunction(got) == inspect.iscoroutinefunction(want), name
    assert inspect.isasyncgenfunction(type(backend).export)  # streamed, never a whole history in memory


# --- workflows: the order's pipeline and close time, rules run on the locked order -------


async def test_put_order_keeps_workflow_and_close_time_and_posts_a_status_change(store, store_factory):
    from chatd.store.records import OrderPlan, Person

    people = (Person(BUYER.id, BUYER.name), Person(SUPPLIER.id, SUPPLIER.name))
    seen: list[object] = []

    def create(old):
        seen.append(old)
        return OrderPlan("factory", "confirmed", None)

    change = await store.put_order("o1", None, *people, rule=create)
    assert seen == [None] and change.created and change.posted is None
    assert (change.order.workflow, change.order.status, change.order.closes_at) == ("factory", "confirmed", None)

    def ship(old):
        assert (old.workflow, old.status) == ("factory", "confirmed")  # as the write sees it
        return OrderPlan(old.workflow, "completed", 12345, post=True, forced=True)

    change = await store.put_order("o1", "completed", None, None, rule=ship)
    assert change.state_changed and change.posted is not None
    m = change.posted.message
    assert (m.kind, m.status, m.forced, m.seq, m.sender.id, m.text) == (
        "status",
        "completed",
        True,
        1,
        "system",
        "Status changed to completed",
    )
    assert {u.user for u in change.posted.unread} == {BUYER.id, SUPPLIER.id}  # the new message is unread
    # what was written holds for another instance over the same database, and for replay
    other = await store_factory()
    order = await other.get_order("o1")
    assert (order.workflow, order.status, order.closes_at, order.last_seq) == ("factory", "completed", 12345, 1)
    msgs, _ = await other.history("o1", True, None, None, 10)
    assert [(x.status, x.forced) for x in msgs] == [("completed", True)]
    # without a rule: the status given, workflow and close time kept, no message
    change = await store.put_order("o1", "shipped", None, None)
    assert (change.order.workflow, change.order.status, change.order.closes_at) == ("factory", "shipped", 12345)
    assert change.posted is None
    # a new order without a rule is `free`
    assert (await store.put_order("o2", None, *people)).order.workflow == "free"


async def test_status_and_post_rules_run_on_the_locked_order(store):
    await put_order(store, "o1")
    calls: list[tuple[str, str]] = []

    def allow(order, role):
        calls.append((order.status, role))
        return 777

    posted = await store.set_status(SUPPLIER, "o1", "done", "st1", None, rule=allow)
    assert calls == [("open", "supplier")] and posted.order.closes_at == 777
    assert (await store.get_order("o1")).closes_at == 777

    def refuse(order, role):
        raise Conflict(f"not from {order.status}")

    with pytest.raises(Conflict, match="not from done"):
        await store.set_status(SUPPLIER, "o1", "again", "st2", None, rule=refuse)
    # a rule replaces the role check: it may let a buyer move the order (factory: delivered)
    await store.set_status(BUYER, "o1", "delivered", "st3", None, rule=lambda order, role: None)
    order = await store.get_order("o1")
    assert (order.status, order.closes_at, order.last_seq) == ("delivered", None, 2)

    def closed(order, role):
        if role == "buyer":
            raise Forbidden("closed")

    stored = await store.post(BUYER, "o1", "before", "p1")
    with pytest.raises(Forbidden):
        await store.post(BUYER, "o1", "after", "p2", rule=closed)
    again = await store.post(BUYER, "o1", "before", "p1", rule=closed)  # a repeat is still answered
    assert again.duplicate and again.message.seq == stored.message.seq
    assert (await store.post(SUPPLIER, "o1", "still", "p3", rule=closed)).message.seq == 4
    assert await _seqs(store, "o1") == [1, 2, 3, 4]


async def test_two_instances_changing_a_status_at_once_cannot_both_pass_on_a_stale_one(store_factory):
    """The transition is checked against the status the write locked: of two stores over one
    database moving `pending` to `in_progress` at once, one passes and the other meets
    `in_progress` (conflict); the history holds one status message."""
    from chatd.store.records import OrderPlan
    from chatd.workflow import Workflows

    retail = Workflows().get("retail")

    def rule(target):
        def check(order, role):
            if (refusal := retail.refusal(order.status, target, role)) is not None:
                raise refusal

        return check

    first, second = await store_factory(), await store_factory()
    await put_order(first, "o1")
    await first.put_order("o1", None, None, None, rule=lambda old: OrderPlan("retail", "pending", None))
    for i in range(5):  # several rounds: either may win each time
        results = await asyncio.gather(
            first.set_status(SUPPLIER, "o1", "in_progress", f"a{i}", None, rule=rule("in_progress")),
            second.set_status(SUPPLIER, "o1", "in_progress", f"b{i}", None, rule=rule("in_progress")),
            return_exceptions=True,
        )
        assert sorted(type(r).__name__ for r in results) == ["Conflict", "Posted"], results
        await first.put_order(
            "o1", None, None, None, rule=lambda old: OrderPlan("retail", "pending", None, post=True, forced=True)
        )
    msgs, _ = await first.history("o1", True, None, None, 100)
    assert [m.status for m in msgs] == ["in_progress", "pending"] * 5


async def test_retention_deletes_the_uploads_of_chats_closed_long_enough_and_keeps_the_messages(store):
    """Only orders whose chat closed before the cutoff and have no open dispute lose
    their uploads; open chats and disputed ones keep theirs; messages stay."""
    from chatd.store.records import OrderPlan, Person

    people = (Person(BUYER.id, BUYER.name), Person(SUPPLIER.id, SUPPLIER.name))
    cutoff = now_ms()
    closing = (("closed", cutoff - 10_000), ("recent", cutoff + 60_000), ("open", None), ("disputed", cutoff - 10_000))
    for order, closes_at in closing:
        await store.put_order(order, None, *people, rule=lambda old, c=closes_at: OrderPlan("free", "open", c))
    await store.dispute(BUYER, "disputed", "open", "d1", "damaged")
    uploads = (
        ("a1", "closed", "aa" * 32),
        ("a2", "recent", "aa" * 32),
        ("a3", "closed", "bb" * 32),
        ("a4", "open", "cc" * 32),
        ("a5", "disputed", "dd" * 32),
    )
    for att_id, order, sha in uploads:
        await store.add_attachment(AttachmentRow(att_id, order, SUPPLIER.id, "p.png", "image/png", 3, sha, cutoff))
    ref = AttachmentRef("a1", "p.png", "image/png", 3)
    await store.post(SUPPLIER, "closed", "", "c1", attachments=[ref])
    count, orphans = await store.delete_expired(cutoff)
    # a1 (sent) and a3 (not) are gone; a1's content is still a2's, a3's is no one's
    assert (count, orphans) == (2, ["bb" * 32])
    assert await store.attachment("a1") is None and await store.attachment("a3") is None
    assert await store.attachment_links("a1") == []
    for kept in ("a2", "a4", "a5"):
        assert (await store.attachment(kept)) is not None
    msgs, _ = await store.history("closed", True, None, None, 10)
    assert msgs[0].attachments == [ref]  # the message keeps what it said it carried


# --- a buyer's sales rep -----------------------------------------------------------------


async def test_a_buyer_rep_goes_to_every_following_order_in_one_write(store, store_factory):
    from chatd.store.records import Person

    buyer, supplier = Person("b9", "Buyer"), Person("s9", "Supplier")
    old_rep, new_rep, own = Person("r8", "Old"), Person("r9", "New"), Person("r7", "Own")
    assert await store.buyer_rep("b9") is None
    await store.put_order("a1", None, buyer, supplier)
    await store.put_order("a2", None, buyer, supplier)
    await store.put_order("a3", None, buyer, supplier, own)  # its own rep: an override
    assert (await store.get_order("a1")).sales_rep is None
    changes = await store.set_buyer_rep("b9", old_rep)
    assert [c.order.id for c in changes] == ["a1", "a2"]
    # (someone new in a slot is in `removed` too: joined as staff before, as put_order says)
    assert all(c.state_changed and c.order.sales_rep == old_rep and c.removed == ["r8"] for c in changes)
    await store.post(Actor("s9", "Supplier", "supplier"), "a1", "unread by the rep", "c1")
    assert await store.total_unread("r8") == 1

    changes = await store.set_buyer_rep("b9", new_rep)
    assert [c.order.id for c in changes] == ["a1", "a2"]
    assert all(c.removed == ["r8", "r9"] for c in changes)
    assert [(t.user, t.count, t.total) for t in changes[0].totals] == [("r8", 0, 0)]
    other = await store_factory()  # committed
    assert (await other.get_order("a1")).sales_rep == new_rep
    assert (await other.get_order("a2")).sales_rep == new_rep
    assert (await other.get_order("a3")).sales_rep == own
    assert await other.buyer_rep("b9") == new_rep
    assert await store.total_unread("r9") == 1  # the new rep's marker counts what is there

    # a new order without sales_rep gets the buyer's; updating it without one keeps following
    created = await store.put_order("a4", None, buyer, supplier)
    assert created.order.sales_rep == new_rep
    await store.put_order("a4", "shipped", None, None)
    # an order given sales_rep (null included) no longer follows
    await store.put_order("a2", None, None, None, None)
    changes = await store.set_buyer_rep("b9", None)
    assert [c.order.id for c in changes] == ["a1", "a4"]
    assert all(c.removed == ["r9"] and c.order.sales_rep is None for c in changes)
    assert await store.buyer_rep("b9") is None
    assert (await store.get_order("a3")).sales_rep == own
    assert (await store.get_order("a2")).sales_rep is None


async def test_a_buyer_rep_clashing_with_a_slot_is_refused_before_any_write(store):
    from chatd.store.records import Person

    buyer, supplier = Person("b9", "Buyer"), Person("s9", "Supplier")
    await store.put_order("a1", None, buyer, supplier)
    with pytest.raises(ChatError) as err:
        await store.set_buyer_rep("b9", Person("s9", "Supplier"))
    assert err.value.code == "bad_request"
    with pytest.raises(ChatError):
        await store.set_buyer_rep("b9", Person("b9", "Buyer"))
    assert await store.buyer_rep("b9") is None
    assert (await store.get_order("a1")).sales_rep is None
    assert await store.set_buyer_rep("nobody", Person("r1", "Rep")) == []
    assert await store.buyer_rep("nobody") == Person("r1", "Rep")


# --- the reply clock (chatd.responses) ------------------------------------------------

STAFF = Actor("st1", "Staff", "staff")


async def test_the_reply_clock_starts_at_a_buyer_question_and_stops_at_the_supplier_side(store, store_factory):
    clock = store.clock = Clock()
    await put_order(store, "w1")
    ack = await store.post(BUYER, "w1", "thanks!", "b0")  # an acknowledgement asks nothing
    assert not ack.waiting_changed and (await store.get_order("w1")).waiting is None
    clock.t += 10
    asked = await store.post(BUYER, "w1", "Can you deliver before noon?", "b1")
    assert asked.waiting_changed and asked.waiting.seq == 2 and asked.waiting.since == asked.message.ts
    clock.t += 10
    again = await store.post(BUYER, "w1", "Also: gate code needed?", "b2")  # the clock runs from the first
    assert not again.waiting_changed
    for actor, kind, text in (
        (SUPPLIER, "note", "internal: check"),
        (STAFF, "text", "staff here"),
        (BUYER, "text", "ok"),
    ):
        assert not (await store.post(actor, "w1", text, f"{actor.id}-{kind}", kind=kind)).waiting_changed
    status = await store.set_status(SUPPLIER, "w1", "shipped", "st", None)
    assert not status.waiting_changed
    other = await store_factory()
    w = (await other.get_order("w1")).waiting
    assert (w.seq, w.since, w.escalated) == (2, asked.message.ts, False)
    clock.t += 100
    answer = await store.post(REP, "w1", "Yes, 11:00", "r1")
    assert answer.waiting_changed and answer.waiting is None
    assert (await other.get_order("w1")).waiting is None
    periods = await other.response_periods(0, "s1", None)
    assert periods == [(asked.message.ts, answer.message.ts)]
    assert await other.response_periods(0, None, "r1") == periods
    assert await other.response_periods(0, "someone-else", None) == []
    assert await other.response_periods(answer.message.ts, None, None) == []  # asked before the window


async def test_a_repeated_question_or_answer_moves_neither_the_clock_nor_any_count(store, store_factory):
    """A client's retry of a message stored before is a duplicate: it must not start
    the clock again after the answer, stop it again, or count as unread."""
    await put_order(store, "w5")
    asked = await store.post(BUYER, "w5", "Can you deliver before noon?", "b1")
    answer = await store.post(SUPPLIER, "w5", "Yes, 11:00", "s1")
    other = await store_factory()
    before = {u: await other.total_unread(u) for u in ("b1", "s1", "r1")}
    again = await store.post(BUYER, "w5", "Can you deliver before noon?", "b1")  # the retry, after the answer
    assert again.duplicate and again.message.seq == asked.message.seq and again.unread == []
    assert not again.waiting_changed and (await other.get_order("w5")).waiting is None
    assert (await store.post(SUPPLIER, "w5", "Yes, 11:00", "s1")).duplicate
    assert await other.response_periods(0, None, None) == [(asked.message.ts, answer.message.ts)]
    assert {u: await other.total_unread(u) for u in ("b1", "s1", "r1")} == before
    later = await store.post(BUYER, "w5", "And the invoice?", "b2")  # a new question still starts it
    assert later.waiting_changed and later.waiting.seq == 3


async def test_no_reply_needed_ends_the_wait_and_a_later_question_starts_the_next(store):
    await put_order(store, "w2")
    first = await store.post(BUYER, "w2", "FYI the dock is closed on Friday", "b1")
    second = await store.post(BUYER, "w2", "👍", "b2")
    third = await store.post(BUYER, "w2", "And when will it ship", "b3")
    assert first.waiting_changed and not second.waiting_changed and not third.waiting_changed
    with pytest.raises(Forbidden):
        await store.dismiss_wait(BUYER, "w2", 1)
    with pytest.raises(ChatError) as bad:
        await store.dismiss_wait(SUPPLIER, "w2", 99)
    assert bad.value.code == "bad_request"
    changed, waiting = await store.dismiss_wait(SUPPLIER, "w2", 2)  # covers 1 and 2; 3 still asks
    assert changed and waiting.seq == 3 and waiting.since == third.message.ts
    assert await store.response_periods(0, None, None) == [(third.message.ts, None)]  # the first left the report
    assert await store.dismiss_wait(STAFF, "w2", 1) == (False, waiting)  # before this wait: nothing to do
    changed, waiting = await store.dismiss_wait(STAFF, "w2", 3)
    assert changed and waiting is None and await store.response_periods(0, None, None) == []


async def test_an_overdue_wait_is_escalated_once_across_instances(store, store_factory):
    clock = store.clock = Clock()
    await put_order(store, "w3")
    await put_order(store, "w4")
    asked = await store.post(BUYER, "w3", "Where is my order", "b1")
    clock.t += 50
    await store.post(BUYER, "w4", "Is the invoice ready", "b1")
    since = asked.message.ts
    assert await store.overdue(since, 10) == []
    assert await store.overdue(since + 1, 10) == [("w3", 1)]
    assert [o for o, _ in await store.overdue(since + 60_000, 10)] == ["w3", "w4"]  # longest first
    other = await store_factory()

    def events(order, now):
        return [("sla.breached", {"order": order.id, "seq": order.waiting.seq, "escalated": order.waiting.escalated})]

    a, b = await asyncio.gather(
        store.escalate("w3", 1, since + 1, "Reply overdue", events),
        other.escalate("w3", 1, since + 1, "Reply overdue", events),
    )
    done = [p for p in (a, b) if p is not None]
    assert len(done) == 1
    note = done[0].message
    assert (note.kind, note.sender.id, note.text) == ("note", "system", "Reply overdue")
    assert done[0].waiting.escalated and (await other.get_order("w3")).waiting.escalated
    assert await store.overdue(since + 60_000, 10) == [("w4", 1)]
    claimed = await store.claim_events(now_ms() + 10**9, now_ms() + 10**9, 10)
    bodies = [msgspec.json.decode(e.body) for e in claimed if e.type == "sla.breached"]
    assert [(b["order"], b["seq"], b["escalated"]) for b in bodies] == [("w3", 1, True)]
    assert await store.escalate("w3", 1, since + 2, "again", events) is None
    await store.post(SUPPLIER, "w3", "On its way", "s1")  # answered: the next question is a new period
    assert await store.escalate("w3", 1, since + 3, "late", events) is None
    again = await store.post(BUYER, "w3", "Tracking number please", "b2")
    assert again.waiting_changed and not again.waiting.escalated


async def test_threads_filter_by_status_and_by_who_waits(store):
    clock = store.clock = Clock()
    from chatd.store.records import ThreadFilter

    for oid in ("t1", "t2", "t3"):
        await put_order(store, oid)
    await store.post(BUYER, "t1", "question one", "b1")
    clock.t += 3600
    await store.post(BUYER, "t2", "question two", "b1")
    await store.post(SUPPLIER, "t3", "hello", "s1")
    await store.set_status(SUPPLIER, "t3", "shipped", "st", None)

    async def ids(**kw) -> list[str]:
        page = await store.thread_page(ThreadFilter(**kw), None, 50)
        return sorted(r.order.id for r in page.rows)

    assert await ids(awaiting_reply=True) == ["t1", "t2"]
    assert await ids(awaiting_reply=False) == ["t3"]
    assert await ids(overdue=True) == []  # waiting is not overdue until the SLA job escalates it
    assert await store.escalate("t1", 1, int(clock.t * 1000), "Reply overdue") is not None
    assert await ids(awaiting_reply=True, overdue=True) == ["t1"]
    assert await ids(status="shipped") == ["t3"]
    page = await store.thread_page(ThreadFilter(awaiting_reply=True), None, 50)
    assert {r.order.id: r.order.waiting.seq for r in page.rows} == {"t1": 1, "t2": 1}


# --- contact data ---------------------------------------------------------------------


async def test_contacts_and_avatars_are_saved_with_the_order_and_kept_cleared_or_replaced(store, store_factory):
    from chatd.store.records import Contact, Person

    buyer = Person("b1", "Buyer", "https://cdn.example/b1.png")
    supplier = Person("s1", "Supplier")
    await store.put_order(
        "c1",
        None,
        buyer,
        supplier,  # no sales_rep: the order follows its buyer's
        contacts={"b1": Contact("b@example.com", "+49 30 1234", "de-DE"), "s1": Contact(email="s@example.com")},
    )
    other = await store_factory()
    got = await other.contacts(["b1", "s1", "nobody"])
    assert got == {"b1": Contact("b@example.com", "+49 30 1234", "de-DE"), "s1": Contact("s@example.com", None, None)}
    order = await other.get_order("c1")
    assert [(p.id, p.avatar_url) for p in order.participants()] == [("b1", "https://cdn.example/b1.png"), ("s1", None)]
    # None keeps a field, "" clears it; a refused upsert saves nothing
    await store.put_order("c1", None, None, None, contacts={"b1": Contact(phone="", locale="fr")})
    assert (await other.contacts(["b1"]))["b1"] == Contact("b@example.com", None, "fr")
    with pytest.raises(ChatError):
        await store.put_order("c2", None, None, supplier, contacts={"s1": Contact(email="changed@example.com")})
    assert (await other.contacts(["s1"]))["s1"].email == "s@example.com"
    # a buyer's rep carries an avatar to every following order
    await store.set_buyer_rep("b1", Person("r9", "Rep", "https://cdn.example/r9.png"), {"r9": Contact(locale="en")})
    rep = (await other.get_order("c1")).sales_rep
    assert (rep.id, rep.avatar_url) == ("r9", "https://cdn.example/r9.png")
    assert (await other.buyer_rep("b1")).avatar_url == "https://cdn.example/r9.png"
    assert (await other.contacts(["r9"]))["r9"].locale == "en"


# --- notifications --------------------------------------------------------------------


async def test_a_pending_notification_collects_messages_and_reads_thin_it(store_factory):
    from chatd.notifications import Rules

    store = await store_factory(notifications_for=Rules(60).plan)
    clock = store.clock = Clock()
    await put_order(store, "n1")
    first = await store.post(SUPPLIER, "n1", "one", "s1")  # buyer and rep are not joined: both scheduled
    t0 = first.message.ts
    (b,) = await store.pending_notifications(BUYER.id)
    (r,) = await store.pending_notifications(REP.id)
    assert (b.first_seq, b.last_seq, b.due_ts, b.reason, b.role) == (1, 1, t0 + 60_000, "messages", "buyer")
    assert await store.pending_notifications(SUPPLIER.id) == []  # not the sender
    clock.t += 50
    await store.post(SUPPLIER, "n1", "two", "s2")  # joins it; due moves with the latest message ...
    await store.post(SUPPLIER, "n1", "note", "s-note", kind="note")  # notes: not for the buyer
    (b,) = await store.pending_notifications(BUYER.id)
    assert (b.first_seq, b.last_seq, b.due_ts) == (1, 2, t0 + 110_000)
    clock.t += 60
    await store.post(SUPPLIER, "n1", "three", "s3", present=frozenset({"r1"}))  # the rep is joined now
    (b,) = await store.pending_notifications(BUYER.id)
    assert (b.last_seq, b.due_ts) == (4, t0 + 120_000)  # ... but never past twice the delay after the first
    (r,) = await store.pending_notifications(REP.id)
    assert r.last_seq == 3  # the note reached the rep's; not the message sent while joined
    await store.mark_read(BUYER, "n1", BUYER.id, 2)  # read on some device: only the rest is pending
    (b,) = await store.pending_notifications(BUYER.id)
    assert (b.first_seq, b.last_seq) == (3, 4)
    await store.mark_read(BUYER, "n1", BUYER.id, 4)
    assert await store.pending_notifications(BUYER.id) == []
    # a status change notifies the buyer at once; a dispute everyone and staff
    await store.set_status(SUPPLIER, "n1", "shipped", "st1", None)
    (b,) = await store.pending_notifications(BUYER.id)
    assert (b.reason, b.due_ts) == ("status", int(clock.t * 1000))
    await store.dispute(BUYER, "n1", "open", "d1", "broken")
    assert await store.pending_notifications(BUYER.id) == []  # opening it read the status message, as a post
    (staff,) = await store.pending_notifications("staff")
    assert (staff.reason, staff.role, staff.due_ts) == ("dispute", "staff", int(clock.t * 1000))
    assert (await store.pending_notifications(REP.id))[0].reason == "dispute"
    # the metric: supplier, rep and staff pending, all due now and none a moment before
    assert await store.notification_backlog(int(clock.t * 1000)) == (3, 3)
    assert await store.notification_backlog(int(clock.t * 1000) - 1) == (3, 0)


async def test_notifications_are_claimed_once_across_instances_and_settled_with_their_event(store_factory):
    from chatd.notifications import Rules

    one = await store_factory(notifications_for=Rules(0).plan)
    two = await store_factory(notifications_for=Rules(0).plan)
    await put_order(one, "n2")
    for i in range(3):
        await one.post(SUPPLIER, "n2", f"m{i}", f"s{i}")
    now = now_ms() + 1000
    a, b = await asyncio.gather(
        one.claim_notifications(now, now + 60_000, 10), two.claim_notifications(now, now + 60_000, 10)
    )
    claimed = a + b
    assert sorted(n.user for n in claimed) == [BUYER.id, REP.id]  # each claimed by one instance only
    assert await two.claim_notifications(now, now + 60_000, 10) == []  # leased
    buyer = next(n for n in claimed if n.user == BUYER.id)
    await one.post(SUPPLIER, "n2", "after the claim", "s9")  # joins the claimed one while it is out
    assert await two.finish_notification(buyer.id, now, 3, [("notification", {"order": "n2", "id": buyer.id})])
    (rest,) = await one.pending_notifications(BUYER.id)  # the later message waits in a new one
    assert (rest.first_seq, rest.last_seq) == (4, 4) and rest.id != buyer.id
    assert not await one.finish_notification(buyer.id, now, 3, [])  # settled once
    events = await one.claim_events(now_ms() + 10**9, now_ms() + 10**9, 10)
    assert [e.type for e in events] == ["notification"]
    counts = await one.sent_counts(BUYER.id, "n2", now - 1)
    assert (counts.user, counts.user_oldest, counts.order, counts.order_oldest) == (1, now, 1, now)
    assert (await one.sent_counts(BUYER.id, "other", now - 1)).order == 0
    rep = next(n for n in claimed if n.user == REP.id)
    await one.postpone_notification(rep.id, now + 5000, failed=True)
    early = await one.claim_notifications(now + 4999, now + 4999, 10)  # lease ends at once: claimable again later
    assert rep.id not in [n.id for n in early]  # not due yet
    (again,) = [n for n in await two.claim_notifications(now + 5000, now + 70_000, 10) if n.user == REP.id]
    assert again.id == rep.id and again.attempts == 1
    assert await one.prune_notifications(now + 1) == 1  # the sent one


async def test_preferences_mute_orders_and_switch_email_off(store_factory):
    from chatd.notifications import Rules
    from chatd.store.records import NotifyPrefs

    store = await store_factory(notifications_for=Rules(60).plan)
    await put_order(store, "n3")
    await put_order(store, "n4")
    assert await store.notify_prefs(BUYER.id) == NotifyPrefs(True, [])
    await store.post(SUPPLIER, "n3", "hello", "s1")
    await store.set_notify_prefs(BUYER.id, NotifyPrefs(False, ["n3"]))
    assert await store.pending_notifications(BUYER.id) == []  # the muted order's pending one went
    await store.post(SUPPLIER, "n3", "again", "s2")
    await store.post(SUPPLIER, "n4", "other order", "s3")
    assert [n.order for n in await store.pending_notifications(BUYER.id)] == ["n4"]
    other = await store_factory()
    assert await other.notify_prefs(BUYER.id) == NotifyPrefs(False, ["n3"])


# --- reply-by-e-mail tokens ------------------------------------------------------------


async def test_a_reply_token_is_minted_once_per_slot_holder_and_order(store, store_factory):
    await put_order(store, "t1")
    minted = await store.mint_reply_token(BUYER.id, "t1", "tok-buyer")
    assert minted == "tok-buyer"
    assert await store.mint_reply_token(BUYER.id, "t1", "tok-other") == "tok-buyer"  # the live one
    assert await store.mint_reply_token(SUPPLIER.id, "t1", "tok-supplier") == "tok-supplier"
    other = await store_factory()  # committed
    tok = await other.reply_token("tok-buyer")
    assert (tok.user_id, tok.order_id, tok.revoked_ts) == (BUYER.id, "t1", None) and tok.created_ts > 0
    # no slot, no order: no token, nothing written
    assert await store.mint_reply_token("staff-1", "t1", "tok-staff") is None
    assert await store.mint_reply_token(BUYER.id, "missing", "tok-missing") is None
    assert await other.reply_token("tok-staff") is None and await other.reply_token("tok-missing") is None
    assert await other.reply_token("tok-other") is None


async def test_two_instances_minting_at_once_agree_on_one_token(store, store_factory):
    await put_order(store, "t2")
    other = await store_factory()
    got = await asyncio.gather(
        *(s.mint_reply_token(REP.id, "t2", f"tok-{i}") for i, s in enumerate([store, other] * 5))
    )
    assert len(set(got)) == 1, got


async def test_leaving_a_slot_revokes_the_reply_token_in_the_order_write(store, store_factory):
    from chatd.store.records import Person

    await put_order(store, "t3")
    for user in (BUYER.id, SUPPLIER.id, REP.id):
        await store.mint_reply_token(user, "t3", f"tok-{user}")
    change = await store.put_order("t3", None, None, Person("s2", "New supplier"))
    assert SUPPLIER.id in change.removed
    other = await store_factory()  # the revocation committed with the order change
    assert (await other.reply_token(f"tok-{SUPPLIER.id}")).revoked_ts is not None
    assert (await other.reply_token(f"tok-{BUYER.id}")).revoked_ts is None
    assert await store.mint_reply_token(SUPPLIER.id, "t3", "tok-again") is None  # no slot now
    assert await store.mint_reply_token("s2", "t3", "tok-s2") == "tok-s2"

    # a buyer's rep moving on (set_buyer_rep) revokes too, on every order that follows the rep
    buyer, supplier = Person("b5", "Buyer"), Person("s5", "Supplier")
    await store.put_order("t4", None, buyer, supplier)
    await store.set_buyer_rep("b5", Person("r5", "Rep"))
    assert await store.mint_reply_token("r5", "t4", "tok-r5") == "tok-r5"
    await store.set_buyer_rep("b5", Person("r6", "Next rep"))
    assert (await other.reply_token("tok-r5")).revoked_ts is not None
    assert await store.mint_reply_token("r5", "t4", "tok-r5b") is None


async def test_a_revoked_token_stays_revoked_and_the_next_one_is_new(store):
    await put_order(store, "t5")
    assert await store.mint_reply_token(BUYER.id, "t5", "tok-1") == "tok-1"
    assert await store.revoke_reply_tokens("t5", [BUYER.id, SUPPLIER.id]) == 1
    assert await store.revoke_reply_tokens("t5", [BUYER.id]) == 0
    assert await store.revoke_reply_tokens("t5", []) == 0
    assert (await store.reply_token("tok-1")).revoked_ts is not None
    assert await store.mint_reply_token(BUYER.id, "t5", "tok-2") == "tok-2"
    assert (await store.reply_token("tok-1")).revoked_ts is not None
    assert (await store.reply_token("tok-2")).revoked_ts is None


async def test_an_upsert_reports_the_counts_of_who_took_or_left_a_slot_and_the_staff_queues_they_moved(store):
    from chatd.store.records import UnreadChange

    await put_order(store, "q1")
    for i in range(3):
        await store.post(BUYER, "q1", f"question {i}", f"q{i}")
    staff = Actor("st1", "Staff", "staff")
    await store.follow(staff, "q1", True)
    change = await store.put_order("q1", None, None, Person(staff.id, "Staff now supplier"))
    assert (change.totals, change.entered) == ([UnreadChange(SUPPLIER.id, 0, 0)], [UnreadChange(staff.id, 3, 3)])
    assert change.queue_moved == [staff.id] and change.staff is not None
    assert (change.staff.followers, change.staff.unread, staff.id in change.staff.slots) == ([staff.id], 3, True)
    back = await store.put_order("q1", None, None, Person(SUPPLIER.id, SUPPLIER.name))
    assert (back.totals, back.entered) == ([UnreadChange(staff.id, 0, 0)], [UnreadChange(SUPPLIER.id, 3, 3)])
    assert back.queue_moved == [staff.id] and back.staff is not None and staff.id not in back.staff.slots
    # nobody's queue holds an order no one follows and nothing raised: no staff news
    await store.follow(staff, "q1", False)
    other = await store.put_order("q1", None, None, None, Person("r2", "Rep two"))
    assert [c.user for c in (*other.totals, *other.entered)] == [REP.id, "r2"]
    assert (other.queue_moved, other.staff) == ([], None)


async def test_a_post_reads_for_its_sender_and_takes_their_pending_notification(store_factory):
    """Sending moves the sender's read marker: their pending notification goes with it,
    also within a batch (on PostgreSQL held and written with the batch's messages)."""
    from chatd.notifications import Rules

    store = await store_factory(notifications_for=Rules(60).plan)
    await put_order(store, "n3")
    await store.post(SUPPLIER, "n3", "one", "s1")
    await store.post(BUYER, "n3", "an answer", "b1")
    assert await store.pending_notifications(BUYER.id) == []
    before = store.batches  # type: ignore[attr-defined]
    await _together(
        store,
        store.post(SUPPLIER, "n3", "two", "s2"),
        store.post(BUYER, "n3", "another", "b2"),
        store.post(SUPPLIER, "n3", "three", "s3"),
    )
    assert store.batches == before + 1  # type: ignore[attr-defined]  # else this shows nothing
    (b,) = await store.pending_notifications(BUYER.id)
    assert (b.first_seq, b.last_seq) == (5, 5)  # only what came after the buyer's own
    assert await store.pending_notifications(SUPPLIER.id) == []  # the buyer's second, read by "three"
