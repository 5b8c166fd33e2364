"""Property-based fuzzing of the edges (issue 9, item 5): whatever a client sends,
no connection is closed with 1011, no request answers 5xx, nothing is logged as
an error with a traceback, and another client keeps getting its messages.

Frames are generated from the wire types (chatd.wire.ClientFrame, read with
msgspec.inspect), so a new frame or field is fuzzed without touching this file;
REST requests cover every route of the app's router. Hypothesis runs on a
worker thread and drives the real server and clients on the test's loop.
Bounded and deterministic: derandomized, no example database, a fixed number
of examples (CHATD_FUZZ_EXAMPLES overrides it for a longer local run).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import uuid
from urllib.parse import quote

import aiohttp
import msgspec
import msgspec.inspect as mi
import pytest
import websockets
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from chatd import wire
from chatd.app import create_app
from chatd.config import Config
from chatd.edge.rest import buyers, messages, orders, users
from tests.support.client import API_KEY, Client, token

EXAMPLES = int(os.environ.get("CHATD_FUZZ_EXAMPLES", "200"))
# no shrinking unless asked (CHATD_FUZZ_SHRINK=1): on a failure it can take minutes
PHASES = [Phase.explicit, Phase.generate] + ([Phase.shrink] if os.environ.get("CHATD_FUZZ_SHRINK") else [])
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    phases=PHASES,
    suppress_health_check=list(HealthCheck),
    print_blob=False,
)
ORDERS = ["o1", "o2", "missing", "", "o" * 200, "o" * 201, "ü/ö?#%", "o1\x00", " o1"]
EDGE_INTS = [0, 1, -1, 2**31 - 1, 2**31, 2**53, 2**63 - 1, 2**63, -(2**63), -(2**63) - 1, 2**64, 10**30, -(10**30)]
# a connection may be closed for these (too big, too fast); never 1011
ALLOWED_CLOSES = {1009, 4401, 4429, 1013}


@pytest.fixture
def limits():
    return {"rate_per_s": 1e6, "rate_burst": 10**6}  # the fuzzer, not the rate limit, is under test


# --- strategies -------------------------------------------------------------------------

json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.sampled_from(EDGE_INTS),
    st.floats(allow_nan=False),
    st.text(max_size=20),
)
any_json = st.recursive(
    json_scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)),
    max_leaves=12,
)
deep = st.integers(1, 20_000).map(lambda d: "[" * d + "]" * d)
DEEP = "\x01deep\x01"  # in a generated object: replaced by `deep` JSON text once it is dumped


def dumps(obj, depth: int, ascii_only: bool = False) -> str:
    text = json.dumps(obj, ensure_ascii=ascii_only)
    return text.replace(json.dumps(DEEP), "[" * depth + "]" * depth)


def long_text(bound: int | None) -> st.SearchStrategy[str]:
    """Strings around a length bound (and some far past it), cheap to make."""
    sizes = [0, 1, 64, 65, 128, 129, 200, 201, 256, 4000, 4001, 8192, 8193, 70_000]
    if bound is not None:
        sizes += [bound - 1, bound, bound + 1]
    return st.tuples(st.sampled_from(sorted(set(s for s in sizes if s >= 0))), st.sampled_from("x\u200bé😀\x00 ")).map(
        lambda t: t[1] * t[0]
    )


def for_type(t: mi.Type) -> st.SearchStrategy:
    """Values near what the field wants (valid, at its bounds, past them)."""
    match t:
        case mi.IntType():
            return st.one_of(st.integers(-3, 10), st.integers(), st.sampled_from(EDGE_INTS))
        case mi.StrType():
            return st.one_of(st.sampled_from(ORDERS), st.text(max_size=40), long_text(t.max_length))
        case mi.BoolType():
            return st.booleans()
        case mi.LiteralType():
            return st.one_of(st.sampled_from(t.values), st.text(max_size=8))
        case mi.NoneType():
            return st.none()
        case mi.UnionType():
            return st.one_of(*(for_type(x) for x in t.types))
        case mi.ListType():
            return st.one_of(
                st.lists(for_type(t.item_type), max_size=5), st.integers(0, 150).map(lambda n: ["a" * 10] * n)
            )
        case mi.StructType():
            return struct_dict(t)
    return any_json


def struct_dict(t: mi.StructType, tag: str | None = None) -> st.SearchStrategy[dict]:
    """A JSON object for a Struct: each field valid-ish, of another type, or left out; extra fields too."""
    fields = {f.name: st.one_of(for_type(f.type), for_type(f.type), any_json, st.just(DEEP)) for f in t.fields}

    @st.composite
    def build(draw):
        out = {} if tag is None else {"type": tag}
        for name, strat in fields.items():
            if draw(st.integers(0, 9)) > 0:  # mostly present, sometimes missing
                out[name] = draw(strat)
        if draw(st.integers(0, 7)) == 0:
            out[draw(st.text(max_size=8))] = draw(any_json)
        return out

    return build()


FRAME_TYPES = {t.tag: t for t in mi.type_info(wire.ClientFrame).types}


def frame_bytes(tag: str) -> st.SearchStrategy[str | bytes]:
    """One frame of type `tag` as sent: JSON text, the same as binary, or broken JSON."""
    obj = st.tuples(struct_dict(FRAME_TYPES[tag], tag), st.integers(1, 20_000))
    as_text = obj.map(lambda t: dumps(*t))
    return st.one_of(
        as_text,
        as_text,
        as_text,
        obj.map(lambda t: dumps(*t, ascii_only=True).encode()),
        as_text.map(lambda s: s[: len(s) // 2]),  # truncated
        st.tuples(deep, st.just(tag)).map(lambda t: f'{{"type": "{t[1]}", "x": {t[0]}}}'),
        st.binary(max_size=64),
    )


# --- the loop bridge ----------------------------------------------------------------------


class Bridge:
    """Run coroutines on the test's loop from Hypothesis' worker thread."""

    def __init__(self, loop) -> None:
        self.loop = loop

    def __call__(self, coro, timeout: float = 30.0):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)


def no_tracebacks(caplog) -> None:
    bad = [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
    assert not bad, [f"{r.name}: {r.getMessage()}" for r in bad]


class Bystander:
    """A supplier joined to an order the fuzzer does not touch, and staff posting to it."""

    def __init__(self, server) -> None:
        self.server = server

    async def start(self) -> Bystander:
        await self.server.order("watch", buyer="wbuyer", supplier="wsupplier", rep=None)
        self.watcher = await self.server.client("wsupplier", "supplier")
        await self.watcher.join("watch")
        self.poster = await self.server.client("wstaff", "staff")
        return self

    async def check(self) -> None:
        text = f"still here {uuid.uuid4()}"
        assert (await self.poster.post("watch", text))["type"] == "ack"
        await self.watcher.expect("message", text=text)
        self.watcher.frames.clear()
        self.watcher._seen = 0


# --- WebSocket ---------------------------------------------------------------------------------


class Fuzzer:
    """One authenticated connection per role, reopened after an allowed close."""

    def __init__(self, server) -> None:
        self.server = server
        self.conns: dict[str, Client] = {}

    async def conn(self, role: str) -> Client:
        c = self.conns.get(role)
        if c is None or c.close_code is not None:
            sub = {"buyer": "buyer1", "staff": "staff1", "bot": "bot1"}[role]
            c = await self.server.client(sub, role, orders=["o1"] if role == "bot" else None)
            await c.join("o1")
            self.conns[role] = c
        return c

    async def send(self, role: str, raw) -> None:
        c = await self.conn(role)
        await c.ws.send(raw)
        await c.send({"type": "ping"})  # one pong per example: frames are answered in order
        try:
            await c.expect("pong")
        except AssertionError:  # closed while waiting for the pong
            assert c.close_code in ALLOWED_CLOSES, (c.close_code, raw[:200])
            return
        assert c.close_code is None
        if len(c.frames) > 1000:
            c.frames.clear()
            c._seen = 0


@pytest.mark.parametrize("tag", sorted(FRAME_TYPES))
async def test_fuzz_frames(server, tag, caplog):
    caplog.set_level(logging.ERROR)
    await server.order("o1")
    await server.order("o2", buyer="buyer2", supplier="supplier2")
    bystander = await Bystander(server).start()
    fuzzer = Fuzzer(server)
    run = Bridge(asyncio.get_running_loop())
    seen = {"n": 0}

    @FUZZ
    @given(role=st.sampled_from(["buyer", "staff", "bot"]), raw=frame_bytes(tag))
    def one(role, raw):
        run(fuzzer.send(role, raw))
        no_tracebacks(caplog)
        seen["n"] += 1
        if seen["n"] % 25 == 0:
            run(bystander.check())

    await asyncio.to_thread(one)
    await bystander.check()
    no_tracebacks(caplog)


async def test_fuzz_first_frame(server, caplog):
    """Whatever the first frame is, the socket ends 4401 (or 1009 when too big) or is authenticated."""
    caplog.set_level(logging.ERROR)
    run = Bridge(asyncio.get_running_loop())

    async def attempt(raw) -> None:
        c = await server.raw_client()
        try:
            await c.ws.send(raw)
            await c.send({"type": "ping"})
        except websockets.ConnectionClosed:
            pass
        code = await c.closed()
        assert code in (4401, 1009), (code, raw[:200])

    @settings(FUZZ, max_examples=max(EXAMPLES // 2, 10))
    @given(raw=st.one_of(frame_bytes("auth"), frame_bytes("join"), st.text(max_size=100), deep))
    def one(raw):
        run(attempt(raw))
        no_tracebacks(caplog)

    await asyncio.to_thread(one)


# --- REST ----------------------------------------------------------------------------------------

BODIES = {
    ("PUT", "/api/v1/orders/{order}"): orders.OrderBody,
    ("POST", "/api/v1/orders/{order}/messages"): messages.PostBody,
    ("POST", "/api/v1/orders/{order}/read"): messages.ReadBody,
    ("PUT", "/api/v1/buyers/{buyer}"): buyers.BuyerBody,
    ("PUT", "/api/v1/users/{user}/notifications"): users.PrefsBody,
}
QUERY_KEYS = [
    *("limit", "before", "after", "format", "cursor", "dispute", "unread_for", "has_messages", "q", "token"),
    *("status", "awaiting_reply", "overdue", "supplier", "sales_rep", "days"),
]
header_text = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=60)


def auth_values() -> st.SearchStrategy[str | None]:
    """Mostly credentials that pass, so requests reach the handlers; and some that do not."""
    tokens = [
        token("buyer1", "buyer"),
        token("supplier1", "supplier"),
        token("rep1", "sales_rep"),
        token("staff1", "staff"),
        token("bot1", "bot", orders="*"),
        token("buyer1", "buyer", ttl_s=-5),
    ]
    known = st.sampled_from([f"Bearer {API_KEY}", f"Bearer {API_KEY}", *(f"Bearer {t}" for t in tokens), None])
    return st.one_of(known, header_text.map(lambda s: "Bearer " + s))


@st.composite
def multipart(draw) -> tuple[bytes, str]:
    """A multipart body, well formed or not: boundary, part headers and end all vary."""
    boundary = draw(
        st.one_of(
            st.just("xyz"),
            header_text.filter(lambda s: '"' not in s and ";" not in s),
            st.integers(60, 80).map(lambda n: "b" * n),
        )
    )
    name = draw(st.sampled_from(["file", "other", "", "file\x00"]))
    headers = [
        f'Content-Disposition: form-data; name="{name}"; filename="{draw(st.text(max_size=20))}"'.encode(
            "utf-8", "surrogatepass"
        )
    ]
    headers += draw(st.lists(st.one_of(st.binary(max_size=30), header_text.map(str.encode)), max_size=3))
    content = draw(
        st.one_of(
            st.binary(max_size=200), st.just(b"hello, a text file\n"), st.just(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)
        )
    )
    b = boundary.encode()
    body = b"--" + b + b"\r\n" + b"\r\n".join(headers) + b"\r\n\r\n" + content + b"\r\n--" + b + b"--\r\n"
    if draw(st.booleans()):
        body = body[: draw(st.integers(0, len(body)))]
    ctype = draw(
        st.sampled_from(
            [
                f"multipart/form-data; boundary={boundary}",
                "multipart/form-data",
                f'multipart/form-data; boundary="{boundary}"',
                "multipart/mixed; boundary=x",
                "application/json",
                "text/plain",
            ]
        )
    )
    return body, ctype


query_value = st.one_of(
    st.sampled_from([str(i) for i in EDGE_INTS] + ["ndjson", "open", "closed", "none", "true", "false", "any", "o1"]),
    st.text(max_size=30),
    st.integers().map(str),
)


@st.composite
def queries(draw) -> dict[str, str]:
    """Each known parameter now and then, and an unknown one."""
    out = {key: draw(query_value) for key in QUERY_KEYS if draw(st.integers(0, 2)) == 0}
    if draw(st.booleans()):
        out[draw(st.text(max_size=5))] = draw(query_value)
    return out


def request_for(method: str, path: str) -> st.SearchStrategy[dict]:
    @st.composite
    def build(draw):
        values = {
            "order": draw(st.one_of(st.just("o1"), st.just("o1"), st.sampled_from(ORDERS), st.text(max_size=30))),
            "id": draw(st.one_of(st.text(max_size=30), st.just("x" * 22))),
            "buyer": draw(st.one_of(st.just("buyer1"), st.text(max_size=30))),
            "user": draw(st.one_of(st.just("buyer1"), st.text(max_size=30))),
        }
        url = path.format(**{k: quote(v, safe="") or "x" for k, v in values.items()})
        query = draw(queries())
        headers = {}
        if (auth := draw(auth_values())) is not None:
            headers["Authorization"] = auth
        body = None
        if path.endswith("/attachments") and method == "POST":
            body, headers["Content-Type"] = draw(multipart())
        elif method in ("PUT", "POST"):
            kind = BODIES.get((method, path))
            obj = draw(struct_dict(mi.type_info(kind)) if kind else any_json)
            body = draw(
                st.one_of(
                    st.just(dumps(obj, draw(st.integers(1, 20_000))).encode()),
                    st.binary(max_size=40),
                    deep.map(str.encode),
                )
            )
            headers["Content-Type"] = "application/json"
        return {"method": method, "url": url, "params": query, "headers": headers, "data": body}

    return build()


def _routes() -> list[tuple[str, str]]:
    """Every route of the app (nothing is opened until the app starts)."""
    return sorted({(r.method, r.resource.canonical) for r in create_app(Config()).router.routes()})


ROUTES = _routes()


def test_every_route_is_fuzzed():
    assert ("POST", "/api/v1/orders/{order}/attachments") in ROUTES and len(ROUTES) > 20


# hypothesis draws in a thread while the server's loop runs on: a library there that uses the
# global `random` (aiohttp's connector shuffles its waiters) would be taken for the strategy's own
@pytest.mark.filterwarnings("ignore:Do not use the `random` module inside strategies")
@pytest.mark.parametrize("method, path", ROUTES, ids=[f"{m} {p}" for m, p in ROUTES])
async def test_fuzz_rest(server, method, path, caplog):
    caplog.set_level(logging.ERROR)
    await server.order("o1")
    bystander = await Bystander(server).start()
    run = Bridge(asyncio.get_running_loop())
    session = aiohttp.ClientSession()

    async def call(req) -> None:
        async with session.request(
            req["method"], server.base + req["url"], params=req["params"], headers=req["headers"], data=req["data"]
        ) as r:
            body = await r.read()
            assert r.status < 500, (req, r.status, body[:300])
            if r.status >= 400 and req["url"].startswith("/api/") and req["method"] != "HEAD":
                err = msgspec.json.decode(body)["error"]
                assert err["code"] and err["message"], body

    @settings(FUZZ, max_examples=max(EXAMPLES // 2, 10))
    @given(req=request_for(method, path))
    def one(req):
        run(call(req))
        no_tracebacks(caplog)

    try:
        await asyncio.to_thread(one)
    finally:
        await session.close()
    await bystander.check()
    no_tracebacks(caplog)
