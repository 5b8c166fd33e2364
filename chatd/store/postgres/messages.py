"""Messages: the insert (next seq under the order's row lock, its side rows),
status and dispute changes, and reads. Mirrors chatd.store.sqlite.messages.

A write checks before it writes: a refused request (ChatError) leaves the
rest of its batch untouched.
"""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

import msgspec

from chatd.auth import permissions
from chatd.errors import BadRequest, ChatError, Conflict, Forbidden, Internal
from chatd.notifications import STAFF
from chatd.store.base import ExportRule, PostRule, StatusRule
from chatd.store.postgres import attachments as links
from chatd.store.postgres import attention as staff
from chatd.store.postgres import batch, notifications, outbox, responses
from chatd.store.postgres.engine import StoreMixin, keep_locked
from chatd.store.records import OrderRecord, Posted, UnreadChange
from chatd.store.rows import MSG_COLS, ORDER_COLS, Actor, message_from_row, now_ms, order_from_row
from chatd.wire import AttachmentRef, DisputeState, Message, UserRef

if TYPE_CHECKING:
    import asyncpg

_NO_END = 1 << 62  # above every seq


@functools.lru_cache(maxsize=64)
def _post_sql(first: int, notes_only: bool, clock: str) -> str:
    """The message's INSERT and what it changes, in one statement (one round trip).

    `go` is the INSERT (no row when (order, sender, client_id) exists already).
    `clock` is a reply clock's CTEs (chatd.store.postgres.responses) or "": they
    follow `go`, with parameters $1 (the order id) to ${first - 1}, and the
    message's values follow theirs. The SELECT gives, per reader, the marker and
    totals as the row triggers of migrations 1, 9 and 10 leave them: this statement's
    snapshot is from before the insert, so it adds what those triggers add (the
    sender's unread to 0, everyone else's up by one, each user's total and hidden
    sum by their marker's change, the staff marker likewise). Each reader's total
    and hidden sum are read from their row locked: another writer's change to them
    waits for this commit, and one under way is read as it committed.
    Subqueries, not a join: a join's plan follows the table statistics, and before
    they are gathered (a new database, a table that grew fast) it scans user_stats
    whole for every message. The lateral one looks up each reader's row alone."""
    seq, sender, role = f"${first}", f"${first + 3}", f"${first + 5}"
    values = ", ".join(["$1", *(f"${first + k}" for k in range(11))])
    return (
        f"WITH had AS (SELECT unread FROM read_markers WHERE user_id = {sender} AND order_id = $1), "
        "go AS (INSERT INTO messages (order_id, seq, ts, kind, sender_id, sender_name, sender_role, "
        f"client_id, text, status, attachments, forced) VALUES ({values}) "
        "ON CONFLICT (order_id, sender_id, client_id) WHERE client_id IS NOT NULL DO NOTHING RETURNING 1)"
        f"{', ' + clock if clock else ''} "
        "SELECT (SELECT unread FROM had), m.user_id, m.after, t.unread_total + m.after - m.before, m.side, "
        "t.side_unread + CASE WHEN m.side = 1 THEN m.after - m.before ELSE 0 END, "
        f"(SELECT CASE WHEN {role} = 'staff' THEN ARRAY[{seq}::bigint, 0] ELSE ARRAY[read_seq, unread + 1] END "
        "FROM staff_markers WHERE order_id = $1) "
        "FROM go LEFT JOIN LATERAL (SELECT user_id, side, unread AS before, "
        f"CASE WHEN user_id = {sender} THEN 0 ELSE unread + 1 END AS after FROM read_markers "
        f"WHERE order_id = $1{' AND sees_notes <> 0' if notes_only else ''}) m ON true "
        "LEFT JOIN LATERAL (SELECT unread_total, side_unread FROM user_stats s WHERE s.user_id = m.user_id "
        "FOR NO KEY UPDATE) t ON true"
    )


async def by_keys(db: asyncpg.Connection, keys: list[tuple[str, int]]) -> dict[tuple[str, int], Message]:
    """These messages ((order, seq)), in one read."""
    if not keys:
        return {}
    cols = ", ".join("m." + c.strip() for c in MSG_COLS.split(","))
    rows = await db.fetch(
        f"SELECT m.order_id, {cols} FROM unnest($1::text[], $2::bigint[]) AS k(order_id, seq) "
        "JOIN messages m ON m.order_id = k.order_id AND m.seq = k.seq",
        [k[0] for k in keys],
        [k[1] for k in keys],
    )
    return {(r[0], r[1]): message_from_row(r[0], r[1:]) for r in rows}


