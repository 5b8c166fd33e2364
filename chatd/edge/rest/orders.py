"""REST: orders. The host platform registers an order and its participants (api key);
operators read it back (api key or staff)."""

from __future__ import annotations

from typing import TypedDict

import msgspec
from aiohttp import web

from chatd.chat import Chat
from chatd.edge.keys import CHAT
from chatd.edge.rest.common import API_KEY, body, json_response, principal, require_api_or_staff
from chatd.errors import Forbidden
from chatd.store.records import OrderRecord, Person
from chatd.wire import DisputeState, Id, Name, Participant, Status


class PersonBody(msgspec.Struct, forbid_unknown_fields=True):
    id: Id
    name: Name


class OrderBody(msgspec.Struct, forbid_unknown_fields=True):
    status: Status | None = None
    buyer: PersonBody | None = None
    supplier: PersonBody | None = None
    sales_rep: PersonBody | None | msgspec.UnsetType = msgspec.UNSET


class OrderJson(TypedDict):
    order: str
    status: str
    buyer: Person
    supplier: Person
    sales_rep: Person | None
    dispute: DisputeState | None
    last_seq: int
    participants: list[Participant]


def order_json(order: OrderRecord, online: frozenset[str] = frozenset()) -> OrderJson:
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


def _person(p: PersonBody | None) -> Person | None:
    return Person(p.id, p.name) if p else None


async def put_order(request: web.Request) -> web.Response:
    if principal(request) is not API_KEY:
        raise Forbidden("api key required")
    order = await body(request, OrderBody)
    rep = ... if order.sales_rep is msgspec.UNSET else _person(order.sales_rep)
    chat: Chat = request.app[CHAT]
    change = await chat.register_order(
        request.match_info["order"], order.status, _person(order.buyer), _person(order.supplier), rep
    )
    online = await chat.online_now(change.order.id)
    return json_response(order_json(change.order, online), 201 if change.created else 200)


async def get_order(request: web.Request) -> web.Response:
    require_api_or_staff(principal(request))
    chat: Chat = request.app[CHAT]
    order = await chat.order(request.match_info["order"])
    return json_response(order_json(order, await chat.online_now(order.id)))


def add_routes(app: web.Application) -> None:
    app.router.add_put("/api/v1/orders/{order}", put_order)
    app.router.add_get("/api/v1/orders/{order}", get_order)
