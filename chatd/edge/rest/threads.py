"""REST: the thread list for operators and the supplier side (chatd.threads does the work),
and marking many threads read or unread for staff (chatd.staff_queue)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated

import msgspec
from aiohttp import web

from chatd.attention import MAX_BULK
from chatd.auth import permissions
from chatd.edge.keys import QUEUE, THREADS
from chatd.edge.rest.common import ApiKey, body, int_param, json_response, principal, require_api_or_staff, viewer
from chatd.errors import BadRequest, Forbidden
from chatd.threads import ThreadQuery
from chatd.wire import Id, Seq

FILTERS = frozenset(ThreadQuery.__struct_fields__)  # every query parameter GET /api/v1/threads takes


async def get_threads(request: web.Request) -> web.Response:
    """Api key and staff: every order (but a staff token's id's orders as buyer). A supplier
    or sales rep token: the orders where that user holds the supplier or sales rep slot
    (notes included: they may read them)."""
    who = principal(request)
    scope = staff = None
    if not isinstance(who, ApiKey) and who.role == "staff":
        staff = who.id
    elif not isinstance(who, ApiKey):
        if who.role not in permissions.SUPPLIER_SIDE:
            raise Forbidden("api key, staff or a supplier-side token required")
        scope = who.id
    q = request.query
    unknown = sorted(set(q) - FILTERS)
    if unknown:
        raise BadRequest(f"unknown parameter {unknown[0]}: threads take {', '.join(sorted(FILTERS))}")
    limit = int_param(request, "limit")
    try:
        query = _query(q, limit)
    except msgspec.ValidationError as exc:
        raise BadRequest(f"invalid query: {exc}") from exc
    return json_response(await request.app[THREADS].apage(query, scope, staff))


def _query(q: Mapping[str, str], limit: int | None) -> ThreadQuery:
    return msgspec.convert(
        dict(  # checks the bounds of ThreadQuery's fields
            dispute=q.get("dispute") or None,
            unread_for=q.get("unread_for") or None,
            has_messages=(q.get("has_messages") or "true").lower(),
            q=q.get("q") or None,
            status=q.get("status") or None,
            awaiting_reply=(q.get("awaiting_reply") or "").lower() or None,
            overdue=(q.get("overdue") or "").lower() or None,
            attention=(q.get("attention") or "").lower() or None,
            limit=50 if limit is None else limit,
            cursor=q.get("cursor") or None,
        ),
        ThreadQuery,
    )


class ThreadsReadBody(msgspec.Struct, forbid_unknown_fields=True):
    orders: Annotated[list[Id], msgspec.Meta(min_length=1, max_length=MAX_BULK)]
    seq: Seq | None = None  # read up to it (clamped); absent: up to each order's newest message
    unread: bool = False  # instead: mark each unread


async def read_threads(request: web.Request) -> web.Response:
    """Api key and staff: many threads read or unread at once, for staff as a whole."""
    who = principal(request)
    require_api_or_staff(who)
    got = await body(request, ThreadsReadBody)
    return json_response(await request.app[QUEUE].read_threads(viewer(who), got.orders, got.seq, got.unread))


# The staff console embedded on a platform's own pages (another origin than chatd's)
# lists threads and marks them read with the staff token as Bearer, never a cookie:
# these two routes answer any origin, errors included, as the attachment routes do.
_CORS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Headers": "Authorization, Content-Type",
    "Access-Control-Allow-Methods": "GET, POST",
    "Access-Control-Max-Age": "600",
}
_CORS_PATHS = frozenset({"/api/v1/threads", "/api/v1/threads/read"})


async def _add_cors(request: web.Request, response: web.StreamResponse) -> None:
    if request.path in _CORS_PATHS:
        response.headers.update(_CORS)


async def _preflight(request: web.Request) -> web.Response:
    return web.Response(status=204)


def add_routes(app: web.Application) -> None:
    app.router.add_get("/api/v1/threads", get_threads)
    app.router.add_post("/api/v1/threads/read", read_threads)
    app.router.add_route("OPTIONS", "/api/v1/threads", _preflight)
    app.router.add_route("OPTIONS", "/api/v1/threads/read", _preflight)
    app.on_response_prepare.append(_add_cors)
