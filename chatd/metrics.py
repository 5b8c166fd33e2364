"""Prometheus metrics: cheap counters on the hot paths, the rest read at scrape time.

Process-wide counters and histograms live in prometheus-client's default
registry (with its process and GC collectors). What describes one app (its
connections, rooms, relay, webhook backlog) is read from the hub and relay
when /metrics is scraped (`AppCollector`; the webhook backlog as counted by
the last delivery round, so a scrape never reads the store), and the fan-out
path pays nothing but an integer increment for `messages_out`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram, Metric, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from chatd.relay.base import PubSub

if TYPE_CHECKING:
    from chatd.rooms.hub import Hub

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

MESSAGES_IN = Counter("chatd_messages_in", "Messages stored (repeated client_ids not counted), by kind", ["kind"])
ACK_SECONDS = Histogram(
    "chatd_ack_latency_seconds",
    "From a send reaching the service to its ack (the commit included)",
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)
STORE_BATCH = Histogram(
    "chatd_store_batch_size",
    "Writes committed together in one group commit",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024),
)
STORE_COMMIT_SECONDS = Histogram(
    "chatd_store_commit_seconds",
    "Time to apply and commit one group-commit batch",
    buckets=(0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0),
)
CLOSES = Counter("chatd_ws_closes", "WebSocket closes, by close code and by whom (server, client)", ["code", "by"])
WEBHOOK_DELIVERIES = Counter(
    "chatd_webhook_deliveries",
    "Webhook delivery attempts, by result (delivered, failed: will retry, dead: given up)",
    ["result"],
)
CONTACT_FILTER = Counter(
    "chatd_contact_filter_hits", "Messages with contact details, by action (masked, blocked)", ["action"]
)
UPLOADS = Counter("chatd_uploads", "Attachment uploads, by result", ["result"])
SLA_BREACHES = Counter("chatd_sla_breaches", "Buyers escalated for waiting longer than [sla] reply_within_s")

_in_by_kind: dict[str, Counter] = {}


def message_in(kind: str) -> None:
    child = _in_by_kind.get(kind)
    if child is None:
        child = _in_by_kind[kind] = MESSAGES_IN.labels(kind)
    child.inc()


def observe_batch(ops: int, seconds: float) -> None:
    """Store.on_batch: one call per group commit."""
    STORE_BATCH.observe(ops)
    STORE_COMMIT_SECONDS.observe(seconds)


def closed(code: int | None, by: str) -> None:
    CLOSES.labels("none" if code is None else str(int(code)), by).inc()


class AppCollector:
    """Gauges of one app, read when scraped: connections, rooms, relay, webhook backlog."""

    def __init__(
        self,
        hub: Hub,
        relay: PubSub,
        backlog: Callable[[], tuple[int, int]] | None = None,
        notifications: Callable[[], tuple[int, int]] | None = None,
    ) -> None:
        self.hub = hub
        self.relay = relay
        self.backlog = backlog  # () -> (waiting, dead) as of the last delivery round, or None
        self.notifications = notifications  # () -> (pending, due) as of the notifier's last round, or None

    def collect(self) -> Iterator[Metric]:
        hub = self.hub
        users = list(hub.users.values())
        rooms = list(hub.rooms.values())
        yield GaugeMetricFamily(
            "chatd_connections", "Authenticated WebSocket connections", value=sum(len(c) for c in users)
        )
        yield GaugeMetricFamily("chatd_users_connected", "Users with at least one connection", value=len(users))
        yield GaugeMetricFamily("chatd_rooms", "Orders with at least one joined connection", value=len(rooms))
        yield GaugeMetricFamily(
            "chatd_room_memberships", "Joined (connection, order) pairs", value=sum(len(r.members) for r in rooms)
        )
        yield CounterMetricFamily(
            "chatd_messages_out",
            "Live message frames handed to connections (replays not counted)",
            value=hub.messages_out,
        )
        yield GaugeMetricFamily(
            "chatd_relay_up", "1 while the relay between instances delivers", value=1 if self.relay.healthy else 0
        )
        waiting, dead = self.backlog() if self.backlog else (0, 0)
        yield GaugeMetricFamily("chatd_webhook_backlog", "Webhook events waiting for delivery", value=waiting)
        yield GaugeMetricFamily("chatd_webhook_dead", "Webhook events given up on after max_attempts", value=dead)
        pending, due = self.notifications() if self.notifications else (0, 0)
        yield GaugeMetricFamily("chatd_notifications_pending", "Notifications waiting (debounced)", value=pending)
        yield GaugeMetricFamily(
            "chatd_notifications_due", "Pending notifications already due: the delivery backlog", value=due
        )


def app_registry(collector: AppCollector) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=True)
    registry.register(collector)
    return registry


def exposition(app_reg: CollectorRegistry) -> bytes:
    """The text format: process-wide metrics, then this app's."""
    return generate_latest(REGISTRY) + generate_latest(app_reg)
