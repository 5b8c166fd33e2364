"""REST: /healthz (what is wrong) and /readyz (may a load balancer send connections here)."""

from __future__ import annotations

import logging
import os
from typing import NotRequired, TypedDict

from aiohttp import web

from chatd.chat import Chat
from chatd.edge.keys import CHAT
from chatd.edge.rest.common import json_response
from chatd.errors import ChatError

log = logging.getLogger("chatd.http")


class HealthJson(TypedDict):
    status: str  # "ok", "degraded" (the relay), "unavailable" (503: the store)
    store: str
    relay: str
    pid: NotRequired[int]


class ReadyJson(TypedDict):
    ready: bool
    relay: NotRequired[str]
    reason: NotRequired[str]  # why not (503)


async def healthz(request: web.Request) -> web.Response:
    chat: Chat = request.app[CHAT]
    relay = "ok" if chat.relay_healthy else "degraded"
    try:
        await chat.check_writable()
    except (ChatError, Exception) as exc:  # noqa: BLE001 - any failure means "cannot serve"
        log.warning("health check: store not writable: %s", exc)
        down: HealthJson = {"status": "unavailable", "store": "error", "relay": relay}
        return json_response(down, 503)
    up: HealthJson = {
        "status": "ok" if relay == "ok" else "degraded",
        "store": "ok",
        "relay": relay,
        "pid": os.getpid(),
    }
    return json_response(up)


async def readyz(request: web.Request) -> web.Response:
    """For load balancers: 503 while this instance cannot take connections
    (shutting down, or the store refuses writes). A degraded relay still
    serves: messages are stored and local rooms work."""
    chat: Chat = request.app[CHAT]
    answer: ReadyJson
    if chat.closing:
        answer = {"ready": False, "reason": "shutting down"}
        return json_response(answer, 503)
    try:
        await chat.check_writable()
    except Exception as exc:  # noqa: BLE001
        answer = {"ready": False, "reason": f"store: {exc}"}
        return json_response(answer, 503)
    answer = {"ready": True, "relay": "ok" if chat.relay_healthy else "degraded"}
    return json_response(answer)


def add_routes(app: web.Application) -> None:
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
