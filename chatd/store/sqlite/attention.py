"""The staff attention queue (chatd.attention) in SQLite: the shared staff marker,
help requests, follows, and the queue as a staff member's inbox and bell total.

Every order in some staff member's queue has a shared marker (made when it
enters one: `ensure_marker`), so a queue page or total never counts messages;
the trigger of migration 12 keeps each marker exact as messages are written.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from chatd import attention
from chatd.auth import permissions
from chatd.errors import Conflict, Forbidden
from chatd.notifications import STAFF
from chatd.store.base import HelpRule
from chatd.store.records import HelpState, OrderRecord, Posted, ReadMarker, StaffView
from chatd.store.rows import Actor
from chatd.store.sqlite import notifications
from chatd.store.sqlite.engine import StoreMixin, inline_read
from chatd.wire import Message, UserRef

ACTIVITY = "(CASE WHEN o.last_seq > 0 THEN o.last_ts ELSE o.created_ts END)"
SHARED = "(o.dispute_open = 1 OR o.sla_escalated = 1 OR o.help_ts IS NOT NULL)"
# the ids of one staff member's queue (the first part reads the partial index orders_attention)
_QUEUE = (
    "(SELECT id FROM orders WHERE dispute_open = 1 OR sla_escalated = 1 OR help_ts IS NOT NULL "
    "UNION SELECT order_id FROM staff_follows WHERE user_id = ?)"
)
NOT_IN_SLOT = "o.buyer_id != ? AND o.supplier_id != ? AND (o.rep_id IS NULL OR o.rep_id != ?)"


def _unread_after(db: sqlite3.Connection, order_id: str, seq: int) -> int:
    n: int = db.execute(
        "SELECT COUNT(*) FROM messages WHERE order_id = ? AND seq > ? AND sender_role != 'staff'", (order_id, seq)
    ).fetchone()[0]
    return n


def marker(db: sqlite3.Connection, order_id: str) -> tuple[int, int]:
    """(read_seq, unread) of the shared staff marker; without one, where it would
    start: at the newest message staff sent (sending reads the order)."""
    row = db.execute("SELECT read_seq, unread FROM staff_markers WHERE order_id = ?", (order_id,)).fetchone()
    if row is not None:
        return row[0], row[1]
    seq: int = db.execute(
        "SELECT COALESCE(MAX(seq), 0) FROM messages WHERE order_id = ? AND sender_role = 'staff'", (order_id,)
    ).fetchone()[0]
    return seq, _unread_after(db, order_id, seq)


def ensure_marker(db: sqlite3.Connection, order_id: str) -> tuple[int, int]:
    """The shared staff marker, made if the order has none yet: (read_seq, unread)."""
    row = db.execute("SELECT read_seq, unread FROM staff_markers WHERE order_id = ?", (order_id,)).fetchone()
    if row is not None:
        return row[0], row[1]
    read_seq, unread = marker(db, order_id)
    db.execute("INSERT INTO staff_markers (order_id, read_seq, unread) VALUES (?, ?, ?)", (order_id, read_seq, unread))
    return read_seq, unread


def view(db: sqlite3.Connection, order: OrderRecord, moved: bool = False, always: bool = False) -> StaffView | None:
    """The order's place in the staff queues after a write; None when it is in none
    and did not just leave one (nothing for staff to hear), unless `always`."""
    row = db.execute("SELECT read_seq, unread FROM staff_markers WHERE order_id = ?", (order.id,)).fetchone()
    if row is None and not always:
        return None  # every order in a queue has a marker
    read_seq, unread = row if row is not None else marker(db, order.id)
    followers = [r[0] for r in db.execute("SELECT user_id FROM staff_follows WHERE order_id = ?", (order.id,))]
    reasons = attention.shared_reasons(order)
    if not (reasons or followers or moved or always):
        return None
    return StaffView(order.id, read_seq, unread, reasons, followers, [s for s in order.slots if s], moved)


def set_help(db: sqlite3.Connection, order: OrderRecord, state: HelpState | None) -> None:
    db.execute(
        "UPDATE orders SET help_by = ?, help_ts = ?, help_seq = ? WHERE id = ?",
        (state.by if state else None, state.ts if state else None, state.seq if state else None, order.id),
    )
    order.help = state


def on_message(db: sqlite3.Connection, order: OrderRecord, msg: Message, asks: bool) -> bool:
    """The staff side of a message just inserted: a help request opens (or renews) the
    order's; a staff member's chat message answers it. Whether a shared reason came or went."""
    if asks:
        opened = order.help is None
        set_help(db, order, HelpState(msg.sender.id, msg.ts, msg.seq))
        return opened
    if order.help is not None and attention.answers_help(msg):
        set_help(db, order, None)
        return True
    return False


def move(db: sqlite3.Connection, order_id: str, target: int) -> tuple[int, int]:
    """Set the shared marker (made if missing) to `target`: (before, unread now). Staff
    notifications (chatd.notifications) lose what was read."""
    before, _ = ensure_marker(db, order_id)
    unread = _unread_after(db, order_id, target)
    db.execute("UPDATE staff_markers SET read_seq = ?, unread = ? WHERE order_id = ?", (target, unread, order_id))
    if target > before:
        notifications.on_read(db, STAFF, order_id, target)
    return before, unread


def read(db: sqlite3.Connection, order: OrderRecord, seq: int, backward: bool) -> ReadMarker | None:
    """A staff member's `read`: the shared marker moves (forward only unless `backward`)."""
    before, _ = ensure_marker(db, order.id)
    target = max(0, min(seq, order.last_seq))
    if target == before or (target < before and not backward):
        return None
    _, unread = move(db, order.id, target)
    staff = view(db, order)
    return ReadMarker(read_seq=target, unread=unread, total=0, role=permissions.QUEUE_ROLE, staff=staff)


