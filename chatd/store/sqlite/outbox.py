"""The webhook outbox table: events written with the change they announce
(`enqueue`, inside its transaction), then claimed and settled by delivery."""

from __future__ import annotations

import sqlite3
import uuid
from typing import Any

import msgspec

from chatd.store.records import OutboxEvent, OutboxFailure
from chatd.store.rows import now_ms
from chatd.store.sqlite.engine import StoreMixin, inline_read


def enqueue(db: sqlite3.Connection, events: list[tuple[str, dict[str, Any]]]) -> int:
    """Write (type, payload) events as outbox rows; return how many."""
    ts = now_ms()
    rows = []
    for kind, payload in events:
        event_id = uuid.uuid4().hex
        body = msgspec.json.encode({"id": event_id, "type": kind, "ts": ts, **payload})
        rows.append((event_id, kind, body, ts, ts))
    if rows:
        db.executemany(
            "INSERT INTO webhook_outbox (event_id, type, body, created_ts, next_ts) VALUES (?, ?, ?, ?, ?)", rows
        )
    return len(rows)


class Outbox(StoreMixin):
    """Mixed into SqliteStore."""

    async def claim_events(self, now_ms: int, lease_until_ms: int, limit: int) -> list[OutboxEvent]:
        def op(db: sqlite3.Connection) -> list[OutboxEvent]:
            rows = db.execute(
                "SELECT id, event_id, type, body, attempts FROM webhook_outbox "
                "WHERE dead = 0 AND next_ts <= ? ORDER BY next_ts, id LIMIT ?",
                (now_ms, limit),
            ).fetchall()
            db.executemany(
                "UPDATE webhook_outbox SET next_ts = ? WHERE id = ?", [(lease_until_ms, row[0]) for row in rows]
            )
            return [OutboxEvent(row[0], row[1], row[2], bytes(row[3]), row[4]) for row in rows]

        return await self._write(op)

    async def settle_events(self, delivered: list[int], failed: list[OutboxFailure]) -> None:
        def op(db: sqlite3.Connection) -> None:
            db.executemany("DELETE FROM webhook_outbox WHERE id = ?", [(i,) for i in delivered])
            db.executemany(
                "UPDATE webhook_outbox SET attempts = ?, next_ts = ?, last_error = ?, dead = ? WHERE id = ?",
                [(f.attempts, f.next_ts, f.error, int(f.dead), f.id) for f in failed],
            )

        await self._write(op)

    @inline_read
    async def next_event_ts(self) -> int | None:
        ts: int | None = self.reader.execute("SELECT MIN(next_ts) FROM webhook_outbox WHERE dead = 0").fetchone()[0]
        return ts

    @inline_read
    async def outbox_counts(self) -> tuple[int, int]:
        row = self.reader.execute(
            "SELECT COUNT(*) FILTER (WHERE dead = 0), COUNT(*) FILTER (WHERE dead = 1) FROM webhook_outbox"
        ).fetchone()
        return row[0], row[1]
