"""Webhooks: durable, signed notifications to the host platform.

Events are written to the `webhook_outbox` table by store hooks, inside the
transaction of the change they announce: an event exists if and only if its
message (or status change) committed. A delivery task POSTs them to
`[webhooks] url`, retries failures with exponential backoff, and deletes an
event only after a 2xx answer. The outbox is the queue, so delivery survives
restarts: at least once, with `X-Chatd-Event-Id` as the idempotency key.

Each request is signed: `X-Chatd-Timestamp` (Unix seconds of this attempt)
and `X-Chatd-Signature: v1=<hex HMAC-SHA256(secret, "<timestamp>.<body>")>`.
Receivers recompute it and reject stale timestamps (replay protection).

`message.created` is addressed to each participant who has no live
connection joined to the order *when the message commits* (see
docs/protocol.md, "Webhooks", for why not at delivery time).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import random
import sqlite3
import time
import uuid
from collections.abc import Callable

import aiohttp
import msgspec

from chatd import metrics
from chatd.config import WebhooksConfig
from chatd.store.records import OrderRecord
from chatd.store.rows import now_ms
from chatd.store.sqlite import SqliteStore
from chatd.tasks import stop
from chatd.wire import Message

log = logging.getLogger("chatd.webhooks")
BATCH = 100


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """The signature header value for `body` sent at `timestamp`."""
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "v1=" + mac.hexdigest()


def verify(secret: str, timestamp: str, body: bytes, signature: str, now_s: float, tolerance_s: float = 300) -> bool:
    """What a receiver does: the signature matches and the timestamp is recent."""
    try:
        fresh = abs(now_s - int(timestamp)) <= tolerance_s
    except ValueError:
        return False
    return fresh and hmac.compare_digest(sign(secret, timestamp, body), signature)


def recipients(order: OrderRecord, msg: Message, online: frozenset[str]) -> list[dict]:
    """The participants to notify of `msg`: not its sender, not a buyer for a note,
    and not anyone with a live connection joined to the order."""
    out = []
    for p in order.participants():
        if p.id == msg.sender.id or p.id in online:
            continue
        if msg.kind == "note" and p.role == "buyer":
            continue
        out.append({"id": p.id, "name": p.name, "role": p.role})
    return out


class Webhooks:
    """The outbox writer (store hooks) and the delivery task."""

    def __init__(self, store: SqliteStore, cfg: WebhooksConfig,
                 online: Callable[[str], frozenset[str]]) -> None:
        self.store = store
        self.cfg = cfg
        self.online = online  # order id -> users joined to it on this instance
        self._wake = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task | None = None
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=self.cfg.timeout_s),
            headers={"User-Agent": "chatd-webhooks/1"},
        )
        self._task = asyncio.create_task(self._run(), name="chatd-webhooks")

    async def aclose(self) -> None:
        """Stop delivering; events in flight stay in the outbox and go out after a restart."""
        await stop(self._task)
        self._task = None
        if self._session:
            await self._session.close()
            self._session = None

    # --- the outbox (store hooks: inside the write transaction) ---------------------------

    def on_message(self, db: sqlite3.Connection, order: OrderRecord, msg: Message) -> None:
        online = self.online(order.id)
        for person in recipients(order, msg, online):
            self._enqueue(db, "message.created", {"order": order.id, "recipient": person, "message": msg})
        if msg.kind == "dispute" and order.dispute is not None:
            kind = "dispute.opened" if order.dispute.open else "dispute.closed"
            self._enqueue(db, kind, {"order": order.id, "dispute": order.dispute, "by": msg.sender,
                                     "message": msg})
        elif msg.kind == "status":
            self._enqueue(db, "order.status_changed", {"order": order.id, "status": order.status,
                                                       "by": msg.sender, "message": msg})

    def on_order(self, db: sqlite3.Connection, old: OrderRecord | None, new: OrderRecord) -> None:
        if old is not None and old.status != new.status:
            self._enqueue(db, "order.status_changed", {"order": new.id, "status": new.status,
                                                       "previous_status": old.status, "by": None,
                                                       "message": None})

    def _enqueue(self, db: sqlite3.Connection, kind: str, payload: dict) -> None:
        event_id = uuid.uuid4().hex
        ts = now_ms()
        body = msgspec.json.encode({"id": event_id, "type": kind, "ts": ts, **payload})
        db.execute(
            "INSERT INTO webhook_outbox (event_id, type, body, created_ts, next_ts) VALUES (?, ?, ?, ?, ?)",
            (event_id, kind, body, ts, ts),
        )
        if self._loop is not None:
            # may run on the writer thread ([store] synchronous = "full"); a wake-up
            # before the commit finds nothing, and the next poll (<= 1 s) picks it up
            self._loop.call_soon_threadsafe(self._wake.set)

    # --- delivery ----------------------------------------------------------------------

    async def _run(self) -> None:
        while True:
            try:
                delay = await self._round()
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - keep delivering
                log.exception("webhook delivery round failed")
                delay = 1.0
            if delay > 0:
                self._wake.clear()
                try:
                    await asyncio.wait_for(self._wake.wait(), delay)
                except asyncio.TimeoutError:
                    pass

    async def _round(self) -> float:
        """Deliver what is due; return how long to wait before the next round."""
        now = now_ms()
        r = self.store.reader
        due = r.execute("SELECT 1 FROM webhook_outbox WHERE dead = 0 AND next_ts <= ? LIMIT 1", (now,)).fetchone()
        if due is None:
            nxt = r.execute("SELECT MIN(next_ts) FROM webhook_outbox WHERE dead = 0").fetchone()[0]
            return 1.0 if nxt is None else min(1.0, max(0.01, (nxt - now) / 1000))
        lease = now + int((self.cfg.timeout_s + 2) * 1000)  # a crash mid-attempt: retried after this

        def claim(db):
            # leased, so another instance on the same file (or a retry round) leaves them alone
            rows = db.execute(
                "SELECT id, event_id, type, body, attempts FROM webhook_outbox "
                "WHERE dead = 0 AND next_ts <= ? ORDER BY next_ts, id LIMIT ?",
                (now, BATCH),
            ).fetchall()
            db.executemany("UPDATE webhook_outbox SET next_ts = ? WHERE id = ?", [(lease, row[0]) for row in rows])
            return rows

        rows = await self.store.write(claim)
        if not rows:
            return 0.0
        gate = asyncio.Semaphore(max(1, self.cfg.concurrency))

        async def one(row):
            async with gate:
                return await self._deliver(row)

        errors = await asyncio.gather(*(one(row) for row in rows))
        done = [row[0] for row, err in zip(rows, errors) if err is None]
        failed = []
        for row, err in zip(rows, errors):
            if err is None:
                continue
            attempts = row[4] + 1
            dead = attempts >= self.cfg.max_attempts
            delay = min(self.cfg.backoff_max_s, self.cfg.backoff_initial_s * 2 ** (attempts - 1))
            delay *= random.uniform(0.8, 1.2)  # spread retries of many events out
            failed.append((attempts, now_ms() + int(delay * 1000), err[:500], int(dead), row[0]))
            metrics.WEBHOOK_DELIVERIES.labels("dead" if dead else "failed").inc()
            log.log(logging.WARNING if dead else logging.INFO, "webhook %s (%s) attempt %d failed: %s%s",
                    row[1], row[2], attempts, err, "; giving up" if dead else "")
        if done:
            metrics.WEBHOOK_DELIVERIES.labels("delivered").inc(len(done))

        def settle(db):
            db.executemany("DELETE FROM webhook_outbox WHERE id = ?", [(i,) for i in done])
            db.executemany(
                "UPDATE webhook_outbox SET attempts = ?, next_ts = ?, last_error = ?, dead = ? WHERE id = ?", failed
            )

        await self.store.write(settle)
        return 0.0

    async def _deliver(self, row) -> str | None:
        """POST one event; None on a 2xx, else what went wrong."""
        _, event_id, kind, body, attempts = row
        ts = str(int(time.time()))
        headers = {
            "Content-Type": "application/json",
            "X-Chatd-Event-Id": event_id,
            "X-Chatd-Event": kind,
            "X-Chatd-Timestamp": ts,
            "X-Chatd-Signature": sign(self.cfg.secret, ts, body),
            "X-Chatd-Attempt": str(attempts + 1),
        }
        try:
            async with self._session.post(self.cfg.url, data=body, headers=headers) as resp:
                await resp.release()
                if 200 <= resp.status < 300:
                    return None
                return f"HTTP {resp.status}"
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
            return f"{type(exc).__name__}: {exc}" or type(exc).__name__

    def backlog(self) -> tuple[int, int]:
        """(events waiting, events given up on)."""
        return backlog(self.store)


def backlog(store: SqliteStore) -> tuple[int, int]:
    row = store.reader.execute(
        "SELECT COUNT(*) FILTER (WHERE dead = 0), COUNT(*) FILTER (WHERE dead = 1) FROM webhook_outbox"
    ).fetchone()
    return row[0], row[1]
