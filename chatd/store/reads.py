"""Reads of the store: small pages run inline on the loop (WAL readers never
wait for the writer); whole-history exports stream through aiosqlite."""

from __future__ import annotations

from collections.abc import AsyncIterator

from chatd.errors import BadRequest
from chatd.store.records import OrderRecord
from chatd.store.rows import MSG_COLS, ORDER_COLS, message_from_row, order_from_row
from chatd.wire import Message


class Reads:
    """Mixed into SqliteStore: needs `self._r` (sqlite3) and `self._aux` (aiosqlite)."""

    def get_order(self, order_id: str) -> OrderRecord | None:
        row = self._r.execute(f"SELECT {ORDER_COLS} FROM orders WHERE id = ?", (order_id,)).fetchone()
        return order_from_row(row) if row else None

    def history(
        self, order_id: str, sees_notes: bool, before: int | None, after: int | None, limit: int
    ) -> tuple[list[Message], bool]:
        """The newest `limit` below `before`, or the oldest `limit` above `after`."""
        notes = "" if sees_notes else " AND kind != 'note'"
        if after is not None:
            rows = self._r.execute(
                f"SELECT {MSG_COLS} FROM messages WHERE order_id = ? AND seq > ?{notes} "
                "ORDER BY seq LIMIT ?",
                (order_id, after, limit + 1),
            ).fetchall()
            more = len(rows) > limit
            rows = rows[:limit]
        else:
            rows = self._r.execute(
                f"SELECT {MSG_COLS} FROM messages WHERE order_id = ? AND seq < ?{notes} "
                "ORDER BY seq DESC LIMIT ?",
                (order_id, before if before is not None else 1 << 62, limit + 1),
            ).fetchall()
            more = len(rows) > limit
            rows = rows[:limit]
            rows.reverse()
        return [message_from_row(order_id, r) for r in rows], more

    def replay(
        self, order_id: str, sees_notes: bool, since: int | None, limit: int
    ) -> tuple[list[Message], bool]:
        """Messages after `since` (all of them up to `limit`, newest kept), or the newest `limit`."""
        if since is None:
            msgs, _ = self.history(order_id, sees_notes, None, None, limit)
            return msgs, False
        notes = "" if sees_notes else " AND kind != 'note'"
        rows = self._r.execute(
            f"SELECT {MSG_COLS} FROM messages WHERE order_id = ? AND seq > ?{notes} "
            "ORDER BY seq DESC LIMIT ?",
            (order_id, since, limit + 1),
        ).fetchall()
        truncated = len(rows) > limit
        rows = rows[:limit]
        rows.reverse()
        return [message_from_row(order_id, r) for r in rows], truncated

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

    def inbox(self, user_id: str, limit: int, cursor: str | None):
        """The user's orders, newest activity first: (entries, total, next_cursor).

        Each entry is (order_id, status, unread, dispute_open, last Message or None).
        """
        args: list = [user_id]
        where = ""
        if cursor:
            try:
                ts, oid = cursor.split(":", 1)
                args += [int(ts), int(ts), oid]
            except ValueError as exc:
                raise BadRequest("invalid cursor") from exc
            where = " AND (m.activity_ts < ? OR (m.activity_ts = ? AND m.order_id < ?))"
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
        return entries, self.total_unread(user_id), next_cursor

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
