"""/metrics (Prometheus): on the main port, or on its own listener with `[metrics] port`."""

from __future__ import annotations

import socket
from contextlib import asynccontextmanager

from aiohttp import web
from prometheus_client import CollectorRegistry

from chatd import metrics
from chatd.config import MetricsConfig
from chatd.edge.keys import METRICS


async def get_metrics(request: web.Request) -> web.Response:
    return web.Response(body=metrics.exposition(request.app[METRICS]), headers={"Content-Type": metrics.CONTENT_TYPE})


def add_routes(app: web.Application, cfg: MetricsConfig) -> None:
    if not cfg.port:
        app.router.add_get("/metrics", get_metrics)


def metrics_app(registry: CollectorRegistry) -> web.Application:
    """The separate metrics listener (`[metrics] port`): /metrics only."""
    app = web.Application()
    app[METRICS] = registry
    app.router.add_get("/metrics", get_metrics)
    return app


@asynccontextmanager
async def listener(cfg: MetricsConfig, registry: CollectorRegistry):
    """Serve `metrics_app` on `[metrics] host:port` while the context is open (nothing without a port)."""
    if not cfg.port:
        yield
        return
    runner = web.AppRunner(metrics_app(registry), access_log=None)
    await runner.setup()
    try:
        # shared by the workers of `serve --workers N`, like the main port
        reuse = True if hasattr(socket, "SO_REUSEPORT") else None
        await web.TCPSite(runner, cfg.host, cfg.port, reuse_port=reuse).start()
        yield
    finally:
        await runner.cleanup()
