"""Pending and sent notifications in PostgreSQL. Mirrors chatd.store.sqlite.notifications;
claims skip rows another instance holds (`FOR UPDATE SKIP LOCKED`) besides the lease."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

from chatd.notifications import Planned
from chatd.store.postgres import batch, outbox
from chatd.store.postgres.engine import StoreMixin, pooled_read
from chatd.store.records import NotificationRow, NotifyPrefs, SentCounts

if TYPE_CHECKING:
    import asyncpg

_COLS = "id, user_id, order_id, role, reason, first_seq, last_seq, created_ts, due_ts, attempts"


# A user's pending notification for the order, made or joined, unless they muted it.
_SCHEDULE = (
    "INSERT INTO notifications (id, user_id, order_id, role, reason, first_seq, last_seq, created_ts, due_ts, "
    "deadline_ts) SELECT k.i, k.u, k.o, k.r, k.e, k.s, k.s, k.t, k.d, k.l FROM unnest($1::text[], $2::text[], "
    "$3::text[], $4::text[], $5::text[], $6::bigint[], $7::bigint[], $8::bigint[], $9::bigint[]) "
    "AS k(i, u, o, r, e, s, t, d, l) "
    "WHERE NOT EXISTS (SELECT 1 FROM notify_muted WHERE user_id = k.u AND order_id = k.o) "
    "ON CONFLICT (user_id, order_id) WHERE state = 0 DO UPDATE SET last_seq = excluded.last_seq, "
    "role = excluded.role, "
    "reason = CASE WHEN excluded.reason = 'messages' THEN notifications.reason ELSE excluded.reason END, "
    "due_ts = LEAST(GREATEST(notifications.due_ts, excluded.due_ts), notifications.deadline_ts, "
    "excluded.deadline_ts)"
)


async def schedule(db: asyncpg.Connection, order_id: str, seq: int, ts: int, planned: list[Planned]) -> None:
    """Create or join each user's pending notification for the order (muted orders: none).
    Within a batch that holds its messages (chatd.store.postgres.batch), written with them."""
    rows = [(uuid.uuid4().hex, p.user, order_id, p.role, p.reason, seq, ts, p.due_ts, p.latest_due_ts) for p in planned]
    await batch.write(db, _SCHEDULE, rows, key=1, waves=True)  # (user, order) from the second column


def on_read_sql(user: str, order: str, read_seq: str) -> str:
    """`on_read` as two CTEs over SQL expressions, for a statement that moves a marker:
    a pending notification wholly read goes, one partly read keeps only the rest."""
    where = f"user_id = {user} AND order_id = {order} AND state = 0"
    return (
        f"gone AS (DELETE FROM notifications WHERE {where} AND last_seq <= {read_seq}), "
        f"thin AS (UPDATE notifications SET first_seq = {read_seq} + 1 "
        f"WHERE {where} AND first_seq <= {read_seq} AND last_seq > {read_seq})"
    )


ON_READ = f"WITH {on_read_sql('$1', '$2', '$3::bigint')} SELECT 1"  # (user, order, read_seq)
# The pending notifications wholly read by the reads a batch holds (chatd.store.postgres.batch)
# or by their senders' posts, in one statement, their (user, order, read_seq) as arrays. Both
# go to the newest message its reader may see, which a pending notification of theirs never
# goes past: `ON_READ`'s thinning of one partly read has nothing to do here.
ON_READS = (
    "DELETE FROM notifications WHERE id = ANY(ARRAY(SELECT n.id FROM unnest($1::text[], $2::text[], $3::bigint[]) "
    "AS k(u, o, s) CROSS JOIN LATERAL (SELECT id FROM notifications WHERE user_id = k.u AND order_id = k.o "
    "AND state = 0 AND last_seq <= k.s OFFSET 0) n))"
)


async def on_read(db: asyncpg.Connection, user_id: str, order_id: str, read_seq: int) -> None:
    """As chatd.store.sqlite.notifications.on_read."""
    await db.execute(ON_READ, user_id, order_id, read_seq)


class Notifications(StoreMixin):
    """Mixed into PostgresStore."""

    async def claim_notifications(self, now_ms: int, lease_until_ms: int, limit: int) -> list[NotificationRow]:
        async def op(db: asyncpg.Connection) -> list[NotificationRow]:
            rows = await db.fetch(
                f"UPDATE notifications SET lease_until = $2 WHERE id IN (SELECT id FROM notifications "
                "WHERE state = 0 AND due_ts <= $1 AND lease_until <= $1 ORDER BY due_ts LIMIT $3 "
                f"FOR UPDATE SKIP LOCKED) RETURNING {_COLS}",
                now_ms,
                lease_until_ms,
                limit,
            )
            return sorted((NotificationRow(*r) for r in rows), key=lambda n: n.due_ts)

        return await self._write(op, key="notifications")

    @pooled_read
    async def sent_counts(self, db: asyncpg.Connection, user_id: str, order_id: str, since_ms: int) -> SentCounts:
        row = await db.fetchrow(
            "SELECT COUNT(*), MIN(sent_ts), COUNT(*) FILTER (WHERE order_id = $2), "
            "MIN(sent_ts) FILTER (WHERE order_id = $2) FROM notifications "
            "WHERE user_id = $1 AND state = 1 AND sent_ts > $3",
            user_id,
            order_id,
            since_ms,
        )
        return SentCounts(row[0], row[1], row[2], row[3])

    async def postpone_notification(self, notification_id: str, due_ts: int, failed: bool = False) -> None:
        async def op(db: asyncpg.Connection) -> None:
            await db.execute(
                "UPDATE notifications SET due_ts = $1, lease_until = 0, attempts = attempts + $2 "
                "WHERE id = $3 AND state = 0",
                due_ts,
                int(failed),
                notification_id,
            )

        await self._write(op, key="notifications")

    async def finish_notification(
        self, notification_id: str, sent_ts: int, last_seq: int, events: list[tuple[str, dict[str, Any]]]
    ) -> bool:
        async def op(db: asyncpg.Connection) -> bool:
            row = await db.fetchrow(
                "UPDATE notifications SET state = 1, sent_ts = $1, lease_until = 0 WHERE id = $2 AND state = 0 "
                "RETURNING user_id, order_id, role, last_seq, due_ts, deadline_ts",
                sent_ts,
                notification_id,
            )
            if row is None:  # read meanwhile (gone): nothing more to say
                return False
            self._outbox_written += await outbox.enqueue(db, events)
            if row[3] > last_seq:  # messages stored after the claim: a notification of their own
                await db.execute("UPDATE notifications SET last_seq = $1 WHERE id = $2", last_seq, notification_id)
                await db.execute(
                    "INSERT INTO notifications (id, user_id, order_id, role, reason, first_seq, last_seq, "
                    "created_ts, due_ts, deadline_ts) VALUES ($1, $2, $3, $4, 'messages', $5, $6, $7, $8, $9)",
                    uuid.uuid4().hex,
                    row[0],
                    row[1],
                    row[2],
                    last_seq + 1,
                    row[3],
                    sent_ts,
                    row[4],
                    row[5],
                )
            return True

        return await self._write(op, key="notifications")

    @pooled_read
    async def notify_prefs(self, db: asyncpg.Connection, user_id: str) -> NotifyPrefs:
        email = await db.fetchval("SELECT email FROM notify_prefs WHERE user_id = $1", user_id)
        muted = await db.fetch("SELECT order_id FROM notify_muted WHERE user_id = $1 ORDER BY order_id", user_id)
        return NotifyPrefs(email=bool(email) if email is not None else True, muted=[r[0] for r in muted])

    async def set_notify_prefs(self, user_id: str, prefs: NotifyPrefs) -> None:
        async def op(db: asyncpg.Connection) -> None:
            await db.execute(
                "INSERT INTO notify_prefs (user_id, email) VALUES ($1, $2) "
                "ON CONFLICT (user_id) DO UPDATE SET email = excluded.email",
                user_id,
                int(prefs.email),
            )
            await db.execute("DELETE FROM notify_muted WHERE user_id = $1", user_id)
            await db.executemany(
                "INSERT INTO notify_muted (user_id, order_id) VALUES ($1, $2)", [(user_id, o) for o in prefs.muted]
            )
            await db.execute(
                "DELETE FROM notifications WHERE user_id = $1 AND order_id = ANY($2::text[]) AND state = 0",
                user_id,
                prefs.muted,
            )

        await self._write(op, key="notify-prefs:" + user_id)

    async def prune_notifications(self, sent_before_ms: int) -> int:
        async def op(db: asyncpg.Connection) -> int:
            done = await db.execute("DELETE FROM notifications WHERE state = 1 AND sent_ts < $1", sent_before_ms)
            return int(done.split()[-1])

        return await self._write(op, key="notifications")

    @pooled_read
    async def notification_backlog(self, db: asyncpg.Connection, now_ms: int) -> tuple[int, int]:
        row = await db.fetchrow(
            "SELECT COUNT(*), COUNT(*) FILTER (WHERE due_ts <= $1) FROM notifications WHERE state = 0", now_ms
        )
        return row[0], row[1]

    @pooled_read
    async def pending_notifications(self, db: asyncpg.Connection, user_id: str) -> list[NotificationRow]:
        rows = await db.fetch(
            f"SELECT {_COLS} FROM notifications WHERE user_id = $1 AND state = 0 ORDER BY order_id", user_id
        )
        return [NotificationRow(*r) for r in rows]
