"""The staff attention queue (chatd.attention) in PostgreSQL. Mirrors
chatd.store.sqlite.attention; every write takes the row lock of each order it
moves a marker of (in id order), as a message write does, so a marker's count
and the messages it counts never disagree across hosts."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from chatd import attention
from chatd.auth import permissions
from chatd.errors import Conflict, Forbidden
from chatd.notifications import STAFF
from chatd.store.base import HelpRule
from chatd.store.postgres import notifications
from chatd.store.postgres.engine import StoreMixin, pooled_read
from chatd.store.records import HelpState, OrderRecord, Posted, ReadMarker, StaffView
from chatd.store.rows import Actor
from chatd.wire import Message, UserRef

if TYPE_CHECKING:
    import asyncpg

ACTIVITY = "(CASE WHEN o.last_seq > 0 THEN o.last_ts ELSE o.created_ts END)"
SHARED = "(o.dispute_open = 1 OR o.sla_escalated = 1 OR o.help_ts IS NOT NULL)"
# the ids of one staff member's queue ($1: the staff member; the first part reads orders_attention)
_QUEUE = (
    "(SELECT id FROM orders WHERE dispute_open = 1 OR sla_escalated = 1 OR help_ts IS NOT NULL "
    "UNION SELECT order_id FROM staff_follows WHERE user_id = $1)"
)
NOT_IN_SLOT = "o.buyer_id <> {u} AND o.supplier_id <> {u} AND (o.rep_id IS NULL OR o.rep_id <> {u})"

# A staff read of one order whose row the caller has locked, in one statement: the shared
# marker (where missing, where it would start: `marker`) goes to the target, its unread
# recounted, and the staff's pending notification of the order is read as far. $1 the
# order, $2 its last_seq, $3 "mark unread" (to before the newest message not from staff),
# $4 the seq asked for (NULL: the newest), $5 the staff queue's user id. Returns the
# marker's (before, target, unread) and the order's staff followers.
_STAFF_READ = (
    "WITH b AS (SELECT COALESCE((SELECT read_seq FROM staff_markers WHERE order_id = $1), "
    "(SELECT COALESCE(MAX(seq), 0) FROM messages WHERE order_id = $1 AND sender_role = 'staff')) AS before), "
    "t AS (SELECT before, CASE WHEN $3::boolean THEN (SELECT COALESCE(LEAST(b.before, MAX(seq) - 1), b.before) "
    "FROM messages WHERE order_id = $1 AND sender_role <> 'staff') "
    "ELSE GREATEST(before, LEAST(COALESCE($4::bigint, $2::bigint), $2::bigint)) END AS target FROM b), "
    "c AS (SELECT before, target, (SELECT COUNT(*) FROM messages WHERE order_id = $1 AND seq > t.target "
    "AND sender_role <> 'staff') AS unread FROM t), "
    "up AS (INSERT INTO staff_markers (order_id, read_seq, unread) SELECT $1, target, unread FROM c "
    "ON CONFLICT (order_id) DO UPDATE SET read_seq = excluded.read_seq, unread = excluded.unread "
    "WHERE staff_markers.read_seq <> excluded.read_seq), "
    f"{notifications.on_read_sql('$5::text', '$1', '(SELECT target FROM c WHERE target > before)')} "
    "SELECT before, target, unread, ARRAY(SELECT user_id FROM staff_follows WHERE order_id = $1) FROM c"
)


async def _unread_after(db: asyncpg.Connection, order_id: str, seq: int) -> int:
    n: int = await db.fetchval(
        "SELECT COUNT(*) FROM messages WHERE order_id = $1 AND seq > $2 AND sender_role <> 'staff'", order_id, seq
    )
    return n


async def marker(db: asyncpg.Connection, order_id: str) -> tuple[int, int]:
    """(read_seq, unread) of the shared staff marker; without one, where it would
    start: at the newest message staff sent (sending reads the order)."""
    row = await db.fetchrow("SELECT read_seq, unread FROM staff_markers WHERE order_id = $1", order_id)
    if row is not None:
        return row[0], row[1]
    seq: int = await db.fetchval(
        "SELECT COALESCE(MAX(seq), 0) FROM messages WHERE order_id = $1 AND sender_role = 'staff'", order_id
    )
    return seq, await _unread_after(db, order_id, seq)


async def ensure_marker(db: asyncpg.Connection, order_id: str) -> tuple[int, int]:
    """The shared staff marker, made if the order has none yet (its row is locked
    by the caller): (read_seq, unread)."""
    row = await db.fetchrow("SELECT read_seq, unread FROM staff_markers WHERE order_id = $1", order_id)
    if row is not None:
        return row[0], row[1]
    read_seq, unread = await marker(db, order_id)
    await db.execute(
        "INSERT INTO staff_markers (order_id, read_seq, unread) VALUES ($1, $2, $3)", order_id, read_seq, unread
    )
    return read_seq, unread


async def view(
    db: asyncpg.Connection,
    order: OrderRecord,
    moved: bool = False,
    always: bool = False,
    known: tuple[list[int] | None] | None = None,
    followers: list[str] | None = None,
) -> StaffView | None:
    """As chatd.store.sqlite.attention.view. `known`: the staff marker as the caller
    read it in this transaction, `([read_seq, unread],)` or `(None,)` for none;
    `followers`: the order's staff followers, likewise."""
    if known is None:
        row = await db.fetchrow("SELECT read_seq, unread FROM staff_markers WHERE order_id = $1", order.id)
    else:
        row = known[0]
    if row is None and not always:
        return None  # every order in a queue has a marker
    read_seq, unread = (row[0], row[1]) if row is not None else await marker(db, order.id)
    if followers is None:
        followers = [r[0] for r in await db.fetch("SELECT user_id FROM staff_follows WHERE order_id = $1", order.id)]
    reasons = attention.shared_reasons(order)
    if not (reasons or followers or moved or always):
        return None
    return StaffView(order.id, read_seq, unread, reasons, followers, [s for s in order.slots if s], moved)


