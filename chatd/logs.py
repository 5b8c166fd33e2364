"""Log lines: text (the default) or JSON lines (`[log] format = "json"`).

In JSON mode every line is one object on stderr: `ts` (UTC, ISO 8601 with
milliseconds), `level`, `logger`, `msg`, `exc` for a traceback, and the order
and user of the request it is about. The edge puts those in two context
variables while it serves a request or a WebSocket connection (`order`: the
`{order}` of a REST path; `user`: the caller, `api_key` for the api key), so
every line logged on its behalf carries them, and it writes one request line
per HTTP request and per WebSocket connection (logger `chatd.access`: method,
path, status, duration, client address, order, user) when it ends.
"""

from __future__ import annotations

import logging
import sys
import time
from contextvars import ContextVar
from typing import Any

import msgspec
from aiohttp import web
from aiohttp.abc import AbstractAccessLogger
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.typedefs import Handler

FORMATS = ("text", "json")
ORDER: ContextVar[str | None] = ContextVar("chatd_log_order", default=None)
USER: ContextVar[str | None] = ContextVar("chatd_log_user", default=None)
# request[REQUEST_KEY]: what the request line says (a dict, shared by the request's clones)
REQUEST_KEY = web.RequestKey("chatd_log", dict[str, str | None])
_FIELDS = ("method", "path", "status", "duration_ms", "remote")
_encode = msgspec.json.Encoder().encode
ACCESS = logging.getLogger("chatd.access")  # the request lines (JSON mode)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z"
        out: dict[str, Any] = {"ts": ts, "level": record.levelname.lower(), "logger": record.name}
        out["msg"] = record.getMessage()
        for key in _FIELDS:
            if (value := getattr(record, key, None)) is not None:
                out[key] = value
        order = getattr(record, "order", None) or ORDER.get()
        user = getattr(record, "user", None) or USER.get()
        if order is not None:
            out["order"] = order
        if user is not None:
            out["user"] = user
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return _encode(out).decode()


def configure(fmt: str) -> None:
    """The root handler: one line per record on stderr, as text or JSON."""
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    for name, kind, level in (("aiohttp.server", HttpProcessingError, logging.INFO), ("asyncpg.pool", Exception, None)):
        lib = logging.getLogger(name)
        if not any(isinstance(f, _OneLine) for f in lib.filters):
            lib.addFilter(_OneLine(kind, level))


class _OneLine(logging.Filter):
    """A library's record of an expected failure as one line, without its traceback:
    - aiohttp answers a request it cannot parse (a NUL in a header, a bad request
      line) with 400 and logs an ERROR with its parser's traceback, so any client
      could fill the log with them: one INFO line;
    - asyncpg's pool logs a traceback each time it fails to reconnect while the
      database is away (chatd says so itself: `store` in /healthz, `unavailable`):
      one WARNING line."""

    def __init__(self, kind: type[BaseException], level: int | None) -> None:
        super().__init__()
        self.kind, self.level = kind, level

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, self.kind):
            if self.level is not None:
                record.levelno, record.levelname = self.level, logging.getLevelName(self.level)
            answered = f": answered {exc.code}" if isinstance(exc, HttpProcessingError) else f": {exc}"
            record.msg, record.args = "%s (%s%s)", (record.getMessage(), type(exc).__name__, answered)
            record.exc_info = record.exc_text = None
        return True


def about(request: web.Request, user: str) -> None:
    """The caller of `request` is `user`: on its request line and every line logged for it."""
    USER.set(user)
    if (line := request.get(REQUEST_KEY)) is not None:
        line["user"] = user


@web.middleware
async def context(request: web.Request, handler: Handler) -> web.StreamResponse:
    """First of the edge's middlewares: the order of the path, and a place for the caller."""
    order = request.match_info.get("order")
    request[REQUEST_KEY] = {"order": order}
    ORDER.set(order)
    USER.set(None)
    return await handler(request)


def client_address(request: web.Request, remote: str) -> None:
    """The client as the trusted proxy names it, for the request line."""
    if (line := request.get(REQUEST_KEY)) is not None:
        line["remote"] = remote


def _request_line(
    logger: logging.Logger,
    method: str,
    path: str,
    status: int,
    duration_s: float,
    remote: str | None,
    line: dict[str, str | None],
) -> None:
    logger.info(
        "%s %s %d",
        method,
        path,
        status,
        extra={
            "method": method,
            "path": path,
            "status": status,
            "duration_ms": round(duration_s * 1000, 1),
            "remote": line.get("remote") or remote,
            "order": line.get("order"),
            "user": line.get("user"),
        },
    )


class AccessLogger(AbstractAccessLogger):
    """One line per request (a WebSocket's when it closes), with its order and user."""

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        if response.status == 101:
            return  # a WebSocket served by chatd writes its own, when it ends (SocketLine)
        line = request.get(REQUEST_KEY) or {}
        _request_line(self.logger, request.method, request.path, response.status, time, request.remote, line)


class SocketLine:
    """A WebSocket's request line, kept from the upgrade and written when the socket ends:
    aiohttp would write it when the handler returns, right after the upgrade (chatd.edge.upgrade)."""

    __slots__ = ("start", "method", "path", "remote", "line")

    def __init__(self, request: web.BaseRequest) -> None:
        self.start = time.monotonic()
        self.method = request.method
        self.path = request.path
        self.remote = request.remote
        self.line: dict[str, str | None] = request.get(REQUEST_KEY) or {}

    def about(self, user: str) -> None:
        self.line["user"] = user

    def write(self) -> None:
        _request_line(ACCESS, self.method, self.path, 101, time.monotonic() - self.start, self.remote, self.line)
