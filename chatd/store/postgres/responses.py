"""The reply clock (chatd.responses) in PostgreSQL. Mirrors chatd.store.sqlite.responses;
every write takes the order's row lock first, so two hosts never escalate one
waiting period twice."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from chatd.attention import SLA_CLIENT_ID
from chatd.errors import BadRequest, Forbidden
from chatd.responses import effect, may_dismiss
from chatd.store.base import BreachEvents
from chatd.store.postgres import attention as staff
from chatd.store.postgres import outbox
from chatd.store.postgres.batch import Held
from chatd.store.postgres.engine import StoreMixin, pooled_read
from chatd.store.records import OrderRecord, Posted, Waiting
from chatd.store.rows import SYSTEM, Actor
from chatd.wire import Message, UserRef

if TYPE_CHECKING:
    import asyncpg

_SCAN = 1000  # buyer messages looked at for a new start after a no-reply mark


Clock = tuple[str, tuple[Any, ...]]
"""Statements that set an order's reply clock, as CTEs to run in front of another
statement (one round trip for both): their text, and their parameters ($1 is
the order id). They write only if the CTE `go` before them gives a row: the
message's INSERT (chatd.store.postgres.messages), which gives none for a repeat."""


def _turn(order: OrderRecord, msg: Message) -> str | None:
    """ "ask" if `msg` starts the order's reply clock, "answer" if it stops it, else None."""
    what = effect(msg.sender.role, msg.kind, msg.text, bool(msg.attachments))
    if what == "ask" and order.waiting is None:
        return "ask"
    if what == "answer" and order.waiting is not None:
        return "answer"
    return None


def plan(order: OrderRecord, msg: Message) -> Clock | None:
    """Start or stop the order's reply clock for a message just inserted: the
    statements to run, or None if it does not change."""
    turn = _turn(order, msg)
    if turn == "ask":
        return _starting(order, msg.seq, msg.ts)
    if turn == "answer":
        assert order.waiting is not None  # what "answer" means
        return _clock(
            order,
            None,
            "UPDATE responses SET answered_seq = $5, answered_at = $6, answered_by = $7 "
            "WHERE order_id = $1 AND asked_seq = $8 AND EXISTS (SELECT FROM go)",
            msg.seq,
            msg.ts,
            msg.sender.id,
            order.waiting.seq,
        )
    return None


def hold(held: Held, order: OrderRecord, msg: Message) -> bool:
    """As `plan`, for a message its batch holds: the clock's writes are held with it.
    Whether the clock changed."""
    turn = _turn(order, msg)
    if turn == "ask":
        order.waiting = Waiting(msg.seq, msg.ts)
        held.ask(order.id, order.waiting, order.supplier.id, order.sales_rep.id if order.sales_rep else None)
    elif turn == "answer":
        assert order.waiting is not None  # what "answer" means
        held.answer(order.id, order.waiting.seq, msg)
        order.waiting = None
    return turn is not None


def _starting(order: OrderRecord, seq: int, ts: int) -> Clock:
    return _clock(
        order,
        Waiting(seq, ts),
        "INSERT INTO responses (order_id, asked_seq, asked_at, supplier_id, rep_id) "
        "SELECT $1, $2, $3, $5, $6 FROM go ON CONFLICT DO NOTHING",
        order.supplier.id,
        order.sales_rep.id if order.sales_rep else None,
    )


def _clock(order: OrderRecord, waiting: Waiting | None, responses: str, *args: Any) -> Clock:
    """Set `order.waiting`, and the statements that store it: the order's columns
    ($2 to $4) and `responses`, a statement on that table (its own parameters from $5)."""
    order.waiting = w = waiting
    return (
        "c AS (UPDATE orders SET awaiting_seq = $2, awaiting_since = $3, sla_escalated = $4 "
        "WHERE id = $1 AND EXISTS (SELECT FROM go)), "
        f"r AS ({responses})",
        (order.id, w.seq if w else None, w.since if w else None, int(bool(w and w.escalated)), *args),
    )


