"""REST: buyers. The host platform assigns a buyer's sales rep (api key): every order
of the buyer that follows its buyer's rep gets it at once."""

from __future__ import annotations

import msgspec
from aiohttp import web

from chatd.chat import Chat
from chatd.edge.keys import CHAT
from chatd.edge.rest.common import API_KEY, body, json_response, principal
from chatd.edge.rest.orders import PersonBody
from chatd.errors import Forbidden
from chatd.store.records import Person


class BuyerBody(msgspec.Struct, forbid_unknown_fields=True):
    sales_rep: PersonBody | None  # required: null unassigns


async def put_buyer(request: web.Request) -> web.Response:
    if principal(request) is not API_KEY:
        raise Forbidden("api key required")
    got = await body(request, BuyerBody)
    rep = Person(got.sales_rep.id, got.sales_rep.name) if got.sales_rep else None
    chat: Chat = request.app[CHAT]
    buyer = request.match_info["buyer"]
    changes = await chat.assign_buyer_rep(buyer, rep)
    return json_response(
        {
            "buyer": buyer,
            "sales_rep": rep,
            "orders": [c.order.id for c in changes],
            "changed": [c.order.id for c in changes if c.state_changed],
        }
    )


def add_routes(app: web.Application) -> None:
    app.router.add_put("/api/v1/buyers/{buyer}", put_buyer)
