"""Webhooks: durable, signed notifications to the host platform.

Events are written to the store's outbox in the transaction of the change
they announce: an event exists if and only if its message (or status change)
committed. This module has pure functions (`message_events`, `order_events`)
that turn a change into events; the composition root hands them to the store,
which writes the rows. A delivery task POSTs them to
`[webhooks] url`, retries failures with exponential backoff, and deletes an
event only after a 2xx answer. The outbox is the queue, so delivery survives
restarts: at least once, with `webhook-id` as the idempotency key.

Each request is signed the Standard Webhooks way (standardwebhooks.com), so
receivers verify it with that library (or Svix's): `webhook-id` (the event
id), `webhook-timestamp` (Unix seconds of this attempt) and
`webhook-signature: v1,<base64 HMAC-SHA256(key, "<id>.<timestamp>.<body>")>`;
the key is the base64 after `whsec_` in `[webhooks] secret`, or a secret's
own bytes when it has no such prefix (older configs). Receivers reject stale
timestamps (replay protection). The headers of chatd 0.1
(`X-Chatd-Signature: v1=<hex HMAC-SHA256(secret, "<timestamp>.<body>")>` and
the other `X-Chatd-*`) are still sent while `[webhooks] legacy_headers` is on
(deprecated: the default for this release only).

`message.created` is addressed to each participant who has no live
connection joined to the order *when the message is sent* (see
docs/protocol.md, "Webhooks", for why not at delivery time).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import logging
import random
import time
from collections.abc import Callable
from typing import Any

import aiohttp

from chatd import metrics
from chatd.config import WebhooksConfig
from chatd.store.base import Store
from chatd.store.records import OrderRecord, OutboxEvent, OutboxFailure
from chatd.store.rows import SYSTEM
from chatd.tasks import stop
from chatd.wire import Message

log = logging.getLogger("chatd.webhooks")
_JITTER = random.Random()  # its own state: the process's `random` (seeded by tests, libraries) is left alone
COUNT_S = 1.0  # the backlog gauges are at most this old


SECRET_PREFIX = "whsec_"


def signing_key(secret: str) -> bytes:
    """The Standard Webhooks key of `[webhooks] secret`: the base64 after `whsec_`
    (what the standardwebhooks libraries take), or a plain secret's UTF-8 bytes
    (pass them as bytes to those libraries). ValueError: not base64."""
    if not secret.startswith(SECRET_PREFIX):
        return secret.encode()
    b64 = secret[len(SECRET_PREFIX) :]
    try:
        key = base64.b64decode(b64 + "=" * (-len(b64) % 4), validate=True)
    except ValueError:
        raise ValueError("not base64 after whsec_") from None
    if not key:
        raise ValueError("no key after whsec_")
    return key


def sign_standard(key: bytes, event_id: str, timestamp: str, body: bytes) -> str:
    """The `webhook-signature` value (Standard Webhooks, version v1) for `body`."""
    mac = hmac.new(key, f"{event_id}.{timestamp}.".encode() + body, hashlib.sha256)
    return "v1," + base64.b64encode(mac.digest()).decode()


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """The legacy `X-Chatd-Signature` value for `body` sent at `timestamp`
    (`[webhooks] legacy_headers`, deprecated)."""
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "v1=" + mac.hexdigest()


def verify(secret: str, timestamp: str, body: bytes, signature: str, now_s: float, tolerance_s: float = 300) -> bool:
    """What a receiver of the legacy headers does: the signature matches and the
    timestamp is recent. New receivers use the standardwebhooks library."""
    try:
        fresh = abs(now_s - int(timestamp)) <= tolerance_s
    except ValueError:
        return False
    return fresh and hmac.compare_digest(sign(secret, timestamp, body), signature)


def recipients(order: OrderRecord, msg: Message, online: frozenset[str]) -> list[dict[str, str]]:
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


def message_events(order: OrderRecord, msg: Message, present: frozenset[str]) -> list[tuple[str, dict[str, Any]]]:
    """The events a committed message announces (pure: the store calls it inside the
    write transaction). `present`: users joined to the order when it was sent."""
    out = [
        ("message.created", {"order": order.id, "recipient": person, "message": msg})
        for person in recipients(order, msg, present)
    ]
    if msg.kind == "dispute" and order.dispute is not None:
        kind = "dispute.opened" if order.dispute.open else "dispute.closed"
        out.append((kind, {"order": order.id, "dispute": order.dispute, "by": msg.sender, "message": msg}))
    elif msg.kind == "status" and msg.sender.id != SYSTEM.id:  # the api key's (PUT): `order_events`
        out.append(
            ("order.status_changed", {"order": order.id, "status": order.status, "by": msg.sender, "message": msg})
        )
    return out


def order_events(old: OrderRecord | None, new: OrderRecord) -> list[tuple[str, dict[str, Any]]]:
    """The events an order upsert announces (pure, like `message_events`)."""
    if old is not None and old.status != new.status:
        return [
            (
                "order.status_changed",
                {"order": new.id, "status": new.status, "previous_status": old.status, "by": None, "message": None},
            )
        ]
    return []


def breach_events(order: OrderRecord, now_ms: int) -> list[tuple[str, dict[str, Any]]]:
    """`sla.breached`: the order's buyer has waited too long for a reply (pure, like
    `message_events`; chatd.sla has the store write it with the escalation)."""
    w = order.waiting
    if w is None:
        return []
    return [
        (
            "sla.breached",
            {
                "order": order.id,
                "status": order.status,
                "buyer": order.buyer,
                "supplier": order.supplier,
                "sales_rep": order.sales_rep,
                "waiting_since": w.since,
                "waiting_seq": w.seq,
                "waited_s": (now_ms - w.since) / 1000,
            },
        )
    ]


class Webhooks:
    """The delivery task over the store's outbox."""

    def __init__(self, store: Store, cfg: WebhooksConfig, *, clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.cfg = cfg
        self.clock = clock  # wall-clock seconds of the leases and retries (tests inject one)
        self._key = signing_key(cfg.secret) if cfg.secret else b""
        self.counts = (0, 0)  # (waiting, dead) as of the last count, for /metrics
        self._counted = -COUNT_S  # time.monotonic() of that count
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._in_flight: set[asyncio.Task[None]] = set()  # one per slot taken (`concurrency`)
        self._session: aiohttp.ClientSession | None = None

    def wake(self) -> None:
        """The store's `on_outbox` (on the loop, after a commit that wrote events):
        deliver now. The composition root gives the store this and the pure
        `message_events` / `order_events` when it builds it."""
        self._wake.set()

    async def start(self) -> None:
        self._session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=self.cfg.timeout_s),
            headers={"User-Agent": "chatd-webhooks/1"},
        )
        await self._count(now=True)
        self._task = asyncio.create_task(self._run(), name="chatd-webhooks")

    async def aclose(self) -> None:
        """Stop delivering; events in flight stay in the outbox and go out after a restart."""
        await stop(self._task)  # first: a delivery cancelled below wakes no loop
        await stop(*self._in_flight)
        self._task = None
        if self._session:
            await self._session.close()
            self._session = None

    # --- delivery ----------------------------------------------------------------------

    async def _run(self) -> None:
        while True:
            self._wake.clear()  # a commit during the round sets it again: no wait then
            try:
                delay = await self._round()
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - keep delivering
                log.exception("webhook delivery round failed")
                delay = 1.0
            if delay > 0:
                # asyncio.timeout, not wait_for: on 3.11 wait_for loses a cancel that comes as the
                # event is set (a delivery ending while aclose stops the loop), and the loop runs on
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(delay):
                        await self._wake.wait()

    async def _round(self) -> float:
        """Start what is due in the free slots; return how long to wait before the next
        round (a delivery ending wakes the loop sooner, to fill its slot)."""
        try:
            return await self._deliver_due()
        finally:
            await self._count()

    async def _count(self, now: bool = False) -> None:
        """The gauges' counts: read now, or if the last read is COUNT_S old. A round
        sends only `concurrency` events, and counting scans the whole outbox: counted
        every round, a backlog of 100,000 would be scanned twice for every 8 sent."""
        if now or time.monotonic() - self._counted >= COUNT_S:
            self.counts = await self.store.outbox_counts()
            self._counted = time.monotonic()

    def _now(self) -> int:
        return int(self.clock() * 1000)

    async def _deliver_due(self) -> float:
        free = max(1, self.cfg.concurrency) - len(self._in_flight)
        if free <= 0:  # every slot taken: the first to end wakes the loop
            return 1.0
        now = self._now()
        nxt = await self.store.next_event_ts()
        if nxt is None or nxt > now:
            return 1.0 if nxt is None else min(1.0, max(0.01, (nxt - now) / 1000))
        lease = now + int((self.cfg.timeout_s + 2) * 1000)  # a crash mid-attempt: retried after this
        # leased, so another instance on the same file (or a retry round) leaves them alone. Only
        # what is sent at once is claimed, into the slots free now: every attempt ends within
        # timeout_s, inside its lease; one claimed to wait for a slot could outlast it and be sent
        # by another instance too. Each slot is filled again as soon as its attempt ends, so one
        # stalled receiver request holds up its own slot only, not the others'.
        rows = await self.store.claim_events(now, lease, free)
        for row in rows:
            task = asyncio.create_task(self._attempt(row))
            self._in_flight.add(task)
            task.add_done_callback(self._ended)
        return 0.0

    def _ended(self, task: asyncio.Task[None]) -> None:
        self._in_flight.discard(task)
        self._wake.set()  # its slot is free: the loop claims the next one due
        if not task.cancelled() and (exc := task.exception()) is not None:
            # the store is away, most likely: the event stays leased and is retried after its lease
            log.error("webhook delivery failed", exc_info=exc)

    async def _attempt(self, row: OutboxEvent) -> None:
        """One attempt at one event, and its outcome written: deleted, or due again later."""
        err = await self._deliver(row)
        failed = []
        if err is not None:
            attempts = row.attempts + 1
            dead = attempts >= self.cfg.max_attempts
            delay = min(self.cfg.backoff_max_s, self.cfg.backoff_initial_s * 2 ** (attempts - 1))
            delay *= _JITTER.uniform(0.8, 1.2)  # spread retries of many events out
            failed.append(OutboxFailure(row.id, attempts, self._now() + int(delay * 1000), err[:500], dead))
            log.log(
                logging.WARNING if dead else logging.INFO,
                "webhook %s (%s) attempt %d failed: %s%s",
                row.event_id,
                row.type,
                attempts,
                err,
                "; giving up" if dead else "",
            )
        await self.store.settle_events([] if failed else [row.id], failed)
        # before the counters, so a scrape sees both; exact when it matters (a failure, or
        # the last in flight: the backlog sent), at most once a COUNT_S while a backlog goes out
        await self._count(now=bool(failed) or len(self._in_flight) <= 1)
        for f in failed:
            metrics.WEBHOOK_DELIVERIES.labels("dead" if f.dead else "failed").inc()
        if not failed:
            metrics.WEBHOOK_DELIVERIES.labels("delivered").inc()

    async def _deliver(self, row: OutboxEvent) -> str | None:
        """POST one event; None on a 2xx, else what went wrong. A redirect is not
        followed (it would re-send the signed body to another host, or turn the POST
        into a GET whose 200 looks delivered): a 3xx is a failed attempt."""
        event_id, kind, body, attempts = row.event_id, row.type, row.body, row.attempts
        ts = str(int(time.time()))
        headers = {
            "Content-Type": "application/json",
            "webhook-id": event_id,
            "webhook-timestamp": ts,
            "webhook-signature": sign_standard(self._key, event_id, ts, body),
        }
        if self.cfg.legacy_headers:  # deprecated: chatd 0.1's headers, for one release
            headers |= {
                "X-Chatd-Event-Id": event_id,
                "X-Chatd-Event": kind,
                "X-Chatd-Timestamp": ts,
                "X-Chatd-Signature": sign(self.cfg.secret, ts, body),
                "X-Chatd-Attempt": str(attempts + 1),
            }
        assert self._session is not None  # set by start(), before the delivery task
        try:
            async with self._session.post(self.cfg.url, data=body, headers=headers, allow_redirects=False) as resp:
                await resp.release()
                if 200 <= resp.status < 300:
                    return None
                return f"HTTP {resp.status}"
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            return f"{type(exc).__name__}: {exc}"

    async def backlog(self) -> tuple[int, int]:
        """(events waiting, events given up on), read now."""
        return await self.store.outbox_counts()