async def set_help(db: asyncpg.Connection, order: OrderRecord, state: HelpState | None) -> None:
    await db.execute(
        "UPDATE orders SET help_by = $1, help_ts = $2, help_seq = $3 WHERE id = $4",
        state.by if state else None,
        state.ts if state else None,
        state.seq if state else None,
        order.id,
    )
    order.help = state


async def on_message(db: asyncpg.Connection, order: OrderRecord, msg: Message, asks: bool) -> bool:
    """As chatd.store.sqlite.attention.on_message."""
    if asks:
        opened = order.help is None
        await set_help(db, order, HelpState(msg.sender.id, msg.ts, msg.seq))
        return opened
    if order.help is not None and attention.answers_help(msg):
        await set_help(db, order, None)
        return True
    return False


async def move(db: asyncpg.Connection, order_id: str, target: int) -> tuple[int, int]:
    """Set the shared marker (made if missing) to `target`: (before, unread now)."""
    before, _ = await ensure_marker(db, order_id)
    unread = await _unread_after(db, order_id, target)
    await db.execute(
        "UPDATE staff_markers SET read_seq = $1, unread = $2 WHERE order_id = $3", target, unread, order_id
    )
    if target > before:
        await notifications.on_read(db, STAFF, order_id, target)
    return before, unread


async def read(db: asyncpg.Connection, order: OrderRecord, seq: int, backward: bool) -> ReadMarker | None:
    """A staff member's `read`: the shared marker moves (forward only unless `backward`)."""
    before, _ = await ensure_marker(db, order.id)
    target = max(0, min(seq, order.last_seq))
    if target == before or (target < before and not backward):
        return None
    _, unread = await move(db, order.id, target)
    staff = await view(db, order)
    return ReadMarker(read_seq=target, unread=unread, total=0, role=permissions.QUEUE_ROLE, staff=staff)


async def queue_total(db: asyncpg.Connection, user_id: str) -> int:
    """The unread of one staff member's queue: the bell's part for it."""
    total: int = await db.fetchval(
        f"SELECT COALESCE(SUM(s.unread), 0)::bigint FROM {_QUEUE} q JOIN staff_markers s ON s.order_id = q.id "
        f"JOIN orders o ON o.id = q.id WHERE s.unread > 0 AND {NOT_IN_SLOT.format(u='$1')}",
        user_id,
    )
    return total


async def queue_rows(
    db: asyncpg.Connection, user_id: str, after: tuple[int, str] | None, n: int, only: list[str] | None = None
) -> list[tuple[Any, ...]]:
    """As chatd.store.sqlite.attention.queue_rows (`only` a list here)."""
    args: list[Any] = [user_id]
    below = ""
    if after is not None:
        args += [after[0], after[1]]
        below = f" AND ({ACTIVITY} < $2 OR ({ACTIVITY} = $2 AND o.id < $3))"
    if only is not None:
        args.append(only)
        below += f" AND o.id = ANY(${len(args)}::text[])"
    args.append(n)
    rows = await db.fetch(
        f"SELECT o.id, o.status, COALESCE(s.unread, 0)::bigint, o.dispute_open, o.last_seq, {ACTIVITY}, "
        "o.sla_escalated, o.help_ts IS NOT NULL, f.user_id IS NOT NULL "
        f"FROM {_QUEUE} q JOIN orders o ON o.id = q.id LEFT JOIN staff_markers s ON s.order_id = o.id "
        "LEFT JOIN staff_follows f ON f.order_id = o.id AND f.user_id = $1 "
        f"WHERE {NOT_IN_SLOT.format(u='$1')}{below} ORDER BY {ACTIVITY} DESC, o.id DESC LIMIT ${len(args)}",
        *args,
    )
    return [(*tuple(r)[:6], reasons(r[3], r[6], r[7], r[8])) for r in rows]