def queue_total(db: sqlite3.Connection, user_id: str) -> int:
    """The unread of one staff member's queue: the bell's part for it."""
    total: int = db.execute(
        f"SELECT COALESCE(SUM(s.unread), 0) FROM {_QUEUE} q JOIN staff_markers s ON s.order_id = q.id "
        f"JOIN orders o ON o.id = q.id WHERE s.unread > 0 AND {NOT_IN_SLOT}",
        (user_id, user_id, user_id, user_id),
    ).fetchone()[0]
    return total


def queue_rows(
    db: sqlite3.Connection, user_id: str, after: tuple[int, str] | None, n: int, only: str | None = None
) -> list[tuple[Any, ...]]:
    """One staff member's queue, newest activity first, below `after` (activity, id),
    of the orders in `only` (a JSON list) if given:
    (order id, status, unread, dispute open, last seq, activity, reasons)."""
    args: list[Any] = [user_id, user_id, user_id, user_id, user_id]
    below = ""
    if after is not None:
        below = f" AND ({ACTIVITY} < ? OR ({ACTIVITY} = ? AND o.id < ?))"
        args += [after[0], after[0], after[1]]
    if only is not None:
        below += " AND o.id IN (SELECT value FROM json_each(?))"
        args.append(only)
    rows = db.execute(
        f"SELECT o.id, o.status, COALESCE(s.unread, 0), o.dispute_open, o.last_seq, {ACTIVITY}, "
        "o.sla_escalated, o.help_ts IS NOT NULL, f.user_id IS NOT NULL "
        f"FROM {_QUEUE} q JOIN orders o ON o.id = q.id LEFT JOIN staff_markers s ON s.order_id = o.id "
        "LEFT JOIN staff_follows f ON f.order_id = o.id AND f.user_id = ? "
        f"WHERE {NOT_IN_SLOT}{below} ORDER BY {ACTIVITY} DESC, o.id DESC LIMIT ?",
        (*args, n),
    ).fetchall()
    return [(*r[:6], reasons(r[3], r[6], r[7], r[8])) for r in rows]


def reasons(dispute_open: Any, sla: Any, help_open: Any, followed: Any) -> list[str]:
    flags = (dispute_open, sla, help_open, followed)
    return [name for name, on in zip(attention.REASONS, flags, strict=True) if on]


