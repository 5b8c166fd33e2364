"""Admin threads: every order's chat, newest activity first, with filters and full-text search.

Pagination is keyset on (activity, order id) *as of a snapshot*. The first page
records the newest `message_log` id it saw; every later page orders threads by
their activity as of that id. A thread that gets a message meanwhile keeps its
place instead of jumping above the cursor (where plain keyset pagination
would skip it), and a thread already listed cannot come round again: every
thread that existed at the first page is listed exactly once. Which threads
pass a filter (dispute, unread, has_messages, q) is decided on each page with
the data of that moment; `last_message` and counts are always current.

A search over a large history can take a while, so pages are read on a
worker thread over a connection of their own (`apage`), never on the loop.
"""

from __future__ import annotations

import asyncio
import base64
import re
import sqlite3
import threading
from typing import Annotated

import msgspec
from msgspec import Meta

from chatd.errors import BadRequest, Conflict
from chatd.store.records import OrderRecord
from chatd.store.rows import MSG_COLS, message_from_row, order_from_row
from chatd.store.sqlite import SqliteStore
from chatd.wire import ID_CHARS, Message, Seq, decode_json

QUERY_CHARS = 1000  # the q of a search: at most MAX_TERMS words are used anyway
CURSOR_CHARS = 2048  # base64 of JSON naming an order id of up to 200 (escaped) characters

_ORDER_COLS = (
    "o.id, o.status, o.buyer_id, o.buyer_name, o.supplier_id, o.supplier_name, o.rep_id, o.rep_name, "
    "o.dispute_open, o.dispute_reason, o.dispute_by, o.dispute_ts, o.last_seq, o.last_ts, o.created_ts"
)
# the expression of the orders_activity index (migration 2)
_ACTIVITY = "(CASE WHEN last_seq > 0 THEN last_ts ELSE created_ts END)"
MAX_CHANGED = 5000  # threads with news since the snapshot before a cursor is too old
MATCHES_PER_THREAD = 10
MAX_TERMS = 16


class ThreadQuery(msgspec.Struct, frozen=True):
    dispute: str | None = None  # "open", "closed" (had one, now closed), "none"
    unread_for: Annotated[str, Meta(max_length=ID_CHARS)] | None = None  # threads where this user has unread messages
    has_messages: str = "true"  # "true" (default), "false", "any"
    q: Annotated[str, Meta(max_length=QUERY_CHARS)] | None = None  # full-text: every word, as a word or a prefix
    limit: int = 50
    cursor: Annotated[str, Meta(max_length=CURSOR_CHARS)] | None = None


def fts_query(q: str) -> str:
    """An FTS5 expression: every word of `q` required, as a word or a word's prefix.

    Words are split like the index's tokenizer does (letters and digits), so no
    FTS syntax passes through. A one-character word matches only itself: as a
    prefix it would match a large part of the vocabulary.
    """
    terms = re.findall(r"[^\W_]+", q)[:MAX_TERMS]
    if not terms:
        raise BadRequest("q must contain at least one word")
    return " ".join(f'"{t}"' + ("*" if len(t) > 1 else "") for t in terms)


def _encode_cursor(as_of: int, activity: int, order_id: str) -> str:
    return base64.urlsafe_b64encode(msgspec.json.encode([1, as_of, activity, order_id])).decode().rstrip("=")


_CursorFields = tuple[int, Seq, Seq, Annotated[str, Meta(max_length=ID_CHARS)]]  # version, as_of, activity, order


