"""The demo bot of `chatd demo` (registered by it only): posts the next delivery step as a status update."""

from __future__ import annotations

import uuid

from aiohttp import web

from chatd.auth.tokens import verify
from chatd.edge.keys import CHAT, CONFIG
from chatd.errors import Unauthorized
from chatd.store.records import OrderRecord
from chatd.store.rows import Actor

BOT = Actor("delivery-bot", "Delivery Bot", "bot", "*")
STEPS = [
    ("confirmed", "Order confirmed. Estimated dispatch: tomorrow morning."),
    ("packed", "Packed: 2 parcels, 14.2 kg. Waiting for the carrier."),
    ("shipped", "Shipped with Parcel Express. Track it at https://tracking.example.com/PX-1001-DE"),
    ("out_for_delivery", "Out for delivery today between 10:00 and 14:00."),
    ("delivered", "Delivered and signed for at the loading dock."),
]


def _next_step(status: str | None) -> tuple[str, str]:
    names = [s for s, _ in STEPS]
    i = names.index(status) + 1 if status in names else 0
    return STEPS[i % len(STEPS)]


def add_demo_bot(app: web.Application, order_id: str) -> None:
    """GET /demo/bot?order=…: what the bot would post next; POST: post it as a status update.

    The order is the page's (`order`, default `order_id`): the button is on every
    demo order page. Only a caller with access to that order may ask (their
    connection token as Bearer); anyone else gets what a missing order answers.
    """

    async def check(request: web.Request) -> tuple[str, OrderRecord]:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise Unauthorized("Authorization: Bearer <token> is required")
        oid = request.query.get("order") or order_id
        return oid, await request.app[CHAT].order_for(verify(token, request.app[CONFIG].auth.secret), oid)

    async def get(request: web.Request) -> web.Response:
        oid, order = await check(request)
        status, _ = _next_step(order.status)
        return web.json_response({"bot": BOT.name, "order": oid, "status": order.status, "next": status})

    async def post(request: web.Request) -> web.Response:
        oid, order = await check(request)
        status, text = _next_step(order.status)
        ack = await request.app[CHAT].set_status(BOT, oid, status, str(uuid.uuid4()), text)
        return web.json_response({"order": oid, "status": status, "seq": ack.seq}, status=201)

    app.router.add_get("/demo/bot", get)
    app.router.add_post("/demo/bot", post)
