"""PostgreSQL: the unread totals a write reports are the stored ones, with another
writer changing them meanwhile.

Each host runs two writers, and any number of hosts share the database: while a
batch works out what its writes report, another transaction may change the same
user's total on another order. The batch reports what the user's total is once it
commits, not what it read before: it locks the user's figures before it reads them
(chatd.store.postgres.batch, messages, markers). Here the other writer is a
transaction held open on a connection of the test's own, so the interleaving is
the one that would report a stale figure: it has changed the user's total and not
committed when the store reads.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable

import pytest

from chatd.store.rows import Actor
from tests.contract.stores import BUYER, REP, SUPPLIER, make_store, put_order
from tests.support.wait import seconds, wait_for

asyncpg = pytest.importorskip("asyncpg")

BOT = Actor("bt1", "Bot", "bot", "*")  # its markers are side markers: its total is all hidden


@pytest.fixture
async def setup():
    from tests.support.postgres_server import new_database

    url = new_database()
    store = make_store("postgres", url, pool_size=2)  # one writer: what is queued while it works is one batch
    await store.open()
    other = await asyncpg.connect(url)
    try:
        for order in ("o1", "o2", "o3"):
            await put_order(store, order)
            await store.post(SUPPLIER, order, "hello", f"{order}-1")  # seq 1: the buyer's unread 1 on each
            await store.mark_read(BOT, order, BOT.id, 1)  # a side marker, read to 1
        yield store, other
    finally:
        await other.close()
        await store.aclose()


async def _begin_other_host(other: asyncpg.Connection) -> asyncpg.transaction.Transaction:
    """A new message on o2 on `other`, not committed (as another host's writer holds
    it: the order's row locked, the message's triggers fired): the buyer's, the rep's
    and the bot's totals changed."""
    tx = other.transaction()
    await tx.start()
    await other.execute("SELECT 1 FROM orders WHERE id = 'o2' FOR UPDATE")
    await other.execute(
        "INSERT INTO messages (order_id, seq, ts, kind, sender_id, sender_name, sender_role, text) "
        "VALUES ('o2', 2, 1, 'text', $1, 'Supplier', 'supplier', 'from another host')",
        SUPPLIER.id,
    )
    return tx


async def _waits(holder: asyncpg.Connection) -> None:
    """Until a session waits for a lock `holder`'s transaction holds."""
    sql = "SELECT count(*) FROM pg_stat_activity WHERE pg_backend_pid() = ANY(pg_blocking_pids(pid))"

    async def blocked() -> bool:
        return bool(await holder.fetchval(sql))

    await wait_for(blocked, what="a write to wait for a lock")


async def _meanwhile(other: asyncpg.Connection, write: Awaitable):
    """Run `write` while the other host's message is under way, and commit that
    once `write` waits for it."""
    tx = await _begin_other_host(other)
    task = asyncio.ensure_future(write)
    await _waits(other)
    assert not task.done()
    await tx.commit()
    return await asyncio.wait_for(task, seconds(10))


async def test_a_post_reports_the_totals_another_writer_changed_meanwhile(setup):
    store, other = setup
    posted = await _meanwhile(other, store.post(SUPPLIER, "o1", "and here", "o1-2"))
    reported = {u.user: u for u in posted.unread}
    buyer, bot = reported[BUYER.id], reported[BOT.id]
    assert (buyer.count, buyer.total) == (2, 5)  # o1: 2 unread; o2: 1, and 1 from the other host; o3: 1
    assert buyer.total == await store.total_unread(BUYER.id)
    assert (bot.count, bot.total, bot.hidden) == (1, 2, 2)  # one new on each order, all on side markers
    assert bot.total == await store.total_unread(BOT.id)


async def test_a_read_reports_the_total_another_writer_changed_meanwhile(setup):
    store, other = setup
    await store.post(SUPPLIER, "o1", "and here", "o1-2")  # the bot's unread on o1: 1
    marker = await _meanwhile(other, store.mark_read(BOT, "o1", BOT.id, 2))
    assert (marker.unread, marker.total, marker.hidden) == (0, 1, 1)  # what the other host added on o2
    assert marker.total == await store.total_unread(BOT.id)


async def test_a_post_written_by_its_own_statement_reports_the_totals_another_writer_changed(setup):
    """A post after an op of the batch that ran a statement of its own (here the order
    put again as it was) is written by a statement of its own too."""
    store, other = setup
    url = store.url  # type: ignore[attr-defined]
    blocker = await asyncpg.connect(url)
    try:
        stall = blocker.transaction()
        await stall.start()
        await blocker.execute("SELECT 1 FROM orders WHERE id = 'o3' FOR UPDATE")
        first = asyncio.ensure_future(put_order(store, "o3"))  # as it was: the writer waits on the row
        await _waits(blocker)  # the one writer is busy: what comes next waits for it, as one batch
        tx = await _begin_other_host(other)
        again = asyncio.ensure_future(put_order(store, "o1"))
        post = asyncio.ensure_future(store.post(BUYER, "o1", "and here", "o1-2"))
        await wait_for(lambda: len(store._queues[0]) == 2, what="both writes queued")  # type: ignore[attr-defined]
        await stall.commit()
        await first
        await _waits(other)  # in the post's statement: nothing else of the batch touches o2's people
        await tx.commit()
        await asyncio.wait_for(again, seconds(10))
        posted = await asyncio.wait_for(post, seconds(10))
    finally:
        await blocker.close()
    reported = {u.user: u for u in posted.unread}
    bot = reported[BOT.id]
    assert (bot.count, bot.total, bot.hidden) == (1, 2, 2)  # o1, and o2 from the other host
    assert bot.total == await store.total_unread(BOT.id)
    assert reported[REP.id].total == await store.total_unread(REP.id) == 5  # two on o1 and o2, one on o3
