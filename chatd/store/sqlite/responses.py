"""The reply clock (chatd.responses) in SQLite: started and stopped inside the
write of each message (`apply`), dismissed by a no-reply mark, escalated once
per waiting period, and read back for the response-times report."""

from __future__ import annotations

import sqlite3
from typing import Any

from chatd.attention import SLA_CLIENT_ID
from chatd.errors import BadRequest, Forbidden
from chatd.responses import effect, may_dismiss
from chatd.store.base import BreachEvents
from chatd.store.records import OrderRecord, Posted, Waiting
from chatd.store.rows import SYSTEM, Actor
from chatd.store.sqlite import attention as staff
from chatd.store.sqlite import outbox
from chatd.store.sqlite.engine import StoreMixin, inline_read
from chatd.wire import Message, UserRef

_SCAN = 1000  # buyer messages looked at for a new start after a no-reply mark


def apply(db: sqlite3.Connection, order: OrderRecord, msg: Message, has_attachments: bool) -> bool:
    """Start or stop the order's reply clock for a message just inserted; whether it changed."""
    what = effect(msg.sender.role, msg.kind, msg.text, has_attachments)
    if what == "ask" and order.waiting is None:
        _start(db, order, msg.seq, msg.ts)
        return True
    if what == "answer" and order.waiting is not None:
        db.execute(
            "UPDATE responses SET answered_seq = ?, answered_at = ?, answered_by = ? "
            "WHERE order_id = ? AND asked_seq = ?",
            (msg.seq, msg.ts, msg.sender.id, order.id, order.waiting.seq),
        )
        _set(db, order, None)
        return True
    return False


def _start(db: sqlite3.Connection, order: OrderRecord, seq: int, ts: int) -> None:
    rep = order.sales_rep.id if order.sales_rep else None
    db.execute(
        "INSERT INTO responses (order_id, asked_seq, asked_at, supplier_id, rep_id) VALUES (?, ?, ?, ?, ?) "
        "ON CONFLICT DO NOTHING",
        (order.id, seq, ts, order.supplier.id, rep),
    )
    _set(db, order, Waiting(seq, ts))


def _set(db: sqlite3.Connection, order: OrderRecord, waiting: Waiting | None) -> None:
    w = waiting
    db.execute(
        "UPDATE orders SET awaiting_seq = ?, awaiting_since = ?, sla_escalated = ? WHERE id = ?",
        (w.seq if w else None, w.since if w else None, int(bool(w and w.escalated)), order.id),
    )
    order.waiting = waiting


class Responses(StoreMixin):
    """Mixed into SqliteStore."""

    async def dismiss_wait(self, actor: Actor, order_id: str, seq: int) -> tuple[bool, Waiting | None]:
        """The buyer's message `seq` needs no reply: a waiting period that started at
        or before it ends unanswered (and leaves the report); a later buyer message
        that asks starts the next one. (changed, the order's waiting now)."""

        def op(db: sqlite3.Connection) -> tuple[bool, Waiting | None]:
            order = self._load_order(db, order_id)
            if not may_dismiss(actor.role_in(order)):
                raise Forbidden("only the supplier side or staff can mark a message as needing no reply", ref=order_id)
            row = db.execute(
                "SELECT sender_role FROM messages WHERE order_id = ? AND seq = ?", (order_id, seq)
            ).fetchone()
            if row is None or row[0] != "buyer":
                raise BadRequest("seq must name a buyer's message", ref=order_id)
            w = order.waiting
            if w is None or w.seq > seq:
                return False, w
            db.execute("DELETE FROM responses WHERE order_id = ? AND asked_seq = ?", (order_id, w.seq))
            _set(db, order, None)
            for later, ts, kind, text, att in db.execute(
                "SELECT seq, ts, kind, text, attachments FROM messages WHERE order_id = ? AND seq > ? "
                "AND sender_role = 'buyer' ORDER BY seq LIMIT ?",
                (order_id, seq, _SCAN),
            ).fetchall():
                if effect("buyer", kind, text, bool(att)) == "ask":
                    _start(db, order, later, ts)
                    break
            return True, order.waiting

        return await self._write(op)

    @inline_read
    async def overdue(self, waiting_since_before: int, limit: int) -> list[tuple[str, int]]:
        """(order id, seq its buyer waits since) of orders not escalated yet whose
        buyer has waited since before the cutoff, longest first."""
        return [
            (r[0], r[1])
            for r in self.reader.execute(
                "SELECT id, awaiting_seq FROM orders WHERE awaiting_since < ? AND sla_escalated = 0 "
                "ORDER BY awaiting_since LIMIT ?",
                (waiting_since_before, limit),
            )
        ]

    async def escalate(
        self,
        order_id: str,
        seq: int,
        now_ms: int,
        text: str,
        events: BreachEvents | None = None,
        present: frozenset[str] = frozenset(),
    ) -> Posted | None:
        """Escalate the waiting period that started at `seq`, once: flag it, post
        `text` as a system note, write `events` to the outbox, atomically. None if it
        was answered, dismissed or escalated meanwhile (by another instance too)."""

        def op(db: sqlite3.Connection) -> Posted | None:
            order = self._load_order(db, order_id)
            w = order.waiting
            if w is None or w.seq != seq or w.escalated:
                return None
            _set(db, order, Waiting(w.seq, w.since, escalated=True))
            db.execute(
                "UPDATE responses SET escalated_at = ? WHERE order_id = ? AND asked_seq = ?", (now_ms, order_id, seq)
            )
            staff.ensure_marker(db, order_id)  # the order enters every staff member's queue
            posted = self._insert(
                db,
                order,
                UserRef(SYSTEM.id, SYSTEM.name, "bot"),
                "note",
                text,
                f"{SLA_CLIENT_ID}{seq}",
                present=present,
                moved=True,
            )
            if posted is None:  # this period's note exists: escalated before
                return None
            if events is not None:
                self._outbox_written += outbox.enqueue(db, events(order, now_ms))
            posted.waiting_changed, posted.waiting = True, order.waiting
            return posted

        return await self._write(op)

    @inline_read
    async def response_periods(
        self, since_ms: int, supplier: str | None, sales_rep: str | None
    ) -> list[tuple[int, int | None]]:
        """(asked at, answered at or None) of the waiting periods started since then,
        on orders of that supplier and/or sales rep (as they were when each started)."""
        where: list[str] = ["asked_at >= ?"]
        args: list[Any] = [since_ms]
        for col, value in (("supplier_id", supplier), ("rep_id", sales_rep)):
            if value is not None:
                where.append(f"{col} = ?")
                args.append(value)
        query = f"SELECT asked_at, answered_at FROM responses WHERE {' AND '.join(where)}"
        rows: list[Any] = self.reader.execute(query, args).fetchall()
        return [(r[0], r[1]) for r in rows]
