"""PostgreSQL migrations that rewrite a trigger keep what it computes: the same
inserts, run on a database left at the migration before and on one brought up
to date, leave the same counters (orders, read markers, staff markers, users'
totals). And a database at the old version is brought up to date in place."""

from __future__ import annotations

import pytest

asyncpg = pytest.importorskip("asyncpg")

from chatd.store.postgres import migrations  # noqa: E402
from tests.support.postgres_server import new_database  # noqa: E402
from tests.support.trigger_cases import (  # noqa: E402
    COUNTERS,
    DISPUTE_NAMED,
    DISPUTE_NAMES,
    DISPUTES,
    POSTS,
    SETUP,
    SIDE_CHANGES,
    SIDE_MARKERS,
    SIDE_SUMS,
)

MERGED_TRIGGERS = 9  # the migration that made one message trigger of two


async def _at_version(version: int) -> asyncpg.Connection:
    conn = await asyncpg.connect(new_database())
    await conn.execute("CREATE TABLE chatd_schema (version INTEGER NOT NULL)")
    await conn.execute("INSERT INTO chatd_schema (version) VALUES ($1)", version)
    for script in migrations.MIGRATIONS[:version]:
        await conn.execute(script)
    return conn


async def _counters(conn: asyncpg.Connection, extra: str = "") -> dict[str, list[tuple]]:
    """The counters after SETUP, then `extra`, then POSTS."""
    await conn.execute(SETUP + extra)
    seqs: dict[str, int] = {}
    for n, (order, kind, sender, role) in enumerate(POSTS):
        seqs[order] = seqs.get(order, 0) + 1
        await conn.execute(
            "INSERT INTO messages (order_id, seq, ts, kind, sender_id, sender_name, sender_role, text) "
            "VALUES ($1, $2, $3, $4, $5, $5, $6, 'hi')",
            order,
            seqs[order],
            100 + n,
            kind,
            sender,
            role,
        )
    return {name: [tuple(r) for r in await conn.fetch(sql)] for name, sql in COUNTERS.items()}


async def test_the_merged_message_trigger_counts_as_the_two_it_replaced():
    old, new = await _at_version(MERGED_TRIGGERS - 1), await _at_version(len(migrations.MIGRATIONS))
    try:
        before, after = await _counters(old), await _counters(new)
    finally:
        await old.close()
        await new.close()
    assert after == before
    # and the counters say something: the buyer's unread, the staff's, the last activity
    # b1's own note marks o1 read up to it, but is not its last activity: it cannot see it
    assert ("o1", "b1", 8, 0, 7, 106) in after["read_markers"]
    assert ("o1", "s1", 4, 4, 8, 107) in after["read_markers"]  # s1 sees the rep's note
    assert after["staff_markers"] == [("o1", 5, 3)]  # o2 has none
    assert after["user_stats"] == [("b1", 2), ("r1", 2), ("s1", 5)]


async def test_a_database_at_the_version_before_is_brought_up_to_date_in_place():
    conn = await _at_version(MERGED_TRIGGERS - 1)
    try:
        await conn.execute(SETUP)
        assert await migrations.migrate(conn) == len(migrations.MIGRATIONS)
        triggers = await conn.fetch(
            "SELECT tgname FROM pg_trigger WHERE tgrelid = 'messages'::regclass AND NOT tgisinternal"
        )
        assert [t["tgname"] for t in triggers] == ["messages_after_insert"]
        await conn.execute(
            "INSERT INTO messages (order_id, seq, ts, kind, sender_id, sender_name, sender_role, text) "
            "VALUES ('o1', 1, 5, 'text', 'b1', 'B', 'buyer', 'hi')"
        )
        assert await conn.fetchval("SELECT unread FROM staff_markers WHERE order_id = 'o1'") == 1
        assert await conn.fetchval("SELECT unread FROM read_markers WHERE user_id = 's1' AND order_id = 'o1'") == 1
    finally:
        await conn.close()


SIDE_TOTALS = 10  # the migration that keeps each user's side-marker unread beside their total


async def test_the_side_unread_kept_beside_each_total_is_the_sum_of_the_users_side_markers():
    """Brought up to date on a database with side markers, and kept so by the marker
    trigger: a marker made, messages that move it, and one taken away."""
    conn = await _at_version(SIDE_TOTALS - 1)
    try:
        await _counters(conn, SIDE_MARKERS)  # the posts move x9's side markers
        assert await migrations.migrate(conn) == len(migrations.MIGRATIONS)
        rows = [tuple(r) for r in await conn.fetch(SIDE_SUMS)]
        assert [r[:2] for r in rows if r[1]] == [("x9", 3)], rows  # o1: what came after its own post; o2: none
        assert all(r[1] == r[2] for r in rows), rows
        for sql in SIDE_CHANGES:
            await conn.execute(sql)
        rows = [tuple(r) for r in await conn.fetch(SIDE_SUMS)]
        assert [r[:2] for r in rows if r[1]] == [("bt", 4)], rows  # x9's 4 on o1 gone with its marker
        assert all(r[1] == r[2] for r in rows), rows
    finally:
        await conn.close()


DISPUTE_NAME = 11  # the migration that keeps the name of a dispute's opener beside their id


async def test_a_dispute_from_before_its_openers_name_was_kept_takes_the_name_of_its_message():
    conn = await _at_version(DISPUTE_NAME - 1)
    try:
        await conn.execute(SETUP + DISPUTES)
        assert await migrations.migrate(conn) == len(migrations.MIGRATIONS)
        assert [tuple(r) for r in await conn.fetch(DISPUTE_NAMES)] == DISPUTE_NAMED
    finally:
        await conn.close()
