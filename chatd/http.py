"""The REST edge (same port as /ws): api-key or JWT callers, JSON in and out.

Errors answer `{"error": {"code", "message"}}` with the status of the code.
"""

from __future__ import annotations

import hmac
import os
import logging

import msgspec
from aiohttp import web

from chatd.appkeys import CHAT, CONFIG
from chatd.auth import permissions
from chatd.auth.tokens import Identity, verify
from chatd.chat import Chat
from chatd.errors import BadRequest, ChatError, Forbidden, NotFound, Unauthorized
from chatd.store.records import OrderRecord, Person
from chatd.store.rows import Actor
from chatd.wire import MAX_INT, ClientId, Id, Name, Seq, Status, decode_json, encode

log = logging.getLogger("chatd.http")
API = "api"  # the principal of a request made with the api key


class PersonBody(msgspec.Struct, forbid_unknown_fields=True):
    id: Id
    name: Name


class OrderBody(msgspec.Struct, forbid_unknown_fields=True):
    status: Status | None = None
    buyer: PersonBody | None = None
    supplier: PersonBody | None = None
    sales_rep: PersonBody | None | msgspec.UnsetType = msgspec.UNSET


class PostBody(msgspec.Struct, forbid_unknown_fields=True):
    client_id: ClientId
    text: str
    kind: str = "text"


class ReadBody(msgspec.Struct, forbid_unknown_fields=True):
    user: Id
    seq: Seq


def _json(data, status: int = 200) -> web.Response:
    return web.Response(body=encode(data), status=status, content_type="application/json")


def error_response(code: str, message: str, status: int) -> web.Response:
    return _json({"error": {"code": code, "message": message}}, status)


@web.middleware
async def errors_middleware(request: web.Request, handler):
    try:
        return await handler(request)
    except ChatError as exc:
        return error_response(exc.code, exc.message, exc.http_status)
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        return error_response("bad_request", f"invalid body: {exc}", 400)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code = {404: "not_found", 405: "bad_request", 413: "too_large"}.get(exc.status, "bad_request")
        return error_response(code, exc.reason, exc.status)


def _principal(request: web.Request) -> Identity | str:
    header = request.headers.get("Authorization", "")
    scheme, _, credential = header.partition(" ")
    if scheme.lower() != "bearer" or not credential:
        raise Unauthorized("Authorization: Bearer <api key or token> is required")
    cfg = request.app[CONFIG]
    if cfg.auth.api_key and hmac.compare_digest(credential.encode(), cfg.auth.api_key.encode()):
        return API
    return verify(credential, cfg.auth.secret)


def _require_api_or_staff(who) -> None:
    if who != API and who.role != "staff":
        raise Forbidden("api key or staff token required")


async def _body(request: web.Request, kind):
    return decode_json(await request.read(), kind)


def _int_param(request: web.Request, name: str) -> int | None:
    """A query integer within what the store holds (0 to 2^63-1)."""
    raw = request.query.get(name)
    if raw is None or raw == "":
        return None
    try:
        if len(raw) > 20:
            raise ValueError(raw)
        value = int(raw)
        if not 0 <= value <= MAX_INT:
            raise ValueError(raw)
    except ValueError as exc:
        raise BadRequest(f"{name} must be an integer from 0 to {MAX_INT}") from exc
    return value


def order_json(order: OrderRecord, online=frozenset()) -> dict:
    return {
        "order": order.id,
        "status": order.status,
        "buyer": order.buyer,
        "supplier": order.supplier,
        "sales_rep": order.sales_rep,
        "dispute": order.dispute,
        "last_seq": order.last_seq,
        "participants": order.participants(online),
    }


async def put_order(request: web.Request) -> web.Response:
    if _principal(request) != API:
        raise Forbidden("api key required")
    body = await _body(request, OrderBody)
    order_id = request.match_info["order"]
    if not order_id or len(order_id) > 200:
        raise BadRequest("order id must be 1 to 200 characters")
    rep = body.sales_rep
    rep_arg = ... if rep is msgspec.UNSET else (Person(rep.id, rep.name) if rep else None)
    chat: Chat = request.app[CHAT]
    change = await chat.store.put_order(
        order_id,
        body.status,
        Person(body.buyer.id, body.buyer.name) if body.buyer else None,
        Person(body.supplier.id, body.supplier.name) if body.supplier else None,
        rep_arg,
    )
    chat.publish_change(change)
    return _json(order_json(change.order, chat.hub.online(order_id)), 201 if change.created else 200)


