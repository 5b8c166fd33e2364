"""REST: a user's notification preferences (e-mail on or off, muted orders), set by
the host platform (api key) or by the user themself."""

from __future__ import annotations

from typing import Annotated, TypedDict

import msgspec
from aiohttp import web

from chatd.edge.keys import CHAT
from chatd.edge.rest.common import ApiKey, body, json_response, principal
from chatd.errors import Forbidden
from chatd.store.records import NotifyPrefs
from chatd.wire import Id

MAX_MUTED = 1000


class PrefsBody(msgspec.Struct, forbid_unknown_fields=True):
    email: bool = True
    muted_orders: Annotated[list[Id], msgspec.Meta(max_length=MAX_MUTED)] = []


def _user(request: web.Request) -> str:
    user = request.match_info["user"]
    who = principal(request)
    if not isinstance(who, ApiKey) and who.id != user:
        raise Forbidden("the api key, or the user themself")
    return user


class PrefsJson(TypedDict):
    user: str
    email: bool
    muted_orders: list[str]


def _json(user: str, prefs: NotifyPrefs) -> web.Response:
    answer: PrefsJson = {"user": user, "email": prefs.email, "muted_orders": prefs.muted}
    return json_response(answer)


async def get_prefs(request: web.Request) -> web.Response:
    user = _user(request)
    return _json(user, await request.app[CHAT].notification_prefs(user))


async def put_prefs(request: web.Request) -> web.Response:
    user = _user(request)
    got = await body(request, PrefsBody)
    prefs = NotifyPrefs(got.email, sorted(set(got.muted_orders)))
    return _json(user, await request.app[CHAT].set_notification_prefs(user, prefs))


def add_routes(app: web.Application) -> None:
    app.router.add_get("/api/v1/users/{user}/notifications", get_prefs)
    app.router.add_put("/api/v1/users/{user}/notifications", put_prefs)
