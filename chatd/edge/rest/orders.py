"""REST: orders. The host platform registers an order and its participants (api key);
operators read it back (api key or staff)."""

from __future__ import annotations

from typing import Annotated, TypedDict

import msgspec
from aiohttp import web

from chatd.chat import Chat
from chatd.edge.keys import CHAT
from chatd.edge.rest.common import API_KEY, body, json_response, principal, require_api_or_staff, viewer
from chatd.errors import Forbidden
from chatd.store.records import Contact, OrderRecord, Person
from chatd.wire import DisputeState, Id, Name, Participant, Status

# Contact fields: "" clears a stored value; absent keeps it. No U+0000 (\x00), as everywhere (wire.NO_NUL).
Email = Annotated[str, msgspec.Meta(max_length=254, pattern=r"^$|^[^@\s\x00]{1,64}@[^@\s\x00]+\.[^@\s\x00]+$")]
Phone = Annotated[str, msgspec.Meta(max_length=32, pattern=r"^$|^\+?[0-9][0-9 ()./-]{2,31}$")]
Locale = Annotated[str, msgspec.Meta(max_length=35, pattern=r"^$|^[A-Za-z]{2,3}([-_][A-Za-z0-9]{2,8}){0,3}$")]
AvatarUrl = Annotated[str, msgspec.Meta(max_length=2048, pattern=r"^https?://[^\s\"'<>\\\x00]+$")]


class PersonBody(msgspec.Struct, forbid_unknown_fields=True):
    id: Id
    name: Name
    avatar_url: AvatarUrl | None = None  # shown with the participant (each PUT naming them replaces it)
    email: Email | None = None  # for notifications only: never shown to other participants
    phone: Phone | None = None
    locale: Locale | None = None  # e.g. "de-DE": the language and times of their notifications

    def person(self) -> Person:
        return Person(self.id, self.name, self.avatar_url)

    def contact(self) -> Contact | None:
        if self.email is None and self.phone is None and self.locale is None:
            return None
        return Contact(self.email, self.phone, self.locale)


def contacts_of(*people: PersonBody | None | msgspec.UnsetType) -> dict[str, Contact]:
    """The contact data given for these participants, by user id."""
    return {p.id: c for p in people if isinstance(p, PersonBody) and (c := p.contact()) is not None}


class OrderBody(msgspec.Struct, forbid_unknown_fields=True):
    status: Status | None = None
    buyer: PersonBody | None = None
    supplier: PersonBody | None = None
    sales_rep: PersonBody | None | msgspec.UnsetType = msgspec.UNSET
    workflow: Id | None = None  # a new order's pipeline (default [workflow] default); a change needs its status in both
    force: bool = False  # make a status change its workflow does not allow (the message says `forced`)


class OrderJson(TypedDict):
    order: str
    status: str
    buyer: Person
    supplier: Person
    sales_rep: Person | None
    dispute: DisputeState | None
    last_seq: int
    participants: list[Participant]
    workflow: str
    closed: bool
    closes_at: int | None


def order_json(order: OrderRecord, online: frozenset[str] = frozenset(), closed: bool = False) -> OrderJson:
    return {
        "order": order.id,
        "status": order.status,
        "buyer": order.buyer,
        "supplier": order.supplier,
        "sales_rep": order.sales_rep,
        "dispute": order.dispute,
        "last_seq": order.last_seq,
        "participants": order.participants(online),
        "workflow": order.workflow,
        "closed": closed,
        "closes_at": order.closes_at,
    }


def _person(p: PersonBody | None) -> Person | None:
    return p.person() if p else None


async def put_order(request: web.Request) -> web.Response:
    if principal(request) is not API_KEY:
        raise Forbidden("api key required")
    order = await body(request, OrderBody)
    rep = ... if order.sales_rep is msgspec.UNSET else _person(order.sales_rep)
    chat: Chat = request.app[CHAT]
    change = await chat.register_order(
        request.match_info["order"],
        order.status,
        _person(order.buyer),
        _person(order.supplier),
        rep,
        workflow_name=order.workflow,
        force=order.force,
        contacts=contacts_of(order.buyer, order.supplier, order.sales_rep),
    )
    online = await chat.online_now(change.order.id)
    return json_response(order_json(change.order, online, chat.closed(change.order)), 201 if change.created else 200)


async def get_order(request: web.Request) -> web.Response:
    who = principal(request)
    require_api_or_staff(who)
    chat: Chat = request.app[CHAT]
    order = await chat.order(request.match_info["order"], viewer(who))
    return json_response(order_json(order, await chat.online_now(order.id), chat.closed(order)))


def add_routes(app: web.Application) -> None:
    app.router.add_put("/api/v1/orders/{order}", put_order)
    app.router.add_get("/api/v1/orders/{order}", get_order)
