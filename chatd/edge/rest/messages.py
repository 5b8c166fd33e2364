"""REST: an order's messages and read markers. Reading goes through the same
use cases as the WebSocket edge (`Chat.messages_page`, `Chat.export`); a bot
or the api key posts with `Chat.send`."""

from __future__ import annotations

from typing import TypedDict

import msgspec
from aiohttp import web

from chatd.chat import Chat, actor_of
from chatd.edge.keys import CHAT
from chatd.edge.rest.common import ApiKey, body, int_param, json_response, principal, require_api_or_staff, viewer
from chatd.errors import BadRequest, Forbidden
from chatd.store.rows import SYSTEM  # who posts with the api key
from chatd.wire import ClientId, Id, Message, Seq, encode


class PostBody(msgspec.Struct, forbid_unknown_fields=True):
    client_id: ClientId
    text: str
    kind: str = "text"


class ReadBody(msgspec.Struct, forbid_unknown_fields=True):
    user: Id
    seq: Seq


class MessagesJson(TypedDict):
    order: str
    messages: list[Message]
    has_more: bool


_QUERY = frozenset({"before", "after", "limit", "format"})


async def get_messages(request: web.Request) -> web.StreamResponse:
    who = viewer(principal(request))
    chat: Chat = request.app[CHAT]
    order_id = request.match_info["order"]
    if unknown := sorted(set(request.query) - _QUERY):
        raise BadRequest(f"unknown parameter {unknown[0]}: messages take {', '.join(sorted(_QUERY))}")
    if (form := request.query.get("format") or "json") not in ("json", "ndjson"):
        raise BadRequest("format must be json or ndjson")
    if form == "ndjson":
        chunks = await chat.export(who, order_id)  # access is checked here, before the response starts
        resp = web.StreamResponse(headers={"Content-Type": "application/x-ndjson"})
        await resp.prepare(request)
        try:
            async for chunk in chunks:  # and again before each chunk: the chunks end where access does
                await resp.write(b"".join(encode(m) + b"\n" for m in chunk))
            await resp.write_eof()
        except ConnectionError:  # the reader went away mid-export: nobody to answer, nothing to log
            pass
        return resp
    page = await chat.messages_page(
        who, order_id, int_param(request, "before"), int_param(request, "after"), int_param(request, "limit")
    )
    answer: MessagesJson = {"order": order_id, "messages": page.messages, "has_more": page.has_more}
    return json_response(answer)


async def post_message(request: web.Request) -> web.Response:
    who = principal(request)
    if not isinstance(who, ApiKey) and who.role != "bot":
        raise Forbidden("api key or bot token required")
    post = await body(request, PostBody)
    if post.kind not in ("text", "system"):
        raise BadRequest("kind must be text or system")
    chat: Chat = request.app[CHAT]
    ack = await chat.send(
        SYSTEM if isinstance(who, ApiKey) else actor_of(who),
        request.match_info["order"],
        post.client_id,
        post.text,
        post.kind,
    )
    return json_response(ack, 200 if ack.duplicate else 201)


async def post_read(request: web.Request) -> web.Response:
    who = principal(request)
    require_api_or_staff(who)
    read = await body(request, ReadBody)
    chat: Chat = request.app[CHAT]
    return json_response(await chat.set_marker(request.match_info["order"], read.user, read.seq, viewer(who)))


def add_routes(app: web.Application) -> None:
    app.router.add_get("/api/v1/orders/{order}/messages", get_messages)
    app.router.add_post("/api/v1/orders/{order}/messages", post_message)
    app.router.add_post("/api/v1/orders/{order}/read", post_read)