async def run(db: asyncpg.Connection, clock: Clock, then: str = "SELECT 1") -> list[Any]:
    """The clock's statements on their own (`go` always gives a row), then `then`
    (a statement whose only parameter is $1, the order id)."""
    rows: list[Any] = await db.fetch(f"WITH go AS (SELECT 1), {clock[0]} {then}", *clock[1])
    return rows


class Responses(StoreMixin):
    """Mixed into PostgresStore."""

    async def dismiss_wait(self, actor: Actor, order_id: str, seq: int) -> tuple[bool, Waiting | None]:
        """As chatd.store.sqlite.responses."""

        async def op(db: asyncpg.Connection) -> tuple[bool, Waiting | None]:
            order = await self._load_order(db, order_id, lock=True)
            if not may_dismiss(actor.role_in(order)):
                raise Forbidden("only the supplier side or staff can mark a message as needing no reply", ref=order_id)
            role = await db.fetchval("SELECT sender_role FROM messages WHERE order_id = $1 AND seq = $2", order_id, seq)
            if role != "buyer":
                raise BadRequest("seq must name a buyer's message", ref=order_id)
            w = order.waiting
            if w is None or w.seq > seq:
                return False, w
            await run(db, _clock(order, None, "DELETE FROM responses WHERE order_id = $1 AND asked_seq = $5", w.seq))
            for r in await db.fetch(
                "SELECT seq, ts, kind, text, attachments FROM messages WHERE order_id = $1 AND seq > $2 "
                "AND sender_role = 'buyer' ORDER BY seq LIMIT $3",
                order_id,
                seq,
                _SCAN,
            ):
                if effect("buyer", r[2], r[3], bool(r[4])) == "ask":
                    await run(db, _starting(order, r[0], r[1]))
                    break
            return True, order.waiting

        return await self._write(op, key=order_id)

    @pooled_read
    async def overdue(self, db: asyncpg.Connection, waiting_since_before: int, limit: int) -> list[tuple[str, int]]:
        rows = await db.fetch(
            "SELECT id, awaiting_seq FROM orders WHERE awaiting_since < $1 AND sla_escalated = 0 "
            "ORDER BY awaiting_since LIMIT $2",
            waiting_since_before,
            limit,
        )
        return [(r[0], r[1]) for r in rows]

    async def escalate(
        self,
        order_id: str,
        seq: int,
        now_ms: int,
        text: str,
        events: BreachEvents | None = None,
        present: frozenset[str] = frozenset(),
    ) -> Posted | None:
        """As chatd.store.sqlite.responses."""

        async def op(db: asyncpg.Connection) -> Posted | None:
            order = await self._load_order(db, order_id, lock=True)
            w = order.waiting
            if w is None or w.seq != seq or w.escalated:
                return None
            escalated = Waiting(w.seq, w.since, escalated=True)
            await run(
                db,
                _clock(
                    order,
                    escalated,
                    "UPDATE responses SET escalated_at = $5 WHERE order_id = $1 AND asked_seq = $2",
                    now_ms,
                ),
            )
            await staff.ensure_marker(db, order_id)  # the order enters every staff member's queue
            posted = await self._insert(
                db,
                order,
                UserRef(SYSTEM.id, SYSTEM.name, "bot"),
                "note",
                text,
                f"{SLA_CLIENT_ID}{seq}",
                present=present,
                moved=True,
            )
            if posted is None:
                return None
            if events is not None:
                self._outbox_written += await outbox.enqueue(db, events(order, now_ms))
            posted.waiting_changed, posted.waiting = True, order.waiting
            return posted

        return await self._write(op, key=order_id)

    @pooled_read
    async def response_periods(
        self, db: asyncpg.Connection, since_ms: int, supplier: str | None, sales_rep: str | None
    ) -> list[tuple[int, int | None]]:
        where: list[str] = ["asked_at >= $1"]
        args: list[Any] = [since_ms]
        for col, value in (("supplier_id", supplier), ("rep_id", sales_rep)):
            if value is not None:
                args.append(value)
                where.append(f"{col} = ${len(args)}")
        query = f"SELECT asked_at, answered_at FROM responses WHERE {' AND '.join(where)}"
        rows: list[Any] = await db.fetch(query, *args)
        return [(r[0], r[1]) for r in rows]
