"""REST: attachments. Upload (multipart, streamed) and download, for those who may see them.

The work is chatd.attachments'; this module reads the multipart body, answers
the download with safe headers, and lets the widget (another origin) reach both.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from urllib.parse import unquote

from aiohttp import web
from aiohttp.http_exceptions import BadHttpMessage
from aiohttp.multipart import BadContentDispositionHeader, BadContentDispositionParam, BodyPartReader, MultipartReader

from chatd import metrics
from chatd.attachments import content_disposition
from chatd.auth.tokens import verify
from chatd.edge.keys import ATTACHMENTS, CONFIG
from chatd.edge.rest.common import ApiKey, Principal, json_response, principal, viewer
from chatd.errors import BadRequest, ChatError, Forbidden, TooLarge

CHUNK_BYTES = 64 * 1024


async def post_attachment(request: web.Request) -> web.Response:
    """Multipart upload, field `file`; streamed to disk in 64 KiB chunks."""
    who = principal(request)
    if isinstance(who, ApiKey):
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

    async def chunks() -> AsyncIterator[bytes]:
        try:
            while chunk := await part.read_chunk(CHUNK_BYTES):
                yield chunk
        except MULTIPART_ERRORS as exc:
            raise BadRequest(f"malformed multipart body: {exc}") from None
        if not part.at_eof():  # the body ended inside the part: a file cut short, not a whole one
            raise BadRequest("malformed multipart body: it ends before the file part's closing boundary")

    try:
        # browsers escape '"' and CR/LF in multipart file names as %22, %0D, %0A; aiohttp's
        # client escapes everything non-ASCII: percent-decode (a literal "%" survives as %25)
        name = unquote(part.filename) if part.filename else None
        att = await service.upload(who, request.match_info["order"], name, chunks())
    except ChatError as exc:
        metrics.UPLOADS.labels(exc.code).inc()
        raise
    metrics.UPLOADS.labels("ok").inc()
    return json_response(att, 201)


# what aiohttp's multipart reader raises on a malformed body (no or a too long
# boundary, a bad part header, a body without its boundaries); a malformed
# Content-Disposition is a warning, raised where warnings are errors
MULTIPART_ERRORS = (ValueError, BadHttpMessage, BadContentDispositionHeader, BadContentDispositionParam)


async def _file_part(request: web.Request) -> BodyPartReader | None:
    """The first part named `file` (other parts are skipped), or None."""
    reader = await request.multipart()
    while True:
        candidate = await reader.next()
        if candidate is None:
            return None
        if getattr(candidate, "name", None) == "file" and isinstance(candidate, BodyPartReader):
            return candidate
        if isinstance(candidate, MultipartReader):  # released recursively by aiohttp: 1,000 deep overflows
            raise ValueError("a part that is itself multipart (an upload has none)")
        await candidate.release()


async def get_attachment(request: web.Request) -> web.StreamResponse:
    """The file, to those who may see a message carrying it (others: 404). `?token=` is
    accepted instead of the header, so a page can link to it."""
    token = request.query.get("token")
    who: Principal
    if token and "Authorization" not in request.headers:
        cfg = request.app[CONFIG]
        who = verify(token, cfg.auth.secret, filter_mode=cfg.filter.mode)
    else:
        who = principal(request)
    path, att = await request.app[ATTACHMENTS].locate(viewer(who), request.match_info["id"])
    mime = att.mime + ("; charset=utf-8" if att.mime.startswith("text/") else "")
    return web.FileResponse(
        path,
        headers={
            "Content-Type": mime,
            "Content-Disposition": content_disposition(att.name),
            "X-Content-Type-Options": "nosniff",
            "Content-Security-Policy": "default-src 'none'; sandbox",
            "Cache-Control": "private, max-age=300",
        },
    )


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
        path.startswith("/api/v1/orders/") and path.endswith("/attachments")
    )


async def _add_cors(request: web.Request, response: web.StreamResponse) -> None:
    if _is_attachment_route(request.path):
        response.headers.update(_CORS)


async def _preflight(request: web.Request) -> web.Response:
    return web.Response(status=204)


def add_routes(app: web.Application) -> None:
    app.router.add_post("/api/v1/orders/{order}/attachments", post_attachment)
    app.router.add_get("/api/v1/attachments/{id}", get_attachment)
    app.router.add_route("OPTIONS", "/api/v1/orders/{order}/attachments", _preflight)
    app.router.add_route("OPTIONS", "/api/v1/attachments/{id}", _preflight)
    app.on_response_prepare.append(_add_cors)
