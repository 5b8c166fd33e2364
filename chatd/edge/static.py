"""The browser side: the widget's files and the demo order page (the demo bot: chatd.edge.demo).

Files are served from, in this order: ``CHATD_WEB_DIR`` when set (an
override: a copy of the folder of one's own); the package data ``chatd/web/``
of an installed wheel (setup.py ships the checkout's ``web/`` as the package
``chatd.web``); the checkout's ``web/`` next to the ``chatd`` package, for a
checkout or an editable install (``pip install -e .``, as the Makefile does).
Files are read on each request, so editing ``web/widget.js`` needs no restart.

``/widget.js`` is the widget's plain files joined (the session, the DOM
helpers, the view, the components: badge, bell, inbox, the staff console): integrators keep one
script tag, and there is still no build step.
"""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path

from aiohttp import web
from aiohttp.typedefs import Handler

log = logging.getLogger("chatd.web")


def web_dir() -> Path:
    if override := os.environ.get("CHATD_WEB_DIR"):
        return Path(override)
    package = Path(__file__).resolve().parents[1]
    installed = package / "web"  # a wheel: web/ is the package data chatd.web
    return installed if installed.is_dir() else package.parent / "web"


_COMMON = {"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"}
_ASSET = {**_COMMON, "Access-Control-Allow-Origin": "*", "Cross-Origin-Resource-Policy": "cross-origin"}
_PAGE = {
    **_COMMON,
    "Content-Security-Policy": (
        "default-src 'self'; connect-src 'self'; img-src 'self' data:; object-src 'none'; "
        "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "Referrer-Policy": "no-referrer",  # the demo page carries a token in its URL
}

_JS = "text/javascript; charset=utf-8"

# path -> (files in web/, served joined in this order; content type; headers)
FILES = {
    "/widget.js": (("session.js", "dom.js", "widget.js", "components.js", "console.js"), _JS, _ASSET),
    "/session.js": (("session.js",), _JS, _ASSET),  # the protocol alone, for a view of one's own
    "/widget.css": (("widget.css",), "text/css; charset=utf-8", _ASSET),
    "/demo": (("demo.html",), "text/html; charset=utf-8", _PAGE),
    "/demo/demo.js": (("demo.js",), _JS, _COMMON),
    "/demo/demo.css": (("demo.css",), "text/css; charset=utf-8", _COMMON),
    "/demo/orders": (("demo-orders.html",), "text/html; charset=utf-8", _PAGE),
    "/demo/orders.js": (("demo-orders.js",), _JS, _COMMON),
    # the staff console (a staff token: ?token=… or pasted), same origin as the REST routes
    "/console": (("console.html",), "text/html; charset=utf-8", _PAGE),
    "/console/console.js": (("console-page.js",), _JS, _COMMON),
    "/console/console.css": (("console.css",), "text/css; charset=utf-8", _COMMON),
}


def _file(names: tuple[str, ...], content_type: str, headers: dict[str, str]) -> Handler:
    async def handler(request: web.Request) -> web.StreamResponse:
        paths = [web_dir() / name for name in names]
        for path in paths:
            if not path.is_file():
                log.warning(
                    "%s not found: reinstall chatd (its wheel ships web/ as chatd/web) or set CHATD_WEB_DIR", path
                )
                raise web.HTTPNotFound()
        if len(paths) == 1:
            return web.FileResponse(paths[0], headers={**headers, "Content-Type": content_type})
        body = b"\n".join(path.read_bytes() for path in paths)
        etag = hashlib.sha256(body).hexdigest()[:32]
        if any(e.value == etag for e in request.if_none_match or ()):
            return web.Response(status=304, headers={**headers, "ETag": f'"{etag}"'})
        resp = web.Response(body=body, headers={**headers, "Content-Type": content_type, "ETag": f'"{etag}"'})
        resp.last_modified = max(path.stat().st_mtime for path in paths)
        return resp

    return handler


def add_routes(app: web.Application) -> None:
    for route, (names, ctype, headers) in FILES.items():
        app.router.add_get(route, _file(names, ctype, headers))
