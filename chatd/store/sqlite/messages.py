"""Messages: the insert (next seq, its side rows), status and dispute changes, and reads.

A write closure checks before it writes: a refused request (ChatError)
leaves the rest of its batch untouched.
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator

import msgspec

from chatd.auth import permissions
from chatd.errors import BadRequest, ChatError, Conflict, Forbidden, Internal
from chatd.notifications import STAFF
from chatd.store.base import ExportRule, PostRule, StatusRule
from chatd.store.records import OrderRecord, Posted, UnreadChange
from chatd.store.rows import MSG_COLS, ORDER_COLS, Actor, message_from_row, now_ms, order_from_row
from chatd.store.sqlite import attachments as links
from chatd.store.sqlite import attention as staff
from chatd.store.sqlite import notifications, outbox, responses
from chatd.store.sqlite.engine import StoreMixin
from chatd.wire import AttachmentRef, DisputeState, Message, UserRef

_NO_END = 1 << 62  # above every seq


_MSG_SELECT = ", ".join("m." + c.strip() for c in MSG_COLS.split(","))


def by_keys(db: sqlite3.Connection, keys: list[tuple[str, int]]) -> dict[tuple[str, int], Message]:
    """These messages ((order, seq)), in one read."""
    if not keys:
        return {}
    rows = db.execute(
        f"SELECT m.order_id, {_MSG_SELECT} FROM json_each(?) k CROSS JOIN messages m "
        "ON m.order_id = json_extract(k.value, '$[0]') AND m.seq = json_extract(k.value, '$[1]')",
        (msgspec.json.encode(keys).decode(),),
    )
    return {(r[0], r[1]): message_from_row(r[0], r[1:]) for r in rows}


class Messages(StoreMixin):
    """Mixed into SqliteStore."""

    async def check_writable(self) -> None:
        def op(db: sqlite3.Connection) -> None:
            db.execute("INSERT OR REPLACE INTO health (id, ts) VALUES (1, ?)", (now_ms(),))

        await self._write(op)

    def _find(self, db: sqlite3.Connection, order_id: str, sender_id: str, client_id: str | None) -> Message | None:
        row = db.execute(
            f"SELECT {MSG_COLS} FROM messages WHERE order_id = ? AND sender_id = ? AND client_id = ?",
            (order_id, sender_id, client_id),
        ).fetchone()
        return message_from_row(order_id, row) if row else None

    def _insert(
        self,
        db: sqlite3.Connection,
        order: OrderRecord,
        sender: UserRef,
        kind: str,
        text: str,
        client_id: str | None,
        status: str | None = None,
        attachments: list[AttachmentRef] | None = None,
        present: frozenset[str] = frozenset(),
        forced: bool = False,
        *,
        asks_help: bool = False,
        moved: bool = False,
        own_read: bool = False,
    ) -> Posted | None:
        """Insert with the next seq and its side rows (attachment links, the reply
        clock, the staff queue, notifications, outbox events); None if (order, sender,
        client_id) exists already. `asks_help`: a help request (chatd.attention);
        `moved`: the caller's change added or removed a shared queue reason;
        `own_read`: writing reads the order for the sender, whose change (when they
        had unread messages) is in `unread` too, last, and whose pending notification
        goes (only one with unread messages may have one)."""
        if attachments and (gone := links.missing(db, attachments)) is not None:
            if client_id is not None and self._find(db, order.id, sender.id, client_id) is not None:
                return None  # a retry of a message stored before its upload was deleted
            raise BadRequest(f"unknown attachment {gone}", ref=client_id)
        ts = int(self.clock() * 1000)
        seq = order.last_seq + 1
        att = msgspec.json.encode(attachments).decode() if attachments else None
        had = (
            own_read
            and db.execute(
                "SELECT unread FROM read_markers WHERE user_id = ? AND order_id = ?", (sender.id, order.id)
            ).fetchone()
        )
        cur = db.execute(
            "INSERT INTO messages (order_id, seq, ts, kind, sender_id, sender_name, sender_role, "
            "client_id, text, status, attachments, forced) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT DO NOTHING",
            (order.id, seq, ts, kind, sender.id, sender.name, sender.role, client_id, text, status, att, int(forced)),
        )
        if cur.rowcount == 0:
            return None
        order.last_seq, order.last_ts = seq, ts
        notes_only = "" if kind != "note" else " AND m.sees_notes"
        unread = [
            UnreadChange(user, count, total, bool(side), hidden)
            for user, count, total, side, hidden in db.execute(
                "SELECT m.user_id, m.unread, s.unread_total, m.side, s.side_unread FROM read_markers m "
                "JOIN user_stats s ON s.user_id = m.user_id "
                f"WHERE m.order_id = ?{notes_only}",
                (order.id,),
            )
            if user != sender.id or (had and had[0])
        ]
        unread.sort(key=lambda u: u.user == sender.id)  # the sender's own change last
        if had and had[0] and self.notifications_for is not None:  # a read: their pending notification goes
            notifications.on_read(db, sender.id, order.id, seq)
        if sender.role == "staff" and self.notifications_for is not None:  # moved the shared staff marker
            notifications.on_read(db, STAFF, order.id, seq - 1)  # as a staff read; what this one raises stays
        msg = Message(order.id, seq, ts, kind, sender, text, client_id, attachments or [], status, forced)
        if attachments:
            links.link(db, msg)
        overdue = order.waiting is not None and order.waiting.escalated
        changed = responses.apply(db, order, msg, bool(attachments))
        moved |= overdue and not (order.waiting is not None and order.waiting.escalated)  # an SLA breach answered
        moved |= staff.on_message(db, order, msg, asks_help)
        if self.notifications_for is not None:
            notifications.schedule(db, order.id, seq, ts, self.notifications_for(order, msg, present))
        if self.events_for_message is not None:
            self._outbox_written += outbox.enqueue(db, self.events_for_message(order, msg, present))
        return Posted(
            message=msg,
            duplicate=False,
            unread=unread,
            waiting_changed=changed,
            waiting=order.waiting,
            staff=staff.view(db, order, moved),
        )

    def _duplicate(self, db: sqlite3.Connection, order_id: str, sender_id: str, client_id: str | None) -> Posted:
        found = self._find(db, order_id, sender_id, client_id)
        if found is None:  # the insert hit a seq clash, which BEGIN IMMEDIATE rules out
            raise Internal("seq conflict")
        return Posted(message=found, duplicate=True, unread=[])

    async def post(
        self,
        actor: Actor,
        order_id: str,
        text: str,
        client_id: str | None,
        kind: str = "text",
        attachments: list[AttachmentRef] | None = None,
        present: frozenset[str] = frozenset(),
        rule: PostRule | None = None,
    ) -> Posted:
        """Store a `text`/`note` (or, for the system, `system`) message."""

        def op(db: sqlite3.Connection) -> Posted:
            order = self._load_order(db, order_id)
            role = actor.role_in(order)
            if kind == "note" and not permissions.sees_notes(role):
                raise Forbidden("buyers cannot write notes", ref=client_id)
            if rule is not None:
                try:
                    rule(order, role)
                except ChatError:  # a repeat of a message stored before is answered as before
                    if (dup := self._find(db, order_id, actor.id, client_id)) is not None:
                        return Posted(message=dup, duplicate=True, unread=[])
                    raise
            posted = self._insert(
                db,
                order,
                UserRef(actor.id, actor.name_as(role), role),
                kind,
                text,
                client_id,
                attachments=attachments,
                present=present,
                own_read=role != "bot",
            )
            if posted is None:
                return self._duplicate(db, order_id, actor.id, client_id)
            return posted

        return await self._write(op)

    def _order_change(
        self, db: sqlite3.Connection, actor: Actor, order_id: str, client_id: str
    ) -> tuple[OrderRecord, str, Posted | None]:
        """(order, actor's role, the earlier Posted if this client_id was seen) for
        a status or dispute change: a retry answers before any rule is checked."""
        order = self._load_order(db, order_id)
        role = actor.role_in(order)
        dup = self._find(db, order_id, actor.id, client_id)
        return order, role, Posted(message=dup, duplicate=True, unread=[]) if dup else None

    async def set_status(
        self,
        actor: Actor,
        order_id: str,
        status: str,
        client_id: str,
        text: str | None,
        present: frozenset[str] = frozenset(),
        rule: StatusRule | None = None,
    ) -> Posted:
        """Change the order's status and post a `status` message, atomically."""

        def op(db: sqlite3.Connection) -> Posted:
            order, role, dup = self._order_change(db, actor, order_id, client_id)
            if dup:
                return dup
            if rule is not None:
                order.closes_at = rule(order, role)  # against the status as locked by this write
            elif not permissions.may_set_status(role):
                raise Forbidden(f"role {role} cannot change the status", ref=client_id)
            db.execute("UPDATE orders SET status = ?, closes_at = ? WHERE id = ?", (status, order.closes_at, order_id))
            order.status = status
            posted = self._insert(
                db,
                order,
                UserRef(actor.id, actor.name_as(role), role),
                "status",
                text or f"Status changed to {status}",
                client_id,
                status=status,
                present=present,
                own_read=role != "bot",  # as a post: the sender read the order
            )
            assert posted is not None  # no message of this client_id (_order_change looked, in this transaction)
            posted.order = order
            return posted

        return await self._write(op)

    async def dispute(
        self,
        actor: Actor,
        order_id: str,
        action: str,
        client_id: str,
        reason: str | None,
        present: frozenset[str] = frozenset(),
    ) -> Posted:
        """Open or close the order's dispute and post a `dispute` message, atomically."""

        def op(db: sqlite3.Connection) -> Posted:
            order, role, dup = self._order_change(db, actor, order_id, client_id)
            if dup:
                return dup
            current = order.dispute
            ts = int(self.clock() * 1000)  # the store's clock, as the dispute message's ts
            if action == "open":
                if not permissions.may_open_dispute(role):
                    raise Forbidden(f"role {role} cannot open a dispute", ref=client_id)
                if current and current.open:
                    raise Conflict("a dispute is already open", ref=client_id)
                order.dispute = DisputeState(open=True, reason=reason, by=actor.id, ts=ts, by_name=actor.name_as(role))
                text = f"Dispute opened: {reason}" if reason else "Dispute opened"
                staff.ensure_marker(db, order_id)  # the order enters every staff member's queue
            else:
                if not current or not current.open:
                    raise Conflict("no dispute is open", ref=client_id)
                if not permissions.may_close_dispute(role, actor.id, current.by):
                    raise Forbidden("only staff or whoever opened it can close a dispute", ref=client_id)
                order.dispute = DisputeState(
                    open=False, reason=reason or current.reason, by=actor.id, ts=ts, by_name=actor.name_as(role)
                )
                text = f"Dispute closed: {reason}" if reason else "Dispute closed"
            d = order.dispute
            db.execute(
                "UPDATE orders SET dispute_open = ?, dispute_reason = ?, dispute_by = ?, dispute_ts = ?, "
                "dispute_by_name = ? WHERE id = ?",
                (int(d.open), d.reason, d.by, d.ts, d.by_name, order_id),
            )
            posted = self._insert(
                db,
                order,
                UserRef(actor.id, actor.name_as(role), role),
                "dispute",
                text,
                client_id,
                present=present,
                moved=True,
                own_read=role != "bot",
            )
            assert posted is not None  # no message of this client_id (_order_change looked, in this transaction)
            posted.order = order
            return posted

        return await self._write(op)

    def _page(
        self, order_id: str, sees_notes: bool, above: int, below: int, limit: int, newest: bool
    ) -> tuple[list[Message], bool]:
        """Up to `limit` messages with above < seq < below, ascending, taken from the
        newest end or the oldest; and whether more were left out."""
        notes = "" if sees_notes else " AND kind != 'note'"
        with self._reading():
            rows = self.reader.execute(
                f"SELECT {MSG_COLS} FROM messages WHERE order_id = ? AND seq > ? AND seq < ?{notes} "
                f"ORDER BY seq {'DESC' if newest else 'ASC'} LIMIT ?",
                (order_id, above, below, limit + 1),
            ).fetchall()
        more = len(rows) > limit
        rows = rows[:limit]
        if newest:
            rows.reverse()
        return [message_from_row(order_id, r) for r in rows], more

    async def sent(self, order_id: str, sender_id: str, client_id: str) -> Message | None:
        with self._reading():
            return self._find(self.reader, order_id, sender_id, client_id)

    async def history(
        self, order_id: str, sees_notes: bool, before: int | None, after: int | None, limit: int
    ) -> tuple[list[Message], bool]:
        """The newest `limit` below `before`, or the oldest `limit` above `after`."""
        if after is not None:
            return self._page(order_id, sees_notes, after, _NO_END, limit, newest=False)
        return self._page(order_id, sees_notes, 0, _NO_END if before is None else before, limit, newest=True)

    async def replay(
        self, order_id: str, sees_notes: bool, since: int | None, limit: int
    ) -> tuple[list[Message], bool]:
        """Messages after `since` (all of them up to `limit`, newest kept; the flag
        says some were left out), or without `since` the newest `limit`."""
        msgs, more = self._page(order_id, sees_notes, since or 0, _NO_END, limit, newest=True)
        return msgs, more and since is not None

    async def export(
        self, order_id: str, rule: ExportRule, upto: int, chunk: int = 500
    ) -> AsyncIterator[list[Message]]:
        """Up to seq `upto` in ascending chunks, read off the loop (aiosqlite); before
        each, the order (one row, inline) and `rule` on it: notes or not, or the end."""
        assert self._aux is not None  # set by open()
        after = 0
        while after < upto:
            with self._reading():
                row = self.reader.execute(f"SELECT {ORDER_COLS} FROM orders WHERE id = ?", (order_id,)).fetchone()
            sees_notes = None if row is None else rule(order_from_row(row))
            if sees_notes is None:  # the caller's access ended: nothing more, from now on
                return
            notes = "" if sees_notes else " AND kind != 'note'"
            async with self._aux.execute(
                f"SELECT {MSG_COLS} FROM messages WHERE order_id = ? AND seq > ? AND seq <= ?{notes} "
                "ORDER BY seq LIMIT ?",
                (order_id, after, upto, chunk),
            ) as cur:
                rows = list(await cur.fetchall())
            if not rows:
                return
            yield [message_from_row(order_id, r) for r in rows]
            after = rows[-1][0]
