"""The webhook outbox table: events written with the change they announce
(`enqueue`, inside its transaction), then claimed and settled by delivery.
Claims skip rows another host has locked, so hosts never deliver one event twice at once."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

import msgspec

from chatd.store.postgres import batch
from chatd.store.postgres.engine import StoreMixin, pooled_read
from chatd.store.records import OutboxEvent, OutboxFailure
from chatd.store.rows import now_ms

if TYPE_CHECKING:
    import asyncpg


_ENQUEUE = "INSERT INTO webhook_outbox (event_id, type, body, created_ts, next_ts) VALUES ($1, $2, $3, $4, $5)"


async def enqueue(db: asyncpg.Connection, events: list[tuple[str, dict[str, Any]]]) -> int:
    """Write (type, payload) events as outbox rows; return how many. Within a batch
    that holds its messages (chatd.store.postgres.batch), written with them."""
    ts = now_ms()
    rows: list[tuple[str, str, bytes, int, int]] = []
    for kind, payload in events:
        event_id = uuid.uuid4().hex
        body = msgspec.json.encode({"id": event_id, "type": kind, "ts": ts, **payload})
        rows.append((event_id, kind, body, ts, ts))
    held = batch.held()
    if held is not None:
        held.events.extend(rows)
    elif rows:
        await db.executemany(_ENQUEUE, rows)
    return len(rows)


class Outbox(StoreMixin):
    """Mixed into PostgresStore."""

    async def claim_events(self, now_ms: int, lease_until_ms: int, limit: int) -> list[OutboxEvent]:
        async def op(db: asyncpg.Connection) -> list[OutboxEvent]:
            rows = await db.fetch(
                "UPDATE webhook_outbox SET next_ts = $2 WHERE id IN (SELECT id FROM webhook_outbox "
                "WHERE dead = 0 AND next_ts <= $1 ORDER BY next_ts, id LIMIT $3 FOR UPDATE SKIP LOCKED) "
                "RETURNING id, event_id, type, body, attempts",
                now_ms,
                lease_until_ms,
                limit,
            )
            rows = sorted(rows, key=lambda r: r[0])
            return [OutboxEvent(row[0], row[1], row[2], bytes(row[3]), row[4]) for row in rows]

        return await self._write(op)

    async def settle_events(self, delivered: list[int], failed: list[OutboxFailure]) -> None:
        async def op(db: asyncpg.Connection) -> None:
            if delivered:
                await db.execute("DELETE FROM webhook_outbox WHERE id = ANY($1::bigint[])", delivered)
            if failed:
                await db.executemany(
                    "UPDATE webhook_outbox SET attempts = $1, next_ts = $2, last_error = $3, dead = $4 WHERE id = $5",
                    [(f.attempts, f.next_ts, f.error, int(f.dead), f.id) for f in failed],
                )

        await self._write(op)

    @pooled_read
    async def next_event_ts(self, db: asyncpg.Connection) -> int | None:
        ts: int | None = await db.fetchval("SELECT MIN(next_ts) FROM webhook_outbox WHERE dead = 0")
        return ts

    @pooled_read
    async def outbox_counts(self, db: asyncpg.Connection) -> tuple[int, int]:
        row = await db.fetchrow(
            "SELECT COUNT(*) FILTER (WHERE dead = 0), COUNT(*) FILTER (WHERE dead = 1) FROM webhook_outbox"
        )
        return row[0], row[1]
