"""GET /api/v1/openapi.json: an OpenAPI 3.1 document of every REST route.

Generated, not written: the request bodies are the msgspec Structs the routes
decode (`OrderBody`, `PostBody`, ...), the answers the types they encode
(`OrderJson`, `Ack`, `ThreadsPage`, ...), all through msgspec's JSON Schema
(`msgspec.json.schema_components`), so the document cannot drift from the
code. `chatd openapi > docs/openapi.json` refreshes the
copy kept in the repository (a test checks it is current), and schemathesis
fuzzes a live server against it (tests/functional/test_openapi.py).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import Any, NotRequired, TypedDict

import msgspec
from aiohttp import web

from chatd import __version__
from chatd.chat import MarkerJson
from chatd.edge.rest.buyers import BuyerBody, BuyerJson
from chatd.edge.rest.health import HealthJson, ReadyJson
from chatd.edge.rest.messages import MessagesJson, PostBody, ReadBody
from chatd.edge.rest.orders import OrderBody, OrderJson
from chatd.edge.rest.reports import ResponseTimesJson
from chatd.edge.rest.threads import ThreadsReadBody
from chatd.edge.rest.users import PrefsBody, PrefsJson
from chatd.staff_queue import ThreadsRead
from chatd.threads import ThreadQuery, ThreadsPage
from chatd.wire import ID_CHARS, MAX_INT, TOKEN_CHARS, Ack, AttachmentRef, Message

PATH = "/api/v1/openapi.json"


class ErrorDetail(TypedDict):
    code: str  # one of the contract's error codes (docs/protocol.md, Error codes)
    message: str
    ref: NotRequired[str]  # the order or client_id the error concerns, where there is one


class ErrorJson(TypedDict):
    """Every refusal: `{"error": {"code", "message", "ref"?}}` with the status of the code."""

    error: ErrorDetail


@dataclass
class Op:
    method: str
    path: str
    summary: str
    responses: dict[str, Any]  # status -> a type (JSON), or a raw OpenAPI response object
    body: Any = None  # the Struct the route decodes
    query: list[dict[str, Any]] = field(default_factory=list)
    auth: bool = True


def _int(name: str, desc: str, lo: int = 0) -> dict[str, Any]:
    schema = {"type": "integer", "minimum": lo, "maximum": MAX_INT}
    return {"name": name, "in": "query", "required": False, "description": desc, "schema": schema}


def _str(name: str, desc: str, max_length: int = ID_CHARS, enum: list[str] | None = None) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "string", "maxLength": max_length}
    if enum:
        schema = {"type": "string", "enum": enum}
    return {"name": name, "in": "query", "required": False, "description": desc, "schema": schema}


def _token_param() -> dict[str, Any]:
    schema = {"type": "string", "maxLength": TOKEN_CHARS, "pattern": "^[A-Za-z0-9_=.-]*$"}  # a JWT
    desc = "a connection token instead of the Authorization header"
    return {"name": "token", "in": "query", "required": False, "description": desc, "schema": schema}


_THREAD_ENUMS = {
    "dispute": ["open", "closed", "none"],
    "has_messages": ["true", "false", "any"],
    "awaiting_reply": ["true", "false"],
    "overdue": ["true"],
    "attention": ["true"],
}


def _thread_params() -> list[dict[str, Any]]:
    """GET /api/v1/threads takes the fields of ThreadQuery (converted with its bounds)."""
    (props,), defs = msgspec.json.schema_components([ThreadQuery])
    fields = defs["ThreadQuery"]["properties"]
    out = []
    for name, schema in fields.items():
        schema = {k: v for k, v in schema.items() if k != "default"}
        if "anyOf" in schema:  # X | None: absent means None
            schema = next(s for s in schema["anyOf"] if s.get("type") != "null")
        if name == "limit":
            schema = {"type": "integer", "minimum": 1, "maximum": 200}
        if name in _THREAD_ENUMS:  # the values the route accepts (chatd.threads checks them)
            schema = {"type": "string", "enum": _THREAD_ENUMS[name]}
        if name == "cursor":  # what next_cursor was: base64url
            schema["pattern"] = "^[A-Za-z0-9_=-]*$"
        if schema.get("type") == "string":
            schema.setdefault("maxLength", 1000)
        out.append({"name": name, "in": "query", "required": False, "schema": schema})
    return out


_BINARY = {"schema": {"type": "string", "format": "binary"}}
OPERATIONS = [
    Op(
        "put",
        "/api/v1/orders/{order}",
        "Register or update an order and its participants (api key)",
        {"200": OrderJson, "201": OrderJson},
        body=OrderBody,
    ),
    Op("get", "/api/v1/orders/{order}", "An order as operators see it (api key, staff)", {"200": OrderJson}),
    Op(
        "put",
        "/api/v1/buyers/{buyer}",
        "Assign a buyer's sales rep and contact data (api key)",
        {"200": BuyerJson},
        body=BuyerBody,
    ),
    Op(
        "get",
        "/api/v1/orders/{order}/messages",
        "A page of the order's messages, or every one as NDJSON (format=ndjson)",
        {
            "200": {
                "description": "a page (JSON), or the export (NDJSON: one message per line)",
                "content": {
                    "application/json": {"schema": {"$ref": "#/components/schemas/MessagesJson"}},
                    "application/x-ndjson": {"schema": {"type": "string"}},
                },
            }
        },
        query=[
            _int("before", "messages before this seq"),
            _int("after", "messages after this seq"),
            _int("limit", "page size (capped at [limits] history_max)"),
            _str("format", "ndjson: the history up to its newest message, streamed", enum=["json", "ndjson"]),
        ],
    ),
    Op(
        "post",
        "/api/v1/orders/{order}/messages",
        "Post a message (api key, bot); a repeated client_id answers 200 with duplicate",
        {"200": Ack, "201": Ack},
        body=PostBody,
    ),
    Op(
        "post",
        "/api/v1/orders/{order}/read",
        "Set a user's read marker, backward too (api key, staff)",
        {"200": MarkerJson},
        body=ReadBody,
    ),
    Op(
        "post",
        "/api/v1/orders/{order}/attachments",
        "Upload a file (multipart/form-data, part `file`) as a participant",
        {"201": AttachmentRef},
        body="multipart",
    ),
    Op(
        "options",
        "/api/v1/orders/{order}/attachments",
        "CORS preflight of uploads",
        {"204": {"description": "allowed from any origin"}},
        auth=False,
    ),
    Op(
        "get",
        "/api/v1/attachments/{id}",
        "Download a file (Authorization, or ?token=)",
        {"200": {"description": "the file, with its stored type", "content": {"*/*": _BINARY}}},
        query=[_token_param()],
    ),
    Op(
        "options",
        "/api/v1/attachments/{id}",
        "CORS preflight of downloads",
        {"204": {"description": "allowed from any origin"}},
        auth=False,
    ),
    Op(
        "get",
        "/api/v1/threads",
        "Threads list and full-text search (api key, staff, supplier side)",
        {"200": ThreadsPage},
        query=_thread_params(),
    ),
    Op(
        "options",
        "/api/v1/threads",
        "CORS preflight of the threads list",
        {"204": {"description": "allowed from any origin"}},
        auth=False,
    ),
    Op(
        "options",
        "/api/v1/threads/read",
        "CORS preflight of the bulk read",
        {"204": {"description": "allowed from any origin"}},
        auth=False,
    ),
    Op(
        "post",
        "/api/v1/threads/read",
        "Mark many threads read or unread for staff as a whole (api key, staff)",
        {"200": ThreadsRead},
        body=ThreadsReadBody,
    ),
    Op(
        "get",
        "/api/v1/reports/response-times",
        "First-response times of a supplier's or sales rep's orders (api key, staff)",
        {"200": ResponseTimesJson},
        query=[
            _str("supplier", "a supplier id"),
            _str("sales_rep", "a sales rep id"),
            _int("days", "the window, in days (default 30)", lo=1),
        ],
    ),
    Op(
        "get",
        "/api/v1/users/{user}/notifications",
        "A user's notification preferences (api key, the user)",
        {"200": PrefsJson},
    ),
    Op(
        "put",
        "/api/v1/users/{user}/notifications",
        "Set a user's notification preferences (api key, the user)",
        {"200": PrefsJson},
        body=PrefsBody,
    ),
    Op(
        "get",
        "/healthz",
        "Liveness: the store writable, the relay's state",
        {"200": HealthJson, "503": HealthJson},
        auth=False,
    ),
    Op("get", "/readyz", "Readiness for load balancers", {"200": ReadyJson, "503": ReadyJson}, auth=False),
    Op(
        "get",
        "/metrics",
        "Prometheus metrics (when [metrics] port is 0)",
        {"200": {"description": "text format 0.0.4", "content": {"text/plain": {"schema": {"type": "string"}}}}},
        auth=False,
    ),
    Op(
        "get",
        PATH,
        "This document",
        {"200": {"description": "OpenAPI 3.1", "content": {"application/json": {"schema": {"type": "object"}}}}},
        auth=False,
    ),
]


def _name(t: Any) -> str:
    return str(t.__name__)


def document() -> dict[str, Any]:
    """The OpenAPI 3.1 document (deterministic: the copy in docs/ must match it byte for byte)."""
    types = [ErrorJson, Message]
    for op in OPERATIONS:
        if isinstance(op.body, type):
            types.append(op.body)
        types += [t for t in op.responses.values() if isinstance(t, type)]
    types.append(MessagesJson)
    unique = list(dict.fromkeys(types))
    _, schemas = msgspec.json.schema_components(unique, ref_template="#/components/schemas/{name}")
    paths: dict[str, dict[str, Any]] = {}
    for op in OPERATIONS:
        params = [
            {"name": name, "in": "path", "required": True, "schema": {"type": "string", "minLength": 1}}
            for name in _path_params(op.path)
        ]
        responses: dict[str, Any] = {}
        for status, t in op.responses.items():
            if isinstance(t, type):
                ref = {"$ref": f"#/components/schemas/{_name(t)}"}
                responses[status] = {"description": _name(t), "content": {"application/json": {"schema": ref}}}
            else:
                responses[status] = t
        responses["default"] = {
            "description": "a refusal (docs/protocol.md, Error codes)",
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorJson"}}},
        }
        operation: dict[str, Any] = {
            "operationId": f"{op.method}_{op.path.strip('/').replace('/', '_').replace('{', '').replace('}', '')}",
            "summary": op.summary,
            "parameters": params + op.query,
            "responses": responses,
        }
        if op.body == "multipart":
            file = {"type": "object", "properties": {"file": {"type": "string", "format": "binary"}}}
            operation["requestBody"] = {
                "required": True,
                "content": {"multipart/form-data": {"schema": {**file, "required": ["file"]}}},
            }
        elif op.body is not None:
            ref = {"$ref": f"#/components/schemas/{_name(op.body)}"}
            operation["requestBody"] = {"required": True, "content": {"application/json": {"schema": ref}}}
        operation["security"] = [{"api_key": []}, {"token": []}] if op.auth else []
        paths.setdefault(op.path, {})[op.method] = operation
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "chatd REST API",
            "version": __version__,
            "description": "Realtime chat for e-commerce orders: the REST edge. The WebSocket protocol "
            "(/ws) and every route's rules are in docs/protocol.md.",
        },
        "paths": paths,
        "components": {
            "schemas": dict(sorted(schemas.items())),
            "securitySchemes": {
                "api_key": {"type": "http", "scheme": "bearer", "description": "[auth] api_key: the host platform"},
                "token": {
                    "type": "http",
                    "scheme": "bearer",
                    "bearerFormat": "JWT",
                    "description": "a connection token (HS256, [auth] secret)",
                },
            },
        },
    }


def _path_params(path: str) -> list[str]:
    return [part[1:-1] for part in path.split("/") if part.startswith("{")]


def encoded() -> bytes:
    return msgspec.json.format(msgspec.json.encode(document()), indent=2) + b"\n"


async def get_openapi(request: web.Request) -> web.Response:
    return web.Response(body=request.app[_BODY], content_type="application/json")


_BODY = web.AppKey("openapi_json", bytes)


def add_routes(app: web.Application) -> None:
    app[_BODY] = encoded()
    app.router.add_get(PATH, get_openapi)


def write() -> None:
    """`chatd openapi`: the document on stdout."""
    sys.stdout.buffer.write(encoded())
