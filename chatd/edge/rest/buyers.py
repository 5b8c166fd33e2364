"""REST: buyers. The host platform assigns a buyer's sales rep (api key): every order
of the buyer that follows its buyer's rep gets it at once."""

from __future__ import annotations

from typing import TypedDict

import msgspec
from aiohttp import web

from chatd.chat import Chat
from chatd.edge.keys import CHAT
from chatd.edge.rest.common import API_KEY, body, json_response, principal
from chatd.edge.rest.orders import Email, Locale, PersonBody, Phone, contacts_of
from chatd.errors import Forbidden
from chatd.store.records import Contact, Person


class ContactBody(msgspec.Struct, forbid_unknown_fields=True):
    """The buyer's own contact data (as a participant's in PUT /api/v1/orders)."""

    email: Email | None = None
    phone: Phone | None = None
    locale: Locale | None = None


class BuyerBody(msgspec.Struct, forbid_unknown_fields=True):
    sales_rep: PersonBody | None  # required: null unassigns
    contact: ContactBody | None = None


class BuyerJson(TypedDict):
    buyer: str
    sales_rep: Person | None
    orders: list[str]  # the orders following the buyer's rep
    changed: list[str]  # ... of which the rep changed


async def put_buyer(request: web.Request) -> web.Response:
    if principal(request) is not API_KEY:
        raise Forbidden("api key required")
    got = await body(request, BuyerBody)
    rep = got.sales_rep.person() if got.sales_rep else None
    chat: Chat = request.app[CHAT]
    buyer = request.match_info["buyer"]
    contacts = contacts_of(got.sales_rep)
    if got.contact is not None:
        contacts[buyer] = Contact(got.contact.email, got.contact.phone, got.contact.locale)
    changes = await chat.assign_buyer_rep(buyer, rep, contacts)
    answer: BuyerJson = {
        "buyer": buyer,
        "sales_rep": rep,
        "orders": [c.order.id for c in changes],
        "changed": [c.order.id for c in changes if c.state_changed],
    }
    return json_response(answer)


def add_routes(app: web.Application) -> None:
    app.router.add_put("/api/v1/buyers/{buyer}", put_buyer)