def _decode_cursor(cursor: str) -> tuple[int, int, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        version, as_of, activity, order_id = decode_json(raw, _CursorFields)
    except (ValueError, msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise BadRequest("invalid cursor") from exc
    if version != 1:
        raise BadRequest("invalid cursor")
    return as_of, activity, order_id


class Threads:
    """The queries behind GET /api/v1/threads (inline reads, one read transaction per page)."""

    def __init__(self, store: SqliteStore, online=lambda order_id: frozenset(), max_limit: int = 200) -> None:
        self.store = store
        self.online = online  # order id -> users with a live connection joined to it (loop only)
        self.max_limit = max_limit
        self._conn: sqlite3.Connection | None = None
        self._lock = threading.Lock()  # one page at a time on the connection

    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            db = sqlite3.connect(self.store.path, isolation_level=None, check_same_thread=False)
            db.execute("PRAGMA query_only = 1")
            db.execute("PRAGMA busy_timeout = 5000")
            self._conn = db
        return self._conn

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    async def apage(self, query: ThreadQuery, scope_user: str | None = None, staff: str | None = None) -> dict:
        """`page` on a worker thread; participants' `online` filled in on the loop."""
        if query.q:
            await self.store.index_search()  # a search sees every message stored before it
        result = await asyncio.to_thread(self.page, query, scope_user, staff)
        for t in result["threads"]:
            online = self.online(t["order"])
            for p in t["participants"]:
                p.online = p.id in online
        return result

    def page(self, query: ThreadQuery, scope_user: str | None = None, staff: str | None = None) -> dict:
        """One page: `{threads, next_cursor}`. `scope_user` limits it to the orders where
        that user holds the supplier or sales rep slot (a supplier-side caller); `staff`
        (a staff token's id) leaves out the orders where that id is the buyer: a buyer
        there, whatever the token says, and buyers have no threads."""
        if query.limit < 1:
            raise BadRequest("limit must be at least 1")
        limit = min(query.limit, self.max_limit)
        where, args = self._filters(query, scope_user)
        if staff is not None:
            where.append("o.buyer_id != ?")
            args.append(staff)
        fts = fts_query(query.q) if query.q else None
        if fts is not None:
            where.append("o.id IN (SELECT l.order_id FROM message_log l WHERE l.id IN "
                         "(SELECT rowid FROM messages_fts WHERE messages_fts MATCH ?))")
            args.append(fts)
        with self._lock:
            return self._page(self._db(), query, limit, where, args, fts)

    def _page(self, db, query, limit, where, args, fts) -> dict:
        db.execute("BEGIN")  # one snapshot for the page (WAL: never waits for the writer)
        try:
            if query.cursor:
                as_of, act, oid = _decode_cursor(query.cursor)
                rows = self._after(db, where, args, as_of, act, oid, limit + 1)
            else:
                as_of = db.execute("SELECT COALESCE(MAX(id), 0) FROM message_log").fetchone()[0]
                rows = self._first(db, where, args, limit + 1)
            more = len(rows) > limit
            rows = rows[:limit]
            threads = [self._entry(db, order_from_row(r[:15]), r[15], query) for r in rows]
            if fts is not None and rows:
                self._add_matches(db, threads, fts)
        finally:
            db.execute("COMMIT")
        next_cursor = _encode_cursor(as_of, rows[-1][15], rows[-1][0]) if more else None
        return {"threads": threads, "next_cursor": next_cursor}

    @staticmethod
    def _filters(query: ThreadQuery, scope_user: str | None) -> tuple[list[str], list]:
        where: list[str] = []
        args: list = []
        if query.has_messages == "true":
            where.append("o.last_seq > 0")
        elif query.has_messages == "false":
            where.append("o.last_seq = 0")
        elif query.has_messages != "any":
            raise BadRequest("has_messages must be true, false or any")
        if query.dispute == "open":
            where.append("o.dispute_open = 1")
        elif query.dispute == "closed":
            where.append("o.dispute_open = 0 AND o.dispute_ts IS NOT NULL")
        elif query.dispute == "none":
            where.append("o.dispute_ts IS NULL")
        elif query.dispute is not None:
            raise BadRequest("dispute must be open, closed or none")
        # read_markers_user drives these: a user's few orders, not a scan of all of them
        if query.unread_for:
            where.append("o.id IN (SELECT r.order_id FROM read_markers r WHERE r.user_id = ? AND r.unread > 0)")
            args.append(query.unread_for)
        if scope_user is not None:  # participants hold a marker on each of their orders
            where.append("o.id IN (SELECT r.order_id FROM read_markers r WHERE r.user_id = ?) "
                         "AND (o.supplier_id = ? OR o.rep_id = ?)")
            args += [scope_user, scope_user, scope_user]
        return where, args

    @staticmethod
    def _first(db, where: list[str], args: list, n: int) -> list:
        cond = " AND ".join(where) or "1"
        return db.execute(
            f"SELECT {_ORDER_COLS}, {_ACTIVITY} AS act FROM orders o WHERE {cond} "
            f"ORDER BY {_ACTIVITY} DESC, o.id DESC LIMIT ?",
            (*args, n),
        ).fetchall()

    @staticmethod
    def _after(db, where: list[str], args: list, as_of: int, act: int, oid: str, n: int) -> list:
        """The next `n` threads below (act, oid), ordered by activity as of log id `as_of`."""
        # each thread with news since the snapshot, and its first seq after it
        changed = dict(db.execute(
            "SELECT order_id, MIN(seq) FROM message_log WHERE id > ? GROUP BY order_id LIMIT ?",
            (as_of, MAX_CHANGED + 1),
        ).fetchall())
        if len(changed) > MAX_CHANGED:
            raise Conflict("the cursor is too old: start again from the first page")
        changed_json = msgspec.json.encode(changed).decode()
        cond = " AND ".join(where) or "1"
        keyset = f"({_ACTIVITY} < ? OR ({_ACTIVITY} = ? AND o.id < ?))"
        # threads without news since the snapshot: their activity now is their activity then
        rows = db.execute(
            f"SELECT {_ORDER_COLS}, {_ACTIVITY} AS act FROM orders o WHERE {cond} AND {keyset} "
            "AND o.id NOT IN (SELECT key FROM json_each(?)) "
            f"ORDER BY {_ACTIVITY} DESC, o.id DESC LIMIT ?",
            (*args, act, act, oid, changed_json, n),
        ).fetchall()
        if changed:
            # threads with news: their activity as of the snapshot is their last
            # message before the first one after it (seq and log id grow together)
            rows += db.execute(
                f"SELECT * FROM (SELECT {_ORDER_COLS}, COALESCE((SELECT m.ts FROM messages m "
                "WHERE m.order_id = o.id AND m.seq = c.value - 1), o.created_ts) AS act "
                f"FROM json_each(?) c JOIN orders o ON o.id = c.key WHERE {cond}) "
                "WHERE act < ? OR (act = ? AND id < ?)",
                (changed_json, *args, act, act, oid),
            ).fetchall()
            rows.sort(key=lambda r: (r[15], r[0]), reverse=True)
        return rows[:n]

    def _entry(self, db, order: OrderRecord, activity: int, query: ThreadQuery) -> dict:
        last = self.message_from_row(db, order.id, order.last_seq) if order.last_seq else None
        entry = {
            "order": order.id,
            "status": order.status,
            "dispute_open": bool(order.dispute and order.dispute.open),
            "dispute": order.dispute,
            "participants": order.participants(),  # online: see apage
            "message_count": order.last_seq,  # seqs are gapless and messages are never deleted
            "activity_ts": activity,
            "last_message": last,
        }
        if query.unread_for:
            row = db.execute("SELECT unread FROM read_markers WHERE order_id = ? AND user_id = ?",
                             (order.id, query.unread_for)).fetchone()
            entry["unread"] = row[0] if row else 0
        return entry

    def _add_matches(self, db, threads: list[dict], fts: str) -> None:
        """The matching messages of each listed thread, newest first (at most 10 each)."""
        ids = [t["order"] for t in threads]
        found: dict[str, list[int]] = {}
        for order_id, seq in db.execute(
            "SELECT l.order_id, l.seq FROM message_log l WHERE l.id IN "
            "(SELECT rowid FROM messages_fts WHERE messages_fts MATCH ?) "
            "AND l.order_id IN (SELECT value FROM json_each(?)) ORDER BY l.id DESC",
            (fts, msgspec.json.encode(ids).decode()),
        ):
            found.setdefault(order_id, []).append(seq)
        for t in threads:
            seqs = found.get(t["order"], [])
            t["match_count"] = len(seqs)
            t["matches"] = [m for seq in seqs[:MATCHES_PER_THREAD] if (m := self.message_from_row(db, t["order"], seq))]

    @staticmethod
    def message_from_row(db, order_id: str, seq: int) -> Message | None:
        row = db.execute(f"SELECT {MSG_COLS} FROM messages WHERE order_id = ? AND seq = ?", (order_id, seq)).fetchone()
        return message_from_row(order_id, row) if row else None