async def get_order(request: web.Request) -> web.Response:
    _require_api_or_staff(_principal(request))
    chat: Chat = request.app[CHAT]
    order_id = request.match_info["order"]
    order = await chat.store.get_order(order_id)
    if order is None:
        raise NotFound("no such order", ref=order_id)
    return _json(order_json(order, chat.hub.online(order_id)))


async def _reader_sees_notes(chat: Chat, who, order_id: str) -> bool:
    """Whether this REST caller may read the order, and if notes are shown."""
    if who == API:
        if await chat.store.get_order(order_id) is None:
            raise NotFound("no such order", ref=order_id)
        return True
    _, role = await chat._order_and_role(who, order_id)
    return permissions.sees_notes(role)


async def get_messages(request: web.Request) -> web.StreamResponse:
    who = _principal(request)
    chat: Chat = request.app[CHAT]
    order_id = request.match_info["order"]
    sees = await _reader_sees_notes(chat, who, order_id)
    if request.query.get("format") == "ndjson":
        resp = web.StreamResponse(headers={"Content-Type": "application/x-ndjson"})
        await resp.prepare(request)
        async for chunk in chat.store.export(order_id, sees):
            await resp.write(b"".join(encode(m) + b"\n" for m in chunk))
        await resp.write_eof()
        return resp
    limit = chat._page_limit(_int_param(request, "limit"))
    msgs, more = await chat.store.history(order_id, sees, _int_param(request, "before"),
                                    _int_param(request, "after"), limit)
    return _json({"order": order_id, "messages": msgs, "has_more": more})


async def post_message(request: web.Request) -> web.Response:
    who = _principal(request)
    if who != API and who.role != "bot":
        raise Forbidden("api key or bot token required")
    body = await _body(request, PostBody)
    if body.kind not in ("text", "system"):
        raise BadRequest("kind must be text or system")
    order_id = request.match_info["order"]
    actor = Actor("system", "System", "system") if who == API else Actor(who.id, who.name, who.role, who.orders)
    chat: Chat = request.app[CHAT]
    ack = await chat.send(actor, order_id, body.client_id, body.text, body.kind)
    return _json(ack, 200 if ack.duplicate else 201)


async def post_read(request: web.Request) -> web.Response:
    _require_api_or_staff(_principal(request))
    body = await _body(request, ReadBody)
    chat: Chat = request.app[CHAT]
    return _json(await chat.set_marker(request.match_info["order"], body.user, body.seq))


async def healthz(request: web.Request) -> web.Response:
    chat: Chat = request.app[CHAT]
    relay = "ok" if chat.broker.healthy else "degraded"
    try:
        await chat.store.check_writable()
    except (ChatError, Exception) as exc:  # noqa: BLE001 - any failure means "cannot serve"
        log.warning("health check: store not writable: %s", exc)
        return _json({"status": "unavailable", "store": "error", "relay": relay}, 503)
    return _json({"status": "ok" if relay == "ok" else "degraded", "store": "ok", "relay": relay,
                  "pid": os.getpid()})


async def readyz(request: web.Request) -> web.Response:
    """For load balancers: 503 while this instance cannot take connections
    (shutting down, or the store refuses writes). A degraded relay still
    serves: messages are stored and local rooms work."""
    chat: Chat = request.app[CHAT]
    if chat.closing:
        return _json({"ready": False, "reason": "shutting down"}, 503)
    try:
        await chat.store.check_writable()
    except Exception as exc:  # noqa: BLE001
        return _json({"ready": False, "reason": f"store: {exc}"}, 503)
    return _json({"ready": True, "relay": "ok" if chat.broker.healthy else "degraded"})


def add_routes(app: web.Application) -> None:
    app.router.add_put("/api/v1/orders/{order}", put_order)
    app.router.add_get("/api/v1/orders/{order}", get_order)
    app.router.add_get("/api/v1/orders/{order}/messages", get_messages)
    app.router.add_post("/api/v1/orders/{order}/messages", post_message)
    app.router.add_post("/api/v1/orders/{order}/read", post_read)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)

