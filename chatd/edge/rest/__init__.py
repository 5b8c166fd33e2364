"""The REST edge (same port as /ws): api-key or JWT callers, JSON in and out, one module per resource."""

from __future__ import annotations

from aiohttp import web

from chatd.config import Config
from chatd.edge.rest import attachments, buyers, health, messages, metrics, openapi, orders, reports, threads, users
from chatd.edge.rest.common import errors_middleware

__all__ = ["add_routes", "errors_middleware"]


def add_routes(app: web.Application, cfg: Config) -> None:
    orders.add_routes(app)
    buyers.add_routes(app)
    messages.add_routes(app)
    threads.add_routes(app)
    reports.add_routes(app)
    users.add_routes(app)
    attachments.add_routes(app)
    health.add_routes(app)
    metrics.add_routes(app, cfg.metrics)
    openapi.add_routes(app)