class Attention(StoreMixin):
    """Mixed into SqliteStore."""

    @inline_read
    async def staff_marker(self, order_id: str) -> tuple[int, int]:
        """(read_seq, unread) of the order's shared staff marker (or where it would start)."""
        return marker(self.reader, order_id)

    @inline_read
    async def following(self, user_id: str, order_id: str) -> bool:
        row = self.reader.execute(
            "SELECT 1 FROM staff_follows WHERE user_id = ? AND order_id = ?", (user_id, order_id)
        ).fetchone()
        return row is not None

    async def request_help(
        self,
        actor: Actor,
        order_id: str,
        client_id: str,
        present: frozenset[str],
        rule: HelpRule,
    ) -> Posted:
        """Post a participant's help request and open (or renew) the order's, atomically.
        `rule` gives the message's kind and text for the sender's role, or refuses."""

        def op(db: sqlite3.Connection) -> Posted:
            order = self._load_order(db, order_id)
            role = actor.role_in(order)
            if (dup := self._find(db, order_id, actor.id, client_id)) is not None:
                return Posted(message=dup, duplicate=True, unread=[])
            kind, text = rule(order, role)
            ensure_marker(db, order_id)
            # asking reads the order for the asker, as a post: their change, their pending notification
            posted = self._insert(
                db,
                order,
                UserRef(actor.id, actor.name_as(role), role),
                kind,
                text,
                client_id,
                present=present,
                asks_help=True,
                own_read=True,
            )
            if posted is None:
                return self._duplicate(db, order_id, actor.id, client_id)
            return posted

        return await self._write(op)

    async def resolve_help(self, actor: Actor, order_id: str) -> StaffView:
        """Staff close the order's help request without a message (`conflict`: none is open)."""

        def op(db: sqlite3.Connection) -> StaffView:
            order = self._load_order(db, order_id)
            if actor.role_in(order) != permissions.QUEUE_ROLE:
                raise Forbidden("only staff resolve help requests", ref=order_id)
            if order.help is None:
                raise Conflict("no help request is open", ref=order_id)
            set_help(db, order, None)
            out = view(db, order, moved=True, always=True)
            assert out is not None  # always
            return out

        return await self._write(op)

    async def follow(self, actor: Actor, order_id: str, on: bool) -> tuple[bool, StaffView]:
        """A staff member follows (or stops following) the order: (changed, its place now)."""

        def op(db: sqlite3.Connection) -> tuple[bool, StaffView]:
            order = self._load_order(db, order_id)
            if actor.role_in(order) != permissions.QUEUE_ROLE:
                raise Forbidden("only staff follow orders", ref=order_id)
            if on:
                ensure_marker(db, order_id)
                cur = db.execute(
                    "INSERT INTO staff_follows (user_id, order_id) VALUES (?, ?) ON CONFLICT DO NOTHING",
                    (actor.id, order_id),
                )
            else:
                cur = db.execute("DELETE FROM staff_follows WHERE user_id = ? AND order_id = ?", (actor.id, order_id))
            out = view(db, order, always=True)
            assert out is not None  # always
            return cur.rowcount > 0, out

        return await self._write(op)

    async def mark_staff_read(
        self, order_ids: list[str], seq: int | None, unread: bool, viewer: str | None
    ) -> list[tuple[StaffView, bool]]:
        """Many orders' shared staff marker at once, atomically: forward to `seq` (None:
        the newest message), or with `unread` back to just before the newest message
        not sent as staff. `viewer`: a staff token's id, which may not hold a slot on any
        of them (`forbidden`); a missing order is `not_found`. ((place now, moved), ...)"""

        def op(db: sqlite3.Connection) -> list[tuple[StaffView, bool]]:
            orders = [self._load_order(db, o) for o in order_ids]
            for order in orders:
                if viewer is not None and viewer in order.slots:
                    raise Forbidden(f"you are a participant of {order.id}: read it there", ref=order.id)
            out = []
            for order in orders:
                before, _ = ensure_marker(db, order.id)
                if unread:
                    newest = db.execute(
                        "SELECT COALESCE(MAX(seq), 0) FROM messages WHERE order_id = ? AND sender_role != 'staff'",
                        (order.id,),
                    ).fetchone()[0]
                    target = min(before, newest - 1) if newest else before
                else:
                    target = max(before, min(order.last_seq if seq is None else seq, order.last_seq))
                if target != before:
                    move(db, order.id, target)
                place = view(db, order, always=True)
                assert place is not None  # always
                out.append((place, target != before))
            return out

        return await self._write(op)
