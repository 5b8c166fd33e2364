"""The composition root: the one place that knows every piece and wires them."""

from __future__ import annotations

import asyncio
import logging
import weakref

from aiohttp import web

from chatd import features, http, http_ext, ws
from chatd.appkeys import CHAT, CONFIG, SOCKETS, UNAUTHENTICATED
from chatd.chat import Chat
from chatd.config import Config
from chatd.errors import CloseCode
from chatd.relay.base import Relay
from chatd.relay.local import LocalRelay
from chatd.rooms.hub import Hub
from chatd.store.sqlite import SqliteStore
from chatd.wire import Presence, encode_frame
from chatd.web import add_routes as add_web_routes

log = logging.getLogger("chatd")


def presence_frame(order: str, user: str, online: bool) -> bytes:
    return encode_frame(Presence(order, user, online))


def make_relay(cfg: Config) -> Relay:
    if cfg.relay.url:
        from chatd.relay.redis import RedisRelay

        return RedisRelay(cfg.relay.url, presence_frame)
    return LocalRelay()


async def _resources(app: web.Application):
    """Store, relay, hub and chat: opened in order, closed in reverse."""
    cfg = app[CONFIG]
    store = SqliteStore(cfg.store.path, cfg.store.synchronous, cfg.store.max_batch)
    await store.open()
    relay = make_relay(cfg)
    hub = Hub(cfg.limits.outbound_queue_frames, cfg.limits.outbound_buffer_bytes,
              on_room_idle=relay.watch_room, on_user_idle=relay.watch_user,
              queue_bytes=cfg.limits.outbound_queue_bytes)
    chat = Chat(store, hub, relay, cfg.limits)
    hub.gap_reader = chat.read_gap
    await relay.start(chat)
    await chat.start(catch_up_s=2.0 if cfg.relay.url else 0.0)
    app[CHAT] = chat
    try:
        yield
    finally:
        await chat.aclose()
        await relay.aclose()
        await store.aclose()  # flushes every queued write first


async def _close_sockets(app: web.Application) -> None:
    """Shutdown: every open WebSocket is closed with 1001 (reconnect elsewhere)."""
    app[CHAT].closing = True
    sockets = list(app[SOCKETS])
    if sockets:
        await asyncio.gather(
            *(ws.close(code=CloseCode.GOING_AWAY, message=b"server shutting down", drain=False)
              for ws in sockets),
            return_exceptions=True,
        )


def create_app(cfg: Config) -> web.Application:
    app = web.Application(middlewares=[http.errors_middleware], client_max_size=1 << 20)
    app[CONFIG] = cfg
    app[SOCKETS] = weakref.WeakSet()
    app[UNAUTHENTICATED] = {}
    app.cleanup_ctx.append(_resources)
    app.cleanup_ctx.append(features.resources)  # attachments, threads, webhooks, metrics
    app.on_shutdown.append(_close_sockets)
    app.router.add_get("/ws", ws.handle)
    http.add_routes(app)
    http_ext.add_routes(app)  # threads, attachments, /metrics
    add_web_routes(app)  # /widget.js, /widget.css, /demo (files from web/)
    return app
