"""The admin threads list and its full-text search (FTS5 over `message_log`, chatd.store.sqlite.search).

Pages are read on a worker thread over a read-only connection of their own
(`Engine._search_db`), never on the loop: a search over a large history can
take a while. One read transaction per page: one snapshot.
"""

from __future__ import annotations

import asyncio
import sqlite3
from typing import Any

import msgspec

from chatd import attention
from chatd.errors import Conflict
from chatd.store.records import ThreadFilter, ThreadPage, ThreadRow
from chatd.store.rows import order_from_row
from chatd.store.sqlite import attention as staff
from chatd.store.sqlite import messages
from chatd.store.sqlite.engine import StoreMixin
from chatd.store.sqlite.search import ACT as _ACT
from chatd.store.sqlite.search import ACTIVITY as _ACTIVITY
from chatd.store.sqlite.search import ORDER_SELECT as _ORDER_COLS
from chatd.store.sqlite.search import Search

MAX_CHANGED = 5000  # threads with news since the snapshot before a cursor is too old
MATCHES_PER_THREAD = 10


class Threads(StoreMixin):
    """Mixed into SqliteStore."""

    async def thread_page(self, filters: ThreadFilter, after: tuple[int, int, str] | None, limit: int) -> ThreadPage:
        return await asyncio.to_thread(self._thread_page, filters, after, limit)

    def _thread_page(self, filters: ThreadFilter, after: tuple[int, int, str] | None, limit: int) -> ThreadPage:
        where, args = _filters(filters)
        with self._search_lock, self._reading():
            db = self._search_db()
            db.execute("BEGIN")  # one snapshot for the page (WAL: never waits for the writer)
            try:
                search = Search(db, filters.words, filters.emails) if filters.words else None
                if after is not None:
                    as_of, act, oid = after
                    rows = _after(db, where, args, as_of, act, oid, limit + 1, search)
                else:
                    as_of = db.execute("SELECT COALESCE(MAX(id), 0) FROM message_log").fetchone()[0]
                    rows = _first(db, where, args, limit + 1, search)
                more = len(rows) > limit
                rows = rows[:limit]
                out = []
                orders = [order_from_row(r[:_ACT]) for r in rows]
                lasts = messages.by_keys(db, [(o.id, o.last_seq) for o in orders if o.last_seq])
                for r, order in zip(rows, orders, strict=True):
                    last = lasts.get((order.id, order.last_seq))
                    unread = None
                    if filters.unread_for:
                        u = db.execute(
                            "SELECT unread FROM read_markers WHERE order_id = ? AND user_id = ?",
                            (order.id, filters.unread_for),
                        ).fetchone()
                        unread = u[0] if u else 0
                    row = ThreadRow(order, r[_ACT], last, unread)
                    if filters.attention:
                        _add_queue(db, row, filters.queue_user)
                    out.append(row)
                if search is not None and out:
                    _add_matches(db, out, [r[-1] for r in rows], search)
            finally:
                db.execute("COMMIT")
        return ThreadPage(out, as_of, more)


def _filters(f: ThreadFilter) -> tuple[list[str], list[Any]]:
    where: list[str] = []
    args: list[Any] = []
    if f.has_messages == "true":
        where.append("o.last_seq > 0")
    elif f.has_messages == "false":
        where.append("o.last_seq = 0")
    if f.dispute == "open":
        where.append("o.dispute_open = 1")
    elif f.dispute == "closed":
        where.append("o.dispute_open = 0 AND o.dispute_ts IS NOT NULL")
    elif f.dispute == "none":
        where.append("o.dispute_ts IS NULL")
    # read_markers_user drives these: a user's few orders, not a scan of all of them
    if f.unread_for:
        where.append("o.id IN (SELECT r.order_id FROM read_markers r WHERE r.user_id = ? AND r.unread > 0)")
        args.append(f.unread_for)
    if f.scope_user is not None:  # participants hold a marker on each of their orders
        where.append(
            "o.id IN (SELECT r.order_id FROM read_markers r WHERE r.user_id = ?) "
            "AND (o.supplier_id = ? OR o.rep_id = ?)"
        )
        args += [f.scope_user, f.scope_user, f.scope_user]
    if f.staff is not None:
        where.append("o.buyer_id != ?")
        args.append(f.staff)
    if f.status is not None:
        where.append("o.status = ?")
        args.append(f.status)
    if f.awaiting_reply is not None:
        where.append("o.awaiting_seq IS NOT NULL" if f.awaiting_reply else "o.awaiting_seq IS NULL")
    if f.overdue:  # as escalated (awaiting_reply.overdue): the SLA job decides, none with reply_within_s = 0
        where.append("o.sla_escalated = 1")
    if f.attention:
        if f.queue_user is None:
            where.append(staff.SHARED)
        else:
            where.append(f"({staff.SHARED} OR o.id IN (SELECT order_id FROM staff_follows WHERE user_id = ?))")
            where.append(staff.NOT_IN_SLOT)
            args += [f.queue_user] * 4
    return where, args


