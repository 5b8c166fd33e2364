"""Optional services wired into the app: attachments, threads, contact filter, webhooks, metrics.

One cleanup context, after the core resources (store, relay, hub, chat): it
registers the store hooks, hands `Chat` its optional collaborators, starts
the background tasks (upload clean-up, webhook delivery, the metrics
listener) and stops them in reverse, before the store closes.
"""

from __future__ import annotations

import socket
from pathlib import Path

from aiohttp import web
from prometheus_client import CollectorRegistry

from chatd import metrics
from chatd.appkeys import CHAT, CONFIG
from chatd.attachments import Attachments
from chatd.threads import Threads
from chatd.webhooks import Webhooks

ATTACHMENTS = web.AppKey("attachments", Attachments)
THREADS = web.AppKey("threads", Threads)
WEBHOOKS = web.AppKey("webhooks", object)  # Webhooks, or None without [webhooks] url
METRICS = web.AppKey("metrics", CollectorRegistry)


def attachments_dir(cfg) -> Path:
    """`[attachments] dir`, or "attachments" beside the SQLite file."""
    return Path(cfg.attachments.dir) if cfg.attachments.dir else Path(cfg.store.path).parent / "attachments"


async def resources(app: web.Application):
    cfg = app[CONFIG]
    chat = app[CHAT]
    store = chat.store
    attachments = Attachments(store, attachments_dir(cfg), cfg.attachments)
    attachments.contact_filter = cfg.filter.mode
    await attachments.start()
    store.message_hooks.append(attachments.on_message)
    chat.attachments = attachments
    chat.contact_filter = cfg.filter.mode
    app[ATTACHMENTS] = attachments
    online = getattr(chat, "online", chat.hub.online)  # joined to the order, on any instance
    app[THREADS] = Threads(store, online, cfg.limits.history_max)

    webhooks = None
    if cfg.webhooks.url:
        webhooks = Webhooks(store, cfg.webhooks, online)
        store.message_hooks.append(webhooks.on_message)
        store.order_hooks.append(webhooks.on_order)
        await webhooks.start()
    app[WEBHOOKS] = webhooks

    store.on_batch = metrics.observe_batch
    registry = metrics.app_registry(metrics.AppCollector(chat.hub, chat.relay, webhooks.backlog if webhooks else None))
    app[METRICS] = registry
    runner = None
    if cfg.metrics.port:
        from chatd.http_ext import metrics_app

        runner = web.AppRunner(metrics_app(registry), access_log=None)
        await runner.setup()
        # shared by the workers of `serve --workers N`, like the main port
        reuse = True if hasattr(socket, "SO_REUSEPORT") else None
        await web.TCPSite(runner, cfg.metrics.host, cfg.metrics.port, reuse_port=reuse).start()
    try:
        yield
    finally:
        if runner is not None:
            await runner.cleanup()
        store.on_batch = None
        if webhooks is not None:
            await webhooks.aclose()
        await attachments.aclose()
        app[THREADS].close()
        # the store hooks stay: writes still queued commit with their outbox events and links