def reasons(dispute_open: Any, sla: Any, help_open: Any, followed: Any) -> list[str]:
    flags = (dispute_open, sla, help_open, followed)
    return [name for name, on in zip(attention.REASONS, flags, strict=True) if on]


class Attention(StoreMixin):
    """Mixed into PostgresStore."""

    @pooled_read
    async def staff_marker(self, db: asyncpg.Connection, order_id: str) -> tuple[int, int]:
        return await marker(db, order_id)

    @pooled_read
    async def following(self, db: asyncpg.Connection, user_id: str, order_id: str) -> bool:
        found = await db.fetchval("SELECT 1 FROM staff_follows WHERE user_id = $1 AND order_id = $2", user_id, order_id)
        return found is not None

    async def request_help(
        self, actor: Actor, order_id: str, client_id: str, present: frozenset[str], rule: HelpRule
    ) -> Posted:
        """As chatd.store.sqlite.attention."""

        async def op(db: asyncpg.Connection) -> Posted:
            order = await self._load_order(db, order_id, lock=True)
            role = actor.role_in(order)
            if (dup := await self._find(db, order_id, actor.id, client_id)) is not None:
                return Posted(message=dup, duplicate=True, unread=[])
            kind, text = rule(order, role)
            await ensure_marker(db, order_id)
            # asking reads the order for the asker, as a post: their change, their pending notification
            posted = await self._insert(
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
                return await self._duplicate(db, order_id, actor.id, client_id)
            return posted

        return await self._write(op, key=order_id)

    async def resolve_help(self, actor: Actor, order_id: str) -> StaffView:
        async def op(db: asyncpg.Connection) -> StaffView:
            order = await self._load_order(db, order_id, lock=True)
            if actor.role_in(order) != permissions.QUEUE_ROLE:
                raise Forbidden("only staff resolve help requests", ref=order_id)
            if order.help is None:
                raise Conflict("no help request is open", ref=order_id)
            await set_help(db, order, None)
            out = await view(db, order, moved=True, always=True)
            assert out is not None  # always
            return out

        return await self._write(op, key=order_id)

    async def follow(self, actor: Actor, order_id: str, on: bool) -> tuple[bool, StaffView]:
        async def op(db: asyncpg.Connection) -> tuple[bool, StaffView]:
            order = await self._load_order(db, order_id, lock=True)
            if actor.role_in(order) != permissions.QUEUE_ROLE:
                raise Forbidden("only staff follow orders", ref=order_id)
            if on:
                await ensure_marker(db, order_id)
                done = await db.fetchval(
                    "INSERT INTO staff_follows (user_id, order_id) VALUES ($1, $2) ON CONFLICT DO NOTHING RETURNING 1",
                    actor.id,
                    order_id,
                )
            else:
                done = await db.fetchval(
                    "DELETE FROM staff_follows WHERE user_id = $1 AND order_id = $2 RETURNING 1", actor.id, order_id
                )
            out = await view(db, order, always=True)
            assert out is not None  # always
            return done is not None, out

        return await self._write(op, key=order_id)

    async def mark_staff_read(
        self, order_ids: list[str], seq: int | None, unread: bool, viewer: str | None
    ) -> list[tuple[StaffView, bool]]:
        """As chatd.store.sqlite.attention.mark_staff_read."""

        async def op(db: asyncpg.Connection) -> list[tuple[StaffView, bool]]:
            locked = {o: await self._load_order(db, o, lock=True) for o in sorted(order_ids)}  # in one order
            orders = [locked[o] for o in order_ids]
            for order in orders:
                if viewer is not None and viewer in order.slots:
                    raise Forbidden(f"you are a participant of {order.id}: read it there", ref=order.id)
            out = []
            for order in orders:
                before, target, left, followers = await db.fetchrow(
                    _STAFF_READ, order.id, order.last_seq, unread, seq, STAFF
                )
                place = await view(db, order, always=True, known=([target, left],), followers=list(followers))
                assert place is not None  # always
                out.append((place, target != before))
            return out

        return await self._write(op, key=order_ids[0] if len(order_ids) == 1 else "")