def _add_queue(db: sqlite3.Connection, row: ThreadRow, user: str | None) -> None:
    """Why the thread is in the queue (for `user`, a staff member: their follow too),
    and the shared staff marker's count."""
    order = row.order
    followed = user is not None and (
        db.execute("SELECT 1 FROM staff_follows WHERE user_id = ? AND order_id = ?", (user, order.id)).fetchone()
        is not None
    )
    row.reasons = attention.reasons_for(attention.shared_reasons(order), followed)
    row.staff_unread = staff.marker(db, order.id)[1]


def _first(db: sqlite3.Connection, where: list[str], args: list[Any], n: int, search: Search | None) -> list[Any]:
    cond = " AND ".join(where) or "1"
    if search is not None:
        return search.select(cond, args, None, n)
    return db.execute(
        f"SELECT {_ORDER_COLS}, {_ACTIVITY} AS act FROM orders o WHERE {cond} "
        f"ORDER BY {_ACTIVITY} DESC, o.id DESC LIMIT ?",
        (*args, n),
    ).fetchall()


def _after(
    db: sqlite3.Connection,
    where: list[str],
    args: list[Any],
    as_of: int,
    act: int,
    oid: str,
    n: int,
    search: Search | None,
) -> list[Any]:
    """The next `n` threads below (act, oid), ordered by activity as of log id `as_of`."""
    # each thread with news since the snapshot, and its first seq after it
    changed = dict(
        db.execute(
            "SELECT order_id, MIN(seq) FROM message_log WHERE id > ? GROUP BY order_id LIMIT ?",
            (as_of, MAX_CHANGED + 1),
        ).fetchall()
    )
    if len(changed) > MAX_CHANGED:
        raise Conflict("the cursor is too old: start again from the first page")
    changed_json = msgspec.json.encode(changed).decode()
    # threads without news since the snapshot: their activity now is their activity then
    cond = " AND ".join([*where, "o.id NOT IN (SELECT key FROM json_each(?))"])
    if search is not None:
        rows = search.select(cond, [*args, changed_json], (act, oid), n)
    else:
        keyset = f"({_ACTIVITY} < ? OR ({_ACTIVITY} = ? AND o.id < ?))"
        rows = db.execute(
            f"SELECT {_ORDER_COLS}, {_ACTIVITY} AS act FROM orders o WHERE {cond} AND {keyset} "
            f"ORDER BY {_ACTIVITY} DESC, o.id DESC LIMIT ?",
            (*args, changed_json, act, act, oid, n),
        ).fetchall()
    if changed:
        # threads with news: their activity as of the snapshot is their last
        # message before the first one after it (seq and log id grow together)
        cond = " AND ".join(where) or "1"
        news = db.execute(
            f"SELECT * FROM (SELECT {_ORDER_COLS}, COALESCE((SELECT m.ts FROM messages m "
            "WHERE m.order_id = o.id AND m.seq = c.value - 1), o.created_ts) AS act, w.id AS ord "
            "FROM json_each(?) c JOIN orders o ON o.id = c.key LEFT JOIN order_words w ON w.order_id = o.id "
            f"WHERE {cond}) WHERE act < ? OR (act = ? AND id < ?)",
            (changed_json, *args, act, act, oid),
        ).fetchall()
        rows += search.keep(news) if search is not None else news
        rows.sort(key=lambda r: (r[_ACT], r[0]), reverse=True)
    return rows[:n]


def _add_matches(db: sqlite3.Connection, rows: list[ThreadRow], ords: list[int], search: Search) -> None:
    """The matching messages of each listed thread, newest first (at most 10 each)."""
    ask = [(r.order.id, num) for r, num in zip(rows, ords, strict=True) if r.order.id not in search.hits]
    if ask:
        search.ask(ask)
    shown = {r.order.id: search.hits.get(r.order.id, []) for r in rows}
    found = messages.by_keys(db, [(o, seq) for o, seqs in shown.items() for seq in seqs[:MATCHES_PER_THREAD]])
    for r in rows:
        seqs = shown[r.order.id]
        r.match_count = len(seqs)
        r.matches = [m for seq in seqs[:MATCHES_PER_THREAD] if (m := found.get((r.order.id, seq)))]
