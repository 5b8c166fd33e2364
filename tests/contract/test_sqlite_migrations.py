"""SQLite migrations that rewrite a trigger keep what it computes: the same inserts,
run on a file left at the migration before and on one brought up to date, leave the
same counters (orders, read markers, staff markers, users' totals, the commit-order
log). And a file at the old version is brought up to date in place."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from chatd.store.sqlite import migrations
from tests.support.trigger_cases import (
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

ONE_TRIGGER = 14  # the migration that made one message trigger of three
SIDE_TOTALS = 15  # the migration that keeps each user's side-marker unread beside their total
DISPUTE_NAME = 16  # the migration that keeps the name of a dispute's opener beside their id


def _at_version(path: Path, version: int) -> sqlite3.Connection:
    db = sqlite3.connect(path, isolation_level=None)
    for script in migrations.MIGRATIONS[:version]:
        for statement in migrations._statements(script):
            db.execute(statement)
    db.execute(f"PRAGMA user_version = {version}")
    return db


def _counters(db: sqlite3.Connection, extra: str = "") -> dict[str, list[tuple[object, ...]]]:
    """The counters after SETUP, then `extra`, then POSTS."""
    db.executescript(SETUP + extra)
    seqs: dict[str, int] = {}
    for n, (order, kind, sender, role) in enumerate(POSTS):
        seqs[order] = seqs.get(order, 0) + 1
        db.execute(
            "INSERT INTO messages (order_id, seq, ts, kind, sender_id, sender_name, sender_role, text) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, 'hi')",
            (order, seqs[order], 100 + n, kind, sender, sender, role),
        )
    queries = {**COUNTERS, "message_log": "SELECT id, order_id, seq, ts, kind FROM message_log ORDER BY id"}
    return {name: db.execute(sql).fetchall() for name, sql in queries.items()}


def test_the_one_message_trigger_counts_as_the_three_it_replaced(tmp_path: Path) -> None:
    old = _at_version(tmp_path / "old.db", ONE_TRIGGER - 1)
    new = _at_version(tmp_path / "new.db", len(migrations.MIGRATIONS))
    try:
        before, after = _counters(old), _counters(new)
    finally:
        old.close()
        new.close()
    assert after == before
    # and the counters say something (the same as PostgreSQL's, whose trigger this copies):
    # b1's own note marks o1 read up to it, but is not its last activity: it cannot see it
    assert ("o1", "b1", 8, 0, 7, 106) in after["read_markers"]
    assert ("o1", "s1", 4, 4, 8, 107) in after["read_markers"]  # s1 sees the rep's note
    assert after["staff_markers"] == [("o1", 5, 3)]  # o2 has none
    assert after["user_stats"] == [("b1", 2), ("r1", 2), ("s1", 5)]
    assert len(after["message_log"]) == len(POSTS)


def test_a_file_at_the_version_before_is_brought_up_to_date_in_place(tmp_path: Path) -> None:
    db = _at_version(tmp_path / "chatd.db", ONE_TRIGGER - 1)
    try:
        db.executescript(SETUP)
        assert migrations.migrate(db) == len(migrations.MIGRATIONS)
        triggers = db.execute("SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'messages'")
        assert [t[0] for t in triggers] == ["messages_after_insert"]
        db.execute(
            "INSERT INTO messages (order_id, seq, ts, kind, sender_id, sender_name, sender_role, text) "
            "VALUES ('o1', 1, 5, 'text', 'b1', 'B', 'buyer', 'hi')"
        )
        assert db.execute("SELECT unread FROM staff_markers WHERE order_id = 'o1'").fetchone()[0] == 1
        assert db.execute("SELECT unread FROM read_markers WHERE user_id = 's1' AND order_id = 'o1'").fetchone()[0] == 1
        assert db.execute("SELECT order_id, seq FROM message_log").fetchall() == [("o1", 1)]
    finally:
        db.close()


def test_the_side_unread_kept_beside_each_total_is_the_sum_of_the_users_side_markers(tmp_path: Path) -> None:
    """As on PostgreSQL (test_postgres_migrations): brought up to date on a file with
    side markers, and kept so by the marker triggers."""
    db = _at_version(tmp_path / "chatd.db", SIDE_TOTALS - 1)
    try:
        _counters(db, SIDE_MARKERS)
        assert migrations.migrate(db) == len(migrations.MIGRATIONS)
        rows = db.execute(SIDE_SUMS).fetchall()
        assert [r[:2] for r in rows if r[1]] == [("x9", 3)], rows
        assert all(r[1] == r[2] for r in rows), rows
        for sql in SIDE_CHANGES:
            db.execute(sql)
        rows = db.execute(SIDE_SUMS).fetchall()
        assert [r[:2] for r in rows if r[1]] == [("bt", 4)], rows
        assert all(r[1] == r[2] for r in rows), rows
    finally:
        db.close()


def test_a_dispute_from_before_its_openers_name_was_kept_takes_the_name_of_its_message(tmp_path: Path) -> None:
    db = _at_version(tmp_path / "chatd.db", DISPUTE_NAME - 1)
    try:
        db.executescript(SETUP + DISPUTES)
        assert migrations.migrate(db) == len(migrations.MIGRATIONS)
        assert db.execute(DISPUTE_NAMES).fetchall() == DISPUTE_NAMED
    finally:
        db.close()
