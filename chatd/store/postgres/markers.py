"""Read markers and unread counts: a user's place in an order, totals, the inbox.

Triggers (migration 1) keep every marker's `unread` and each user's total in
step with every write, as in SQLite. Mirrors chatd.store.sqlite.markers.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from chatd.auth import permissions
from chatd.auth.tokens import Identity
from chatd.errors import BadRequest, NotFound
from chatd.store.base import InboxRow
from chatd.store.postgres import attention as staff
from chatd.store.postgres import batch, messages, notifications
from chatd.store.postgres.engine import StoreMixin, keep_locked, pooled_read
from chatd.store.records import OrderRecord, ReadMarker, UnreadChange
from chatd.store.rows import Actor

if TYPE_CHECKING:
    import asyncpg


# A reader's marker moved to $3 (clamped to the newest message they may see at or below it,
# so a buyer's never holds a note's seq; back only
# if $4) in one statement: its unread count, the pending notification it thins, and
# what the move reports. The statement's snapshot is from before the update, so the
# reader's total and hidden sum add what the marker trigger (migrations 1 and 10) adds;
# when it moves, they are read from the reader's row locked (another writer's change
# waits for this commit; one under way is read as it committed). No row: there is no
# marker; a row with no target: nothing moved.
_MOVE = (
    "WITH mk AS (SELECT read_seq, unread, sees_notes, side, CASE WHEN sees_notes <> 0 OR $3::bigint >= last_seq "
    "THEN GREATEST(0, LEAST($3::bigint, last_seq)) ELSE (SELECT COALESCE(MAX(m.seq), 0) FROM messages m "
    "WHERE m.order_id = $2 AND m.seq <= $3::bigint AND m.kind <> 'note') END AS target "
    "FROM read_markers WHERE user_id = $1 AND order_id = $2), "
    "mv AS (SELECT target, unread AS before, (SELECT COUNT(*) FROM messages m WHERE m.order_id = $2 "
    "AND m.seq > mk.target AND m.sender_id <> $1 AND (mk.sees_notes <> 0 OR m.kind <> 'note')) AS after "
    "FROM mk WHERE target > read_seq OR (target < read_seq AND $4::boolean)), "
    "up AS (UPDATE read_markers SET read_seq = mv.target, unread = mv.after FROM mv "
    "WHERE user_id = $1 AND order_id = $2), "
    f"{notifications.on_read_sql('$1', '$2', '(SELECT target FROM mv)')} "
    "SELECT mk.read_seq, mv.target, mv.after, "
    "COALESCE(t.unread_total, 0) + mv.after - mv.before, mk.side, "
    "COALESCE(t.side_unread, 0) + CASE WHEN mk.side = 1 THEN mv.after - mv.before ELSE 0 END, "
    "(SELECT COALESCE(MAX(seq), 0) FROM messages WHERE order_id = $2 AND seq <= mv.target AND kind <> 'note'), "
    "(SELECT COALESCE(MAX(seq), 0) FROM messages WHERE order_id = $2 AND seq <= mk.read_seq AND kind <> 'note') "
    "FROM mk LEFT JOIN mv ON true LEFT JOIN LATERAL (SELECT unread_total, side_unread FROM user_stats "
    "WHERE user_id = $1 AND mv.target IS NOT NULL FOR NO KEY UPDATE) t ON true"
)


class Markers(StoreMixin):
    """Mixed into PostgresStore."""

    @pooled_read
    async def marker(
        self, db: asyncpg.Connection, order_id: str, user_id: str, sees_notes: bool, last_seq: int
    ) -> tuple[int, int, int]:
        """(read_seq, unread, last visible seq) for a user on an order."""
        row = await db.fetchrow(
            "SELECT read_seq, unread, last_seq FROM read_markers WHERE user_id = $1 AND order_id = $2",
            user_id,
            order_id,
        )
        if row:  # a reader who does not see notes: never above the newest message they may see
            return (row[0], row[1], last_seq) if sees_notes else (min(row[0], row[2]), row[1], row[2])
        notes = "" if sees_notes else " AND kind <> 'note'"
        count, last = await db.fetchrow(
            f"SELECT COUNT(*), COALESCE(MAX(seq), 0) FROM messages WHERE order_id = $1 AND sender_id <> $2{notes}",
            order_id,
            user_id,
        )
        return 0, count, last if not sees_notes else last_seq

    @pooled_read
    async def receipts(
        self, db: asyncpg.Connection, order_id: str, user_id: str, sees_notes: bool
    ) -> list[tuple[str, int]]:
        seq = (
            "r.read_seq"
            if sees_notes
            else "(SELECT COALESCE(MAX(m.seq), 0) FROM messages m"
            " WHERE m.order_id = r.order_id AND m.seq <= r.read_seq AND m.kind <> 'note')"
        )
        rows = await db.fetch(
            f"SELECT r.user_id, {seq} FROM read_markers r"
            " WHERE r.order_id = $1 AND r.side = 0 AND r.user_id <> $2 AND r.read_seq > 0 ORDER BY r.user_id",
            order_id,
            user_id,
        )
        return [(r[0], r[1]) for r in rows if r[1] > 0]

    @pooled_read
    async def readers(self, db: asyncpg.Connection, order_id: str) -> list[tuple[UnreadChange, bool]]:
        rows = await db.fetch(
            "SELECT m.user_id, m.unread, COALESCE(s.unread_total, 0), m.side, COALESCE(s.side_unread, 0), "
            "m.sees_notes FROM read_markers m LEFT JOIN user_stats s ON s.user_id = m.user_id "
            "WHERE m.order_id = $1 ORDER BY m.user_id",
            order_id,
        )
        return [(UnreadChange(r[0], r[1], r[2], bool(r[3]), r[4]), bool(r[5])) for r in rows]

    @pooled_read
    async def total_unread(self, db: asyncpg.Connection, user_id: str) -> int:
        return await self._total(db, user_id)

    @pooled_read
    async def visible_total(self, db: asyncpg.Connection, ident: Identity) -> int:
        return await self._visible_total(db, ident)

    async def _visible_total(self, db: asyncpg.Connection, ident: Identity) -> int:
        """The user's unread total over the orders this identity may see: side
        markers count only if the token covers their order."""
        total = await self._total(db, ident.id)
        if ident.role == permissions.QUEUE_ROLE:  # the shared staff state, not the id's own staff markers
            return total - await self._hidden(db, ident.id) + await staff.queue_total(db, ident.id)
        if permissions.covers_every_order(ident.role, ident.orders):
            return total
        rows = await db.fetch(
            "SELECT order_id, unread FROM read_markers WHERE user_id = $1 AND side = 1 AND unread <> 0",
            ident.id,
        )
        hidden: int = sum(n for order_id, n in rows if not permissions.covers(ident.role, ident.orders, order_id))
        return total - hidden

    @pooled_read
    async def inbox(
        self, db: asyncpg.Connection, ident: Identity, limit: int, cursor: str | None, only: Sequence[str] | None = None
    ) -> tuple[list[InboxRow], int, str | None]:
        """The identity's orders, newest activity first: (entries, total, next_cursor);
        as chatd.store.sqlite.markers."""
        args: list[Any] = [ident.id]
        where = ""
        queue = ident.role == permissions.QUEUE_ROLE
        if queue:
            where = " AND m.side = 0"
        elif not permissions.covers_every_order(ident.role, ident.orders):
            claim = sorted(ident.orders) if ident.role == "bot" and ident.orders else []
            args.append(claim)
            where = f" AND (m.side = 0 OR m.order_id = ANY(${len(args)}::text[]))"
        after = None
        if cursor:
            ts, _, oid = cursor.partition(":")
            if not (ts.isascii() and ts.isdigit() and len(ts) <= 18 and oid):
                raise BadRequest("invalid cursor")
            after = (int(ts), oid)
            args += [after[0], oid]
            n = len(args)
            where += f" AND (m.activity_ts < ${n - 1} OR (m.activity_ts = ${n - 1} AND m.order_id < ${n}))"
        ids = None if only is None else sorted(set(only))
        if ids is not None:
            args.append(ids)
            where += f" AND m.order_id = ANY(${len(args)}::text[])"
        args.append(limit + 1)
        rows: list[tuple[Any, ...]] = [
            (*tuple(r), None)
            for r in await db.fetch(
                # the page of markers first, then its orders: a generic plan (a statement run five
                # times) joined every marker's order before sorting, 10,000 lookups for a busy rep
                "SELECT m.order_id, o.status, m.unread, o.dispute_open, m.last_seq, m.activity_ts "
                "FROM (SELECT m.order_id, m.unread, m.last_seq, m.activity_ts FROM read_markers m "
                f"WHERE m.user_id = $1{where} ORDER BY m.activity_ts DESC, m.order_id DESC LIMIT ${len(args)}) m "
                "JOIN orders o ON o.id = m.order_id ORDER BY m.activity_ts DESC, m.order_id DESC",
                *args,
            )
        ]
        if queue:  # two lists in one order: neither holds an order of the other (slots are left out)
            rows += await staff.queue_rows(db, ident.id, after, limit + 1, ids)
            rows.sort(key=lambda r: (r[5], r[0]), reverse=True)
        more = len(rows) > limit
        rows = rows[:limit]
        lasts = await messages.by_keys(db, [(r[0], r[4]) for r in rows if r[4]])  # one read for the page
        entries: list[InboxRow] = [
            (oid, status, unread, bool(dispute_open), lasts.get((oid, last_seq)), reasons)
            for oid, status, unread, dispute_open, last_seq, _, reasons in rows
        ]
        next_cursor = f"{rows[-1][5]}:{rows[-1][0]}" if more and rows else None
        return entries, await self._visible_total(db, ident), next_cursor

    @staticmethod
    async def _add_marker(db: asyncpg.Connection, order: OrderRecord, user: str, sees_notes: bool) -> int:
        """A new marker at 0 (replacing any): everything visible unread; returns its
        `last_seq`, the newest message the user may see."""
        notes = "" if sees_notes else " AND kind <> 'note'"
        unread, last = await db.fetchrow(
            f"SELECT COUNT(*) FILTER (WHERE sender_id <> $1), COALESCE(MAX(seq), 0) FROM messages "
            f"WHERE order_id = $2{notes}",
            user,
            order.id,
        )
        await db.execute("DELETE FROM read_markers WHERE user_id = $1 AND order_id = $2", user, order.id)
        await db.execute(
            "INSERT INTO read_markers (user_id, order_id, sees_notes, read_seq, unread, "
            "last_seq, activity_ts, side) VALUES ($1, $2, $3, 0, $4, $5, $6, $7)",
            user,
            order.id,
            int(sees_notes),
            unread,
            last,
            order.last_ts or order.created_ts,
            int(user not in order.slots),
        )
        return int(last)

    @staticmethod
    async def _hidden(db: asyncpg.Connection, user_id: str) -> int:
        hidden: int = await db.fetchval("SELECT side_unread FROM user_stats WHERE user_id = $1", user_id) or 0
        return hidden

    @staticmethod
    async def _total(db: asyncpg.Connection, user_id: str) -> int:
        total: int = await db.fetchval("SELECT unread_total FROM user_stats WHERE user_id = $1", user_id) or 0
        return total

    async def mark_read(
        self, actor: Actor | None, order_id: str, user_id: str, seq: int, backward: bool = False
    ) -> ReadMarker | None:
        """Move `user_id`'s read marker to `seq` (forward only unless `backward`).
        `actor` None means the api key acting for `user_id`. None when nothing changed."""

        async def op(db: asyncpg.Connection) -> ReadMarker | None:
            order = await self._load_order(db, order_id, lock=True)
            role = ""
            sees = False
            if actor is not None:
                role = actor.role_in(order)
                sees = permissions.sees_notes(role)
                if role == permissions.QUEUE_ROLE:  # staff read the order for staff as a whole
                    return await staff.read(db, order, seq, backward)
            held = batch.held()
            if held is not None:  # written with the batch's messages (chatd.store.postgres.batch)
                done, moved = await held.read(order_id, user_id, seq, backward, role)
                if done:
                    if moved is not None:
                        held.later(notifications.ON_READS, [(user_id, order_id, moved.read_seq)], key=0)
                    keep_locked(order)  # no statement of its own: the order's row is as `order` says
                    return moved
            row = await db.fetchrow(_MOVE, user_id, order_id, seq, backward)
            if row is None:  # no marker yet: one at 0, then moved as any other
                if actor is None:
                    raise NotFound(f"user {user_id} has no read marker on this order", ref=order_id)
                await self._add_marker(db, order, user_id, sees)
                row = await db.fetchrow(_MOVE, user_id, order_id, seq, backward)
            _, target, unread, total, side, hidden, plain_seq, plain_before = row
            if target is None:  # nothing to move
                return None
            return ReadMarker(target, unread, total, role, bool(side), hidden, plain_seq, plain_before)

        return await self._write(op, order=order_id)