class Messages(StoreMixin):
    """Mixed into PostgresStore."""

    async def check_writable(self) -> None:
        async def op(db: asyncpg.Connection) -> None:
            await db.execute(
                "INSERT INTO health (id, ts) VALUES (1, $1) ON CONFLICT (id) DO UPDATE SET ts = $1", now_ms()
            )

        await self._write(op)

    @staticmethod
    async def _find(db: asyncpg.Connection, order_id: str, sender_id: str, client_id: str) -> Message | None:
        row = await db.fetchrow(
            f"SELECT {MSG_COLS} FROM messages WHERE order_id = $1 AND sender_id = $2 AND client_id = $3",
            order_id,
            sender_id,
            client_id,
        )
        return message_from_row(order_id, row) if row else None

    async def _insert(
        self,
        db: asyncpg.Connection,
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
        """Insert with the next seq and its side rows (as chatd.store.sqlite.messages);
        None if (order, sender, client_id) exists already. The order's row is locked
        (`_load_order`), so `last_seq` is the latest committed."""
        if attachments and (gone := await links.missing(db, attachments)) is not None:
            if client_id is not None and await self._find(db, order.id, sender.id, client_id) is not None:
                return None  # a retry of a message stored before its upload was deleted
            raise BadRequest(f"unknown attachment {gone}", ref=client_id)
        ts = int(self.clock() * 1000)
        seq = order.last_seq + 1
        att = msgspec.json.encode(attachments).decode() if attachments else None
        msg = Message(order.id, seq, ts, kind, sender, text, client_id, attachments or [], status, forced)
        waiting, overdue = order.waiting, order.waiting is not None and order.waiting.escalated
        held = batch.held()
        rows = await held.post(msg, kind == "note", att) if held is not None else None
        followers = None  # the order's staff followers, if the batch read them
        if held is not None and rows is not None:  # written with the rest of the batch
            clocked = responses.hold(held, order, msg)  # sets order.waiting
            followers = held.followers(order.id)
        else:
            clock = responses.plan(order, msg)  # sets order.waiting
            clocked = clock is not None
            first = len(clock[1]) + 1 if clock else 2
            values = (seq, ts, kind, sender.id, sender.name, sender.role, client_id, text, status, att, int(forced))
            rows = await db.fetch(
                _post_sql(first, kind == "note", clock[0] if clock else ""),
                *(clock[1] if clock else (order.id,)),
                *values,
            )
            if not rows:  # the insert did nothing, nor did the clock's statements
                order.waiting = waiting
                return None
        order.last_seq, order.last_ts = seq, ts
        unread = [
            UnreadChange(user, count, total, bool(side), hidden)
            for had, user, count, total, side, hidden, _ in rows
            if user is not None and (user != sender.id or (own_read and had))
        ]
        unread.sort(key=lambda u: u.user == sender.id)  # the sender's own change last
        # writing read the order: their pending notification goes, as with a read (held with the
        # batch's messages); only one who had unread messages may have one
        if own_read and self.notifications_for is not None and rows[0][0]:
            await batch.write(db, notifications.ON_READS, [(sender.id, order.id, seq)], key=0)
        if sender.role == "staff" and self.notifications_for is not None:  # moved the shared staff marker
            # as a staff read; what this message raises itself (a dispute) stays
            await batch.write(db, notifications.ON_READS, [(STAFF, order.id, seq - 1)], key=0)
        if attachments:
            await links.link(db, msg)
        moved |= overdue and not (order.waiting is not None and order.waiting.escalated)  # an SLA breach answered
        moved |= await staff.on_message(db, order, msg, asks_help)
        if self.notifications_for is not None:
            await notifications.schedule(db, order.id, seq, ts, self.notifications_for(order, msg, present))
        if self.events_for_message is not None:
            self._outbox_written += await outbox.enqueue(db, self.events_for_message(order, msg, present))
        return Posted(
            message=msg,
            duplicate=False,
            unread=unread,
            waiting_changed=clocked,
            waiting=order.waiting,
            staff=await staff.view(db, order, moved, known=(rows[0][6],), followers=followers),
        )

    async def _duplicate(self, db: asyncpg.Connection, order_id: str, sender_id: str, client_id: str) -> Posted:
        found = await self._find(db, order_id, sender_id, client_id)
        if found is None:  # the insert hit a seq clash, which the order's row lock rules out
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

        async def op(db: asyncpg.Connection) -> Posted:
            order = await self._load_order(db, order_id, lock=True)
            role = actor.role_in(order)
            if kind == "note" and not permissions.sees_notes(role):
                raise Forbidden("buyers cannot write notes", ref=client_id)
            if rule is not None:
                try:
                    rule(order, role)
                except ChatError:  # a repeat of a message stored before is answered as before
                    dup = await self._find(db, order_id, actor.id, client_id) if client_id else None
                    if dup is not None:
                        return Posted(message=dup, duplicate=True, unread=[])
                    raise
            posted = await self._insert(
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
            if posted is None:  # only a client_id can repeat
                assert client_id is not None
                return await self._duplicate(db, order_id, actor.id, client_id)
            if batch.held() is not None:  # no statement of its own: the order's row is as `order` says
                keep_locked(order)
            return posted

        return await self._write(op, order=order_id, client=(actor.id, client_id) if client_id else None)

    async def _order_change(
        self, db: asyncpg.Connection, actor: Actor, order_id: str, client_id: str
    ) -> tuple[OrderRecord, str, Posted | None]:
        """(order, actor's role, the earlier Posted if this client_id was seen)."""
        order = await self._load_order(db, order_id, lock=True)
        role = actor.role_in(order)
        dup = await self._find(db, order_id, actor.id, client_id)
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

        async def op(db: asyncpg.Connection) -> Posted:
            order, role, dup = await self._order_change(db, actor, order_id, client_id)
            if dup:
                return dup
            if rule is not None:
                order.closes_at = rule(order, role)  # against the status as locked by this write
            elif not permissions.may_set_status(role):
                raise Forbidden(f"role {role} cannot change the status", ref=client_id)
            await db.execute(
                "UPDATE orders SET status = $1, closes_at = $2 WHERE id = $3", status, order.closes_at, order_id
            )
            order.status = status
            posted = await self._insert(
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
            assert posted is not None  # no message of this client_id (_order_change looked, under the row lock)
            posted.order = order
            return posted

        return await self._write(op, order=order_id)

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

        async def op(db: asyncpg.Connection) -> Posted:
            order, role, dup = await self._order_change(db, actor, order_id, client_id)
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
                await staff.ensure_marker(db, order_id)  # the order enters every staff member's queue
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
            await db.execute(
                "UPDATE orders SET dispute_open = $1, dispute_reason = $2, dispute_by = $3, dispute_ts = $4, "
                "dispute_by_name = $5 WHERE id = $6",
                int(d.open),
                d.reason,
                d.by,
                d.ts,
                d.by_name,
                order_id,
            )
            posted = await self._insert(
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
            assert posted is not None  # no message of this client_id (_order_change looked, under the row lock)
            posted.order = order
            return posted

        return await self._write(op, order=order_id)

    async def _page(
        self, order_id: str, sees_notes: bool, above: int, below: int, limit: int, newest: bool
    ) -> tuple[list[Message], bool]:
        notes = "" if sees_notes else " AND kind <> 'note'"
        async with self._reading() as db:
            rows = await db.fetch(
                f"SELECT {MSG_COLS} FROM messages WHERE order_id = $1 AND seq > $2 AND seq < $3{notes} "
                f"ORDER BY seq {'DESC' if newest else 'ASC'} LIMIT $4",
                order_id,
                above,
                below,
                limit + 1,
            )
        more = len(rows) > limit
        rows = rows[:limit]
        if newest:
            rows.reverse()
        return [message_from_row(order_id, r) for r in rows], more

    async def sent(self, order_id: str, sender_id: str, client_id: str) -> Message | None:
        async with self._reading() as db:
            return await self._find(db, order_id, sender_id, client_id)

    async def history(
        self, order_id: str, sees_notes: bool, before: int | None, after: int | None, limit: int
    ) -> tuple[list[Message], bool]:
        """The newest `limit` below `before`, or the oldest `limit` above `after`."""
        if after is not None:
            return await self._page(order_id, sees_notes, after, _NO_END, limit, newest=False)
        return await self._page(order_id, sees_notes, 0, _NO_END if before is None else before, limit, newest=True)

    async def replay(
        self, order_id: str, sees_notes: bool, since: int | None, limit: int
    ) -> tuple[list[Message], bool]:
        """Messages after `since` (newest `limit` kept, flag: some left out), or the newest `limit`."""
        msgs, more = await self._page(order_id, sees_notes, since or 0, _NO_END, limit, newest=True)
        return msgs, more and since is not None

    async def export(
        self, order_id: str, rule: ExportRule, upto: int, chunk: int = 500
    ) -> AsyncIterator[list[Message]]:
        """Up to seq `upto` in ascending chunks, the order read and `rule` run on it
        before each (notes or not, or the end); no connection held between chunks."""
        after = 0
        while after < upto:
            async with self._reading() as db:
                row = await db.fetchrow(f"SELECT {ORDER_COLS} FROM orders WHERE id = $1", order_id)
                sees_notes = None if row is None else rule(order_from_row(row))
                if sees_notes is None:  # the caller's access ended: nothing more, from now on
                    return
                notes = "" if sees_notes else " AND kind <> 'note'"
                rows = await db.fetch(
                    f"SELECT {MSG_COLS} FROM messages WHERE order_id = $1 AND seq > $2 AND seq <= $3{notes} "
                    "ORDER BY seq LIMIT $4",
                    order_id,
                    after,
                    upto,
                    chunk,
                )
            if not rows:
                return
            yield [message_from_row(order_id, r) for r in rows]
            after = rows[-1][0]
