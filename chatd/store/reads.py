"""Reads of the store: small pages run inline on the loop (WAL readers never
wait for the writer); whole-history exports stream through aiosqlite."""

from __future__ import annotations

from collections.abc import AsyncIterator

import msgspec

from chatd.auth import permissions
from chatd.errors import BadRequest
from chatd.store.records import OrderRecord
from chatd.store.rows import MSG_COLS, ORDER_COLS, message_from_row, order_from_row
from chatd.wire import Message


_NO_END = 1 << 62  # above every seq


class Reads:
    """Mixed into SqliteStore: needs `self._r` (sqlite3) and `self._aux` (aiosqlite)."""

    def get_order(self, order_id: str) -> OrderRecord | None:
        row = self._r.execute(f"SELECT {ORDER_COLS} FROM orders WHERE id = ?", (order_id,)).fetchone()
        return order_from_row(row) if row else None

    def _page(self, order_id: str, sees_notes: bool, above: int, below: int, limit: int,
              newest: bool) -> tuple[list[Message], bool]:
        """Up to `limit` messages with above < seq < below, ascending, taken from the
        newest end or the oldest; and whether more were left out."""
        notes = "" if sees_notes else " AND kind != 'note'"
        rows = self._r.execute(
            f"SELECT {MSG_COLS} FROM messages WHERE order_id = ? AND seq > ? AND seq < ?{notes} "
            f"ORDER BY seq {'DESC' if newest else 'ASC'} LIMIT ?",
            (order_id, above, below, limit + 1),
        ).fetchall()
        more = len(rows) > limit
        rows = rows[:limit]
        if newest:
            rows.reverse()
        return [message_from_row(order_id, r) for r in rows], more

    def history(
        self, order_id: str, sees_notes: bool, before: int | None, after: int | None, limit: int
    ) -> tuple[list[Message], bool]:
        """The newest `limit` below `before`, or the oldest `limit` above `after`."""
        if after is not None:
            return self._page(order_id, sees_notes, after, _NO_END, limit, newest=False)
        return self._page(order_id, sees_notes, 0, _NO_END if before is None else before, limit, newest=True)

    def replay(
        self, order_id: str, sees_notes: bool, since: int | None, limit: int
    ) -> tuple[list[Message], bool]:
        """Messages after `since` (all of them up to `limit`, newest kept; the flag
        says some were left out), or without `since` the newest `limit`."""
        msgs, more = self._page(order_id, sees_notes, since or 0, _NO_END, limit, newest=True)
        return msgs, more and since is not None

    def marker(self, order_id: str, user_id: str, sees_notes: bool, last_seq: int) -> tuple[int, int, int]:
        """(read_seq, unread, last visible seq) for a user on an order."""
        row = self._r.execute(
            "SELECT read_seq, unread, last_seq FROM read_markers WHERE user_id = ? AND order_id = ?",
            (user_id, order_id),
        ).fetchone()
        if row:
            return row[0], row[1], row[2] if not sees_notes else last_seq
        # staff and bots without a marker yet: everything visible is unread
        notes = "" if sees_notes else " AND kind != 'note'"
        count, last = self._r.execute(
            f"SELECT COUNT(*), COALESCE(MAX(seq), 0) FROM messages WHERE order_id = ? "
            f"AND sender_id != ?{notes}",
            (order_id, user_id),
        ).fetchone()
        return 0, count, last if not sees_notes else last_seq

    def total_unread(self, user_id: str) -> int:
        row = self._r.execute("SELECT unread_total FROM user_stats WHERE user_id = ?", (user_id,)).fetchone()
        return row[0] if row else 0

    def visible_total(self, ident) -> int:
        """The user's unread total over the orders this identity may see: side
        markers (kept for the id as staff or a bot) count only if the token covers
        their order."""
        total = self.total_unread(ident.id)
        if permissions.covers_every_order(ident.role, ident.orders):
            return total
        rows = self._r.execute(
            "SELECT order_id, unread FROM read_markers WHERE user_id = ? AND side = 1 AND unread != 0",
            (ident.id,),
        ).fetchall()
        return total - sum(n for order_id, n in rows if not permissions.covers(ident.role, ident.orders, order_id))

    def inbox(self, ident, limit: int, cursor: str | None):
        """The identity's orders, newest activity first: (entries, total, next_cursor).

        Each entry is (order_id, status, unread, dispute_open, last Message or None).
        Side markers are listed only where the token covers the order.
        """
        args: list = [ident.id]
        where = ""
        if not permissions.covers_every_order(ident.role, ident.orders):
            claim = sorted(ident.orders) if ident.role == "bot" and ident.orders else []
            where = " AND (m.side = 0 OR m.order_id IN (SELECT value FROM json_each(?)))"
            args.append(msgspec.json.encode(claim).decode())
        if cursor:
            ts, _, oid = cursor.partition(":")
            # what next_cursor makes: "<activity ms>:<order id>"
            if not (ts.isascii() and ts.isdigit() and len(ts) <= 18 and oid):
                raise BadRequest("invalid cursor")
            args += [int(ts), int(ts), oid]
            where += " AND (m.activity_ts < ? OR (m.activity_ts = ? AND m.order_id < ?))"
        rows = self._r.execute(
            "SELECT m.order_id, o.status, m.unread, o.dispute_open, m.last_seq, m.activity_ts "
            "FROM read_markers m JOIN orders o ON o.id = m.order_id "
            f"WHERE m.user_id = ?{where} ORDER BY m.activity_ts DESC, m.order_id DESC LIMIT ?",
            (*args, limit + 1),
        ).fetchall()
        more = len(rows) > limit
        rows = rows[:limit]
        entries = []
        for oid, status, unread, dispute_open, last_seq, _ in rows:
            last = None
            if last_seq:
                row = self._r.execute(
                    f"SELECT {MSG_COLS} FROM messages WHERE order_id = ? AND seq = ?", (oid, last_seq)
                ).fetchone()
                last = message_from_row(oid, row) if row else None
            entries.append((oid, status, unread, bool(dispute_open), last))
        next_cursor = f"{rows[-1][5]}:{rows[-1][0]}" if more and rows else None
        return entries, self.visible_total(ident), next_cursor

    async def export(self, order_id: str, sees_notes: bool, chunk: int = 500) -> AsyncIterator[list[Message]]:
        """The whole history in ascending chunks, read off the loop (aiosqlite)."""
        notes = "" if sees_notes else " AND kind != 'note'"
        after = 0
        while True:
            async with self._aux.execute(
                f"SELECT {MSG_COLS} FROM messages WHERE order_id = ? AND seq > ?{notes} "
                "ORDER BY seq LIMIT ?",
                (order_id, after, chunk),
            ) as cur:
                rows = await cur.fetchall()
            if not rows:
                return
            yield [message_from_row(order_id, r) for r in rows]
            after = rows[-1][0]
