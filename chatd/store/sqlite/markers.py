"""Read markers and unread counts: a user's place in an order, totals, the inbox.

Triggers (migrations 1 and 5) keep every marker's `unread` and each user's
total in step with every write, so neither an inbox page nor an unread
update scans the messages table.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

import msgspec

from chatd.auth import permissions
from chatd.auth.tokens import Identity
from chatd.errors import BadRequest, NotFound
from chatd.store.base import InboxRow
from chatd.store.records import OrderRecord, ReadMarker, UnreadChange
from chatd.store.rows import Actor
from chatd.store.sqlite import attention as staff
from chatd.store.sqlite import messages, notifications
from chatd.store.sqlite.engine import StoreMixin, inline_read


class Markers(StoreMixin):
    """Mixed into SqliteStore."""

    @inline_read
    async def marker(self, order_id: str, user_id: str, sees_notes: bool, last_seq: int) -> tuple[int, int, int]:
        """(read_seq, unread, last visible seq) for a user on an order."""
        row = self.reader.execute(
            "SELECT read_seq, unread, last_seq FROM read_markers WHERE user_id = ? AND order_id = ?",
            (user_id, order_id),
        ).fetchone()
        if row:  # a reader who does not see notes: never above the newest message they may see
            return (row[0], row[1], last_seq) if sees_notes else (min(row[0], row[2]), row[1], row[2])
        # staff and bots without a marker yet: everything visible is unread
        notes = "" if sees_notes else " AND kind != 'note'"
        count, last = self.reader.execute(
            f"SELECT COUNT(*), COALESCE(MAX(seq), 0) FROM messages WHERE order_id = ? AND sender_id != ?{notes}",
            (order_id, user_id),
        ).fetchone()
        return 0, count, last if not sees_notes else last_seq

    @inline_read
    async def receipts(self, order_id: str, user_id: str, sees_notes: bool) -> list[tuple[str, int]]:
        seq = (
            "r.read_seq"
            if sees_notes
            else "(SELECT COALESCE(MAX(m.seq), 0) FROM messages m"
            " WHERE m.order_id = r.order_id AND m.seq <= r.read_seq AND m.kind != 'note')"
        )
        rows = self.reader.execute(
            f"SELECT r.user_id, {seq} FROM read_markers r"
            " WHERE r.order_id = ? AND r.side = 0 AND r.user_id != ? AND r.read_seq > 0 ORDER BY r.user_id",
            (order_id, user_id),
        ).fetchall()
        return [(u, s) for u, s in rows if s > 0]

    @inline_read
    async def readers(self, order_id: str) -> list[tuple[UnreadChange, bool]]:
        rows = self.reader.execute(
            "SELECT m.user_id, m.unread, COALESCE(s.unread_total, 0), m.side, COALESCE(s.side_unread, 0), "
            "m.sees_notes FROM read_markers m LEFT JOIN user_stats s ON s.user_id = m.user_id "
            "WHERE m.order_id = ? ORDER BY m.user_id",
            (order_id,),
        ).fetchall()
        return [(UnreadChange(u, n, t, bool(side), hidden), bool(sees)) for u, n, t, side, hidden, sees in rows]

    @inline_read
    async def total_unread(self, user_id: str) -> int:
        row = self.reader.execute("SELECT unread_total FROM user_stats WHERE user_id = ?", (user_id,)).fetchone()
        return row[0] if row else 0

    @inline_read
    async def visible_total(self, ident: Identity) -> int:
        """The user's unread total over the orders this identity may see: side
        markers (kept for the id as staff or a bot) count only if the token covers
        their order. A staff token counts none of them: its own orders as a
        participant, and its attention queue from the shared staff markers."""
        total = await self.total_unread(ident.id)
        if ident.role == permissions.QUEUE_ROLE:
            return total - self._hidden(self.reader, ident.id) + staff.queue_total(self.reader, ident.id)
        if permissions.covers_every_order(ident.role, ident.orders):
            return total
        rows: list[tuple[str, int]] = self.reader.execute(
            "SELECT order_id, unread FROM read_markers WHERE user_id = ? AND side = 1 AND unread != 0",
            (ident.id,),
        ).fetchall()
        return total - sum(n for order_id, n in rows if not permissions.covers(ident.role, ident.orders, order_id))

    @inline_read
    async def inbox(
        self, ident: Identity, limit: int, cursor: str | None, only: Sequence[str] | None = None
    ) -> tuple[list[InboxRow], int, str | None]:
        """The identity's orders, newest activity first: (entries, total, next_cursor).

        Each entry is (order_id, status, unread, dispute_open, last Message or None,
        reasons or None). Side markers are listed only where the token covers the
        order; a staff token's are its participant orders and its attention queue.
        """
        args: list[Any] = [ident.id]
        where = ""
        queue = ident.role == permissions.QUEUE_ROLE
        if queue:
            where = " AND m.side = 0"  # the shared staff state stands in for an id's own staff markers
        elif not permissions.covers_every_order(ident.role, ident.orders):
            claim = sorted(ident.orders) if ident.role == "bot" and ident.orders else []
            where = " AND (m.side = 0 OR m.order_id IN (SELECT value FROM json_each(?)))"
            args.append(msgspec.json.encode(claim).decode())
        after = None
        if cursor:
            ts, _, oid = cursor.partition(":")
            # what next_cursor makes: "<activity ms>:<order id>"
            if not (ts.isascii() and ts.isdigit() and len(ts) <= 18 and oid):
                raise BadRequest("invalid cursor")
            after = (int(ts), oid)
            args += [after[0], after[0], oid]
            where += " AND (m.activity_ts < ? OR (m.activity_ts = ? AND m.order_id < ?))"
        ids = None if only is None else msgspec.json.encode(sorted(set(only))).decode()
        if ids is not None:
            args.append(ids)
            where += " AND m.order_id IN (SELECT value FROM json_each(?))"
        rows: list[tuple[Any, ...]] = [
            (*r, None)
            for r in self.reader.execute(
                # the page of markers first, then its orders: a user in 10,000 orders looks up 51
                "SELECT m.order_id, o.status, m.unread, o.dispute_open, m.last_seq, m.activity_ts "
                "FROM (SELECT m.order_id, m.unread, m.last_seq, m.activity_ts FROM read_markers m "
                f"WHERE m.user_id = ?{where} ORDER BY m.activity_ts DESC, m.order_id DESC LIMIT ?) m "
                "JOIN orders o ON o.id = m.order_id ORDER BY m.activity_ts DESC, m.order_id DESC",
                (*args, limit + 1),
            ).fetchall()
        ]
        if queue:  # two lists in one order: neither holds an order of the other (slots are left out)
            rows += staff.queue_rows(self.reader, ident.id, after, limit + 1, ids)
            rows.sort(key=lambda r: (r[5], r[0]), reverse=True)
        more = len(rows) > limit
        rows = rows[:limit]
        lasts = messages.by_keys(self.reader, [(r[0], r[4]) for r in rows if r[4]])  # one read for the page
        entries: list[InboxRow] = [
            (oid, status, unread, bool(dispute_open), lasts.get((oid, last_seq)), reasons)
            for oid, status, unread, dispute_open, last_seq, _, reasons in rows
        ]
        next_cursor = f"{rows[-1][5]}:{rows[-1][0]}" if more and rows else None
        return entries, await self.visible_total(ident), next_cursor

    @staticmethod
    def _add_marker(db: sqlite3.Connection, order: OrderRecord, user: str, sees_notes: bool) -> int:
        """A new marker at 0 (replacing any): everything visible unread; returns its
        `last_seq`, the newest message the user may see."""
        notes = "" if sees_notes else " AND kind != 'note'"
        unread, last = db.execute(
            f"SELECT COUNT(*) FILTER (WHERE sender_id != ?), COALESCE(MAX(seq), 0) FROM messages "
            f"WHERE order_id = ?{notes}",
            (user, order.id),
        ).fetchone()
        # DELETE, then a plain INSERT: an outer OR REPLACE overrides the trigger's
        # INSERT OR IGNORE into user_stats, which reset the user's total to this
        # marker's count, and it skips the delete trigger for the replaced marker
        db.execute("DELETE FROM read_markers WHERE user_id = ? AND order_id = ?", (user, order.id))
        db.execute(
            "INSERT INTO read_markers (user_id, order_id, sees_notes, read_seq, unread, "
            "last_seq, activity_ts, side) VALUES (?, ?, ?, 0, ?, ?, ?, ?)",
            (
                user,
                order.id,
                int(sees_notes),
                unread,
                last,
                order.last_ts or order.created_ts,
                int(user not in order.slots),
            ),
        )
        return int(last)

    @staticmethod
    def _hidden(db: sqlite3.Connection, user_id: str) -> int:
        """The user's unread on side markers (kept beside their total: migration 15)."""
        row = db.execute("SELECT side_unread FROM user_stats WHERE user_id = ?", (user_id,)).fetchone()
        return int(row[0]) if row else 0

    @staticmethod
    def _total(db: sqlite3.Connection, user_id: str) -> int:
        row = db.execute("SELECT unread_total FROM user_stats WHERE user_id = ?", (user_id,)).fetchone()
        return row[0] if row else 0

    async def mark_read(
        self, actor: Actor | None, order_id: str, user_id: str, seq: int, backward: bool = False
    ) -> ReadMarker | None:
        """Move `user_id`'s read marker to `seq` (forward only unless `backward`).

        `actor` None means the api key acting for `user_id` (who must hold a
        marker). An actor who is staff on the order moves the shared staff marker
        instead (`ReadMarker.staff`). Returns None when nothing changed.
        """

        def op(db: sqlite3.Connection) -> ReadMarker | None:
            order = self._load_order(db, order_id)
            role = ""
            if actor is not None:
                role = actor.role_in(order)
                sees = permissions.sees_notes(role)
                if role == permissions.QUEUE_ROLE:  # staff read the order for staff as a whole
                    return staff.read(db, order, seq, backward)
            row = db.execute(
                "SELECT read_seq, unread, sees_notes, side, last_seq FROM read_markers "
                "WHERE user_id = ? AND order_id = ?",
                (user_id, order_id),
            ).fetchone()
            if row is None:
                if actor is None:
                    raise NotFound(f"user {user_id} has no read marker on this order", ref=order_id)
                last = self._add_marker(db, order, user_id, sees)
                row = (0, None, int(sees), int(user_id not in order.slots), last)
            read_seq, _, sees, side, newest = row
            plain = "SELECT COALESCE(MAX(seq), 0) FROM messages WHERE order_id = ? AND seq <= ? AND kind != 'note'"
            # clamped to the newest message this user may see at or below `seq` (the marker's
            # last_seq is the newest they may see at all): a buyer's marker never holds a note's seq
            target = max(0, min(seq, newest))
            if not sees and 0 < target < newest:
                target = db.execute(plain, (order_id, target)).fetchone()[0]
            if target == read_seq or (target < read_seq and not backward):
                return None
            notes = "" if sees else " AND kind != 'note'"
            unread = db.execute(
                f"SELECT COUNT(*) FROM messages WHERE order_id = ? AND seq > ? AND sender_id != ?{notes}",
                (order_id, target, user_id),
            ).fetchone()[0]
            db.execute(
                "UPDATE read_markers SET read_seq = ?, unread = ? WHERE user_id = ? AND order_id = ?",
                (target, unread, user_id, order_id),
            )
            notifications.on_read(db, user_id, order_id, target)
            return ReadMarker(
                read_seq=target,
                unread=unread,
                total=self._total(db, user_id),
                role=role,
                side=bool(side),
                hidden=self._hidden(db, user_id),
                plain_seq=db.execute(plain, (order_id, target)).fetchone()[0],
                plain_before=db.execute(plain, (order_id, read_seq)).fetchone()[0],
            )

        return await self._write(op)
