"""The aiohttp application: routes, the services' lifetime, shutdown, `run`.

It is handed a factory of `Services` by the composition root (chatd.app) and
knows nothing of how they are built; the handlers reach them through the keys
of chatd.edge.keys.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware
from aiohttp.web_runner import GracefulExit
from prometheus_client import CollectorRegistry

from chatd import logs
from chatd.attachments import Attachments
from chatd.chat import Chat
from chatd.config import Config, ServerConfig
from chatd.edge import rest, static, ws
from chatd.edge.endpoint import Endpoint
from chatd.edge.keys import (
    ATTACHMENTS,
    CHAT,
    CONFIG,
    ENDPOINT,
    METRICS,
    NOTIFIER,
    QUEUE,
    REPLIES,
    SLA,
    THREADS,
    WEBHOOKS,
)
from chatd.edge.rest.metrics import listener as metrics_listener
from chatd.mail.addresses import ReplyAddresses
from chatd.notifier import Notifier
from chatd.sla import Escalator
from chatd.staff_queue import StaffQueue
from chatd.threads import Threads
from chatd.webhooks import Webhooks

log = logging.getLogger("chatd")


@dataclass(frozen=True)
class Services:
    """What the edge serves, started and ready."""

    chat: Chat
    attachments: Attachments
    threads: Threads
    webhooks: Webhooks | None
    metrics: CollectorRegistry
    sla: Escalator
    notifier: Notifier
    queue: StaffQueue
    replies: ReplyAddresses | None = None  # reply-by-e-mail addresses; None without [email] reply_domain


OpenServices = Callable[[Config], AbstractAsyncContextManager[Services]]


def forwarded_for(trusted: frozenset[str]) -> Middleware:
    """Behind a reverse proxy every peer is the proxy: from a `[server] trusted_proxies`
    address, the client is the rightmost `X-Forwarded-For` hop that is not a trusted
    proxy itself (what the proxy appended, not what a client wrote), so per-address limits
    and logs see clients. From any other peer the header is ignored."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        header = request.headers.get("X-Forwarded-For") if request.remote in trusted else None
        if header:
            hops = [h.strip() for h in header.split(",")[-16:] if h.strip()]
            client = next((h for h in reversed(hops) if h not in trusted), hops[0] if hops else None)
            if client:
                request = request.clone(remote=client[:64])
                logs.client_address(request, client[:64])
        return await handler(request)

    return middleware


def application(cfg: Config, open_services: OpenServices) -> web.Application:
    middlewares: list[Middleware] = [rest.errors_middleware]
    if cfg.server.trusted_proxies:
        middlewares.insert(0, forwarded_for(frozenset(cfg.server.trusted_proxies)))
    middlewares.insert(0, logs.context)  # first: the clones share its request line
    # room for what the routes accept (docs/openapi.json): a token of TOKEN_CHARS in ?token= or
    # the Authorization header, a search of QUERY_CHARS characters percent-encoded; beyond,
    # aiohttp answers 400 itself
    app = web.Application(
        middlewares=middlewares,
        client_max_size=1 << 20,
        handler_args={"max_line_size": 65536, "max_field_size": 16384},
    )
    app[CONFIG] = cfg
    app[ENDPOINT] = Endpoint(cfg)

    async def services(app: web.Application) -> AsyncIterator[None]:
        """Open while the app runs: started before the first request, stopped after the last."""
        async with open_services(cfg) as s:
            app[CHAT] = s.chat
            app[ATTACHMENTS] = s.attachments
            app[THREADS] = s.threads
            app[WEBHOOKS] = s.webhooks
            app[METRICS] = s.metrics
            app[SLA] = s.sla
            app[QUEUE] = s.queue
            app[REPLIES] = s.replies
            app[NOTIFIER] = s.notifier
            app[ENDPOINT].serve(s.chat, s.queue)
            async with metrics_listener(cfg.metrics, s.metrics):
                yield

    app.cleanup_ctx.append(services)
    app.on_response_prepare.append(_server_header)
    app.on_shutdown.append(ws.close_all)
    app.router.add_get("/ws", ws.handle)
    rest.add_routes(app, cfg)
    static.add_routes(app)  # /widget.js, /widget.css, /demo (files from web/)
    return app


async def _server_header(request: web.Request, response: web.StreamResponse) -> None:
    """`Server: chatd`, not aiohttp's default, which names the Python and aiohttp
    versions to anyone looking for a known hole."""
    response.headers["Server"] = "chatd"


def run(
    app: web.Application,
    server: ServerConfig,
    reuse_port: bool,
    on_listening: Callable[[str], None],
    request_lines: bool = False,
) -> None:
    """Serve `app` until SIGINT/SIGTERM, then shut down within `shutdown_timeout_s`.
    `request_lines`: one log line per request (chatd.logs.AccessLogger, `[log] format = "json"`)."""
    app.on_startup.append(_stop_once_on_signals)
    web.run_app(
        app,
        handle_signals=False,
        host=server.host,
        port=server.port,
        shutdown_timeout=server.shutdown_timeout_s,
        access_log=logging.getLogger("chatd.access") if request_lines else None,
        access_log_class=logs.AccessLogger,
        reuse_port=reuse_port or None,
        print=on_listening,
    )


STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


async def _stop_once_on_signals(app: web.Application) -> None:
    """The first SIGINT or SIGTERM starts the graceful shutdown; the next are only
    logged. aiohttp's own handlers raised GracefulExit again on a second signal (a
    double Ctrl-C, or `timeout` signalling the process group), inside its cleanup:
    the store was never closed and the process hung until SIGKILL."""
    loop = asyncio.get_running_loop()

    def again(sig: signal.Signals) -> None:
        log.warning("%s: already shutting down (SIGKILL stops at once)", sig.name)

    def stop() -> None:
        for sig in STOP_SIGNALS:
            loop.add_signal_handler(sig, again, sig)
        raise GracefulExit()

    for sig in STOP_SIGNALS:
        loop.add_signal_handler(sig, stop)
