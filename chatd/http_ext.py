"""REST routes for admin threads, attachments and /metrics.

Same conventions as chatd.http (Bearer api key or JWT, JSON errors through
its middleware); the services live in chatd.threads, chatd.attachments and
chatd.metrics, wired by chatd.features.
"""

from __future__ import annotations

from urllib.parse import unquote

import msgspec
from aiohttp import web
from aiohttp.http_exceptions import BadHttpMessage
from aiohttp.multipart import BadContentDispositionHeader, BadContentDispositionParam

from chatd import metrics
from chatd.appkeys import CONFIG
from chatd.attachments import content_disposition
from chatd.auth.tokens import verify
from chatd.errors import BadRequest, ChatError, Forbidden, TooLarge
from chatd.features import ATTACHMENTS, METRICS, THREADS
from chatd.http import API, _int_param, _json, _principal
from chatd.threads import ThreadQuery

CHUNK_BYTES = 64 * 1024
SUPPLIER_SIDE = frozenset({"supplier", "sales_rep"})


async def get_threads(request: web.Request) -> web.Response:
    """Api key and staff: every order (but a staff token's id's orders as buyer). A supplier
    or sales rep token: the orders where that user holds the supplier or sales rep slot
    (notes included: they may read them)."""
    who = _principal(request)
    scope = staff = None
    if who != API and who.role == "staff":
        staff = who.id
    elif who != API:
        if who.role not in SUPPLIER_SIDE:
            raise Forbidden("api key, staff or a supplier-side token required")
        scope = who.id
    q = request.query
    limit = _int_param(request, "limit")
    query = msgspec.convert(dict(  # checks the bounds of ThreadQuery's fields
        dispute=q.get("dispute") or None,
        unread_for=q.get("unread_for") or None,
        has_messages=(q.get("has_messages") or "true").lower(),
        q=q.get("q") or None,
        limit=50 if limit is None else limit,
        cursor=q.get("cursor") or None,
    ), ThreadQuery)
    return _json(await request.app[THREADS].apage(query, scope, staff))


async def post_attachment(request: web.Request) -> web.Response:
    """Multipart upload, field `file`; streamed to disk in 64 KiB chunks."""
    who = _principal(request)
    if who == API:
        raise Forbidden("uploads need the token of someone on the order")
    service = request.app[ATTACHMENTS]
    if request.content_length is not None and request.content_length > service.max_bytes + CHUNK_BYTES:
        metrics.UPLOADS.labels("too_large").inc()
        raise TooLarge(f"attachments are limited to {service.max_bytes} bytes")
    if not request.content_type.startswith("multipart/"):
        raise BadRequest("multipart/form-data with a part named file expected")
    try:
        part = await _file_part(request)
    except MULTIPART_ERRORS as exc:
        raise BadRequest(f"malformed multipart body: {exc}") from None
    if part is None:
        raise BadRequest("multipart/form-data with a part named file expected")

    async def chunks():
        try:
            while chunk := await part.read_chunk(CHUNK_BYTES):
                yield chunk
        except MULTIPART_ERRORS as exc:
            raise BadRequest(f"malformed multipart body: {exc}") from None

    try:
        # browsers escape '"' and CR/LF in multipart file names as %22, %0D, %0A; aiohttp's
        # client escapes everything non-ASCII: percent-decode (a literal "%" survives as %25)
        name = unquote(part.filename) if part.filename else None
        att = await service.upload(who, request.match_info["order"], name, chunks())
    except ChatError as exc:
        metrics.UPLOADS.labels(exc.code).inc()
        raise
    metrics.UPLOADS.labels("ok").inc()
    return _json(att, 201)


# what aiohttp's multipart reader raises on a malformed body (no or a too long
# boundary, a bad part header, a body without its boundaries); a malformed
# Content-Disposition is a warning, raised where warnings are errors
MULTIPART_ERRORS = (ValueError, BadHttpMessage, BadContentDispositionHeader,
                    BadContentDispositionParam)


async def _file_part(request: web.Request):
    """The first part named `file` (other parts are skipped), or None."""
    reader = await request.multipart()
    while True:
        candidate = await reader.next()
        if candidate is None:
            return None
        if getattr(candidate, "name", None) == "file" and hasattr(candidate, "read_chunk"):
            return candidate
        await candidate.release()


async def get_attachment(request: web.Request) -> web.StreamResponse:
    """The file, to those who may see a message carrying it (others: 404). `?token=` is
    accepted instead of the header, so a page can link to it."""
    token = request.query.get("token")
    if token and "Authorization" not in request.headers:
        who = verify(token, request.app[CONFIG].auth.secret)
    else:
        who = _principal(request)
    path, att = request.app[ATTACHMENTS].locate(None if who == API else who, request.match_info["id"])
    mime = att.mime + ("; charset=utf-8" if att.mime.startswith("text/") else "")
    return web.FileResponse(path, headers={
        "Content-Type": mime,
        "Content-Disposition": content_disposition(att.name),
        "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": "default-src 'none'; sandbox",
        "Cache-Control": "private, max-age=300",
    })


async def get_metrics(request: web.Request) -> web.Response:
    return web.Response(body=metrics.exposition(request.app[METRICS]), headers={"Content-Type": metrics.CONTENT_TYPE})


# The widget runs on the host platform's pages, another origin than chatd's,
# and uploads and downloads attachments with the participant's bearer token
# (no cookies): those two routes answer any origin, errors included.
_CORS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Headers": "Authorization, Content-Type",
    "Access-Control-Allow-Methods": "GET, POST",
    "Access-Control-Expose-Headers": "Content-Disposition",
    "Access-Control-Max-Age": "600",
}


def _is_attachment_route(path: str) -> bool:
    return path.startswith("/api/v1/attachments/") or (
        path.startswith("/api/v1/orders/") and path.endswith("/attachments"))


async def _add_cors(request: web.Request, response: web.StreamResponse) -> None:
    if _is_attachment_route(request.path):
        response.headers.update(_CORS)


async def _preflight(request: web.Request) -> web.Response:
    return web.Response(status=204)


def add_routes(app: web.Application) -> None:
    app.router.add_get("/api/v1/threads", get_threads)
    app.router.add_post("/api/v1/orders/{order}/attachments", post_attachment)
    app.router.add_get("/api/v1/attachments/{id}", get_attachment)
    app.router.add_route("OPTIONS", "/api/v1/orders/{order}/attachments", _preflight)
    app.router.add_route("OPTIONS", "/api/v1/attachments/{id}", _preflight)
    app.on_response_prepare.append(_add_cors)
    if not app[CONFIG].metrics.port:
        app.router.add_get("/metrics", get_metrics)


def metrics_app(registry) -> web.Application:
    """The separate metrics listener (`[metrics] port`): /metrics only."""
    app = web.Application()
    app[METRICS] = registry
    app.router.add_get("/metrics", get_metrics)
    return app

