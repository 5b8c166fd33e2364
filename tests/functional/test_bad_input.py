"""Bad input never closes a connection with 1011 nor answers 500: every field is
bounded at decode time and answered with `bad_request` / 400 (issue 9, items 5 and 7)."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import socket
import struct

import aiohttp
import jwt
import msgspec
import pytest

from chatd.edge.keys import CHAT
from tests.support.client import API_KEY, SECRET, Client, request, settled, token
from tests.support.hold import hold_export
from tests.support.wait import wait_for

HUGE = 10**30  # beyond 64 bits: SQLite raised OverflowError
DEEP = 5000


@pytest.fixture
def tracebacks(caplog):
    """The ERROR records with a traceback logged while the test ran (chatd's and aiohttp's)."""
    caplog.set_level(logging.ERROR)
    return lambda: [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]


async def _still_serves(server, client: Client) -> None:
    await settled(client)
    assert client.close_code is None
    assert (await client.post("o1", "still here"))["type"] == "ack"


@pytest.mark.parametrize(
    "frame",
    [
        {"type": "history", "order": "o1", "before": HUGE},
        {"type": "history", "order": "o1", "after": HUGE},
        {"type": "history", "order": "o1", "after": -HUGE},
        {"type": "history", "order": "o1", "limit": HUGE},
        {"type": "join", "order": "o1", "since": HUGE},
        {"type": "join", "order": "o1", "limit": HUGE},
        {"type": "read", "order": "o1", "seq": HUGE},
        {"type": "inbox", "limit": HUGE},
        {"type": "inbox", "cursor": f"{HUGE}:o1"},
        {"type": "inbox", "cursor": f"-{HUGE}:o1"},
    ],
    ids=lambda f: f["type"] + "-" + next(k for k in f if k not in ("type", "order")),
)
async def test_integers_beyond_64_bits_get_bad_request(server, frame, tracebacks):
    await server.order("o1")
    buyer = await server.client("buyer1", "buyer")
    other = await server.client("supplier1", "supplier")
    await other.join("o1")
    err = await request(buyer, frame, "history", "joined", "inbox", "unread")
    assert err["type"] == "error" and err["code"] == "bad_request", err
    await _still_serves(server, buyer)
    await other.expect("message", text="still here")
    assert not tracebacks()


def _nested(depth: int, inner: bytes = b"1") -> bytes:
    return b"[" * depth + inner + b"]" * depth


@pytest.mark.parametrize(
    "raw",
    [
        b'{"type": "ping", "x": ' + _nested(DEEP) + b"}",
        b'{"type": "send", "order": "o1", "client_id": "c", "text": "x", "extra": ' + _nested(DEEP) + b"}",
        b'{"x": ' + b'{"a": ' * DEEP + b"1" + b"}" * DEEP + b', "type": "ping"}',
    ],
    ids=["ping-unknown-field", "send-unknown-field", "objects"],
)
async def test_deep_nesting_gets_bad_request(server, raw, tracebacks):
    await server.order("o1")
    buyer = await server.client("buyer1", "buyer")
    await buyer.ws.send(raw.decode())
    err = await buyer.expect("error")
    assert err["code"] == "bad_request" and "nest" in err["message"], err
    await _still_serves(server, buyer)
    assert not tracebacks()


async def test_deep_nesting_as_first_frame_closes_4401(server, tracebacks):
    c = await server.raw_client()
    await c.ws.send((b'{"type": "auth", "token": "x", "x": ' + _nested(DEEP) + b"}").decode())
    err = await c.expect("error")
    assert err["code"] == "unauthorized"
    assert await c.closed() == 4401
    assert not tracebacks()


@pytest.mark.parametrize(
    "frame, field",
    [
        ({"type": "join", "order": "o" * 201}, "order"),
        ({"type": "send", "order": "o1", "client_id": "c" * 129, "text": "hi"}, "client_id"),
        ({"type": "send", "order": "o1", "client_id": "c", "text": "hi", "attachments": ["a"] * 101}, "attachments"),
        ({"type": "send", "order": "o1", "client_id": "c", "text": "hi", "attachments": ["a" * 65]}, "attachments"),
        ({"type": "set_status", "order": "o1", "client_id": "c", "status": "s" * 65}, "status"),
        ({"type": "set_status", "order": "o1", "client_id": "c", "status": "shipped\r\nBcc: x"}, "status"),
        ({"type": "set_status", "order": "o1", "client_id": "c", "status": "\u200b "}, "status"),
        ({"type": "set_status", "order": "o1", "client_id": "", "status": "paid"}, "client_id"),
        ({"type": "dispute", "order": "o1", "client_id": "", "action": "open"}, "client_id"),
        ({"type": "inbox", "cursor": "1:" + "o" * 300}, "cursor"),
        ({"type": "auth", "token": "t" * 8193}, "token"),
    ],
)
async def test_field_bounds_at_decode_time(server, frame, field, tracebacks):
    await server.order("o1")
    buyer = await server.client("buyer1", "buyer")
    err = await request(buyer, frame, "ack", "joined", "inbox", "ready")
    assert err["type"] == "error" and err["code"] == "bad_request", err
    assert field in err["message"], err
    # the error names what the client waits on, when the frame has a plausible one
    cid, order = frame.get("client_id"), frame.get("order")
    ref = cid if cid and len(cid) <= 128 else order if order and len(order) <= 200 else None
    assert err.get("ref") == ref, err
    await _still_serves(server, buyer)
    assert not tracebacks()


async def test_rest_integers_beyond_64_bits_get_400(server, tracebacks):
    await server.order("o1")
    for q in (f"before={HUGE}", f"after={HUGE}", f"after=-{HUGE}", f"limit={HUGE}"):
        st, body = await server.api("GET", f"/api/v1/orders/o1/messages?{q}")
        assert st == 400 and body["error"]["code"] == "bad_request", (q, st, body)
    st, body = await server.api("POST", "/api/v1/orders/o1/read", {"user": "buyer1", "seq": HUGE})
    assert st == 400 and body["error"]["code"] == "bad_request", body
    st, body = await server.api("GET", f"/api/v1/threads?limit={HUGE}")
    assert st == 400 and body["error"]["code"] == "bad_request", body
    for values in ([1, HUGE, 0, "o1"], [1, 0, HUGE, "o1"], [1, 0, -HUGE, "o1"], [HUGE, 0, 0, "o1"]):
        cursor = base64.urlsafe_b64encode(msgspec.json.encode(values)).decode().rstrip("=")
        st, body = await server.api("GET", f"/api/v1/threads?cursor={cursor}")
        assert st == 400 and body["error"]["code"] == "bad_request", (values, st, body)
    assert not tracebacks()


async def test_rest_deep_nesting_gets_400(server, tracebacks):
    await server.order("o1")
    raw = b'{"client_id": "c", "text": "x", "x": ' + _nested(DEEP) + b"}"
    async with aiohttp.ClientSession() as s:
        for method, path in (
            ("POST", "/api/v1/orders/o1/messages"),
            ("PUT", "/api/v1/orders/o2"),
            ("POST", "/api/v1/orders/o1/read"),
        ):
            async with s.request(
                method,
                server.base + path,
                data=raw,
                headers={"Authorization": f"Bearer {API_KEY}", "Content-Type": "application/json"},
            ) as r:
                body = await r.json()
                assert r.status == 400 and body["error"]["code"] == "bad_request", (path, r.status, body)
    assert not tracebacks()


async def test_rest_status_and_people_are_bounded(server, tracebacks):
    await server.order("o1")
    for body in (
        {"status": "s" * 65},
        {"status": ""},
        {"status": "paid\n"},
        {"status": "\t"},
        {"buyer": {"id": "b" * 201, "name": "B"}},
        {"buyer": {"id": "b", "name": "n" * 201}},
    ):
        st, data = await server.api("PUT", "/api/v1/orders/o1", body)
        assert st == 400 and data["error"]["code"] == "bad_request", (body, st, data)
    st, data = await server.api("PUT", "/api/v1/orders/o1", {"status": "s" * 64})
    assert st == 200 and data["status"] == "s" * 64
    assert not tracebacks()


async def _upload_raw(server, body: bytes, content_type: str) -> tuple[int, dict | bytes]:
    headers = {"Authorization": f"Bearer {token('buyer1', 'buyer')}", "Content-Type": content_type}
    async with aiohttp.ClientSession() as s:
        async with s.post(server.base + "/api/v1/orders/o1/attachments", data=body, headers=headers) as r:
            return r.status, (await r.json() if r.content_type == "application/json" else await r.read())


def _part(boundary: str, header: bytes = b'Content-Disposition: form-data; name="file"; filename="a.txt"') -> bytes:
    b = boundary.encode()
    return b"--" + b + b"\r\n" + header + b"\r\n\r\nhello\r\n--" + b + b"--\r\n"


def _nested_parts(depth: int) -> bytes:
    """Parts inside parts, `depth` deep, before any `file` part."""
    lines = []
    for i in range(depth):
        lines += [f"--b{i}", f"Content-Type: multipart/mixed; boundary=b{i + 1}", ""]
    lines += [f"--b{depth}", 'Content-Disposition: form-data; name="x"', "", "data"]
    lines += [f"--b{i}--" for i in range(depth, -1, -1)]
    return ("\r\n".join(lines) + "\r\n").encode()


@pytest.mark.parametrize(
    "content_type, body",
    [
        ("multipart/form-data", _part("xyz")),
        ("multipart/form-data; boundary=" + "b" * 71, _part("b" * 71)),
        (
            "multipart/form-data; boundary=xyz",
            _part("xyz", b'Content-Disposition: form-data; name="file"\x00; filename="a"'),
        ),
        ("multipart/form-data; boundary=xyz", _part("xyz", b"Content-Dis\x00position: form-data")),
        ("multipart/form-data; boundary=xyz", b"--xyz\r\nno colon here\r\n\r\nhello\r\n--xyz--\r\n"),
        ("multipart/form-data; boundary=xyz", b"--xyz\r\n" + b"X: y\r\n" * 5000 + b"\r\nhi\r\n--xyz--\r\n"),
        ("multipart/form-data; boundary=xyz", b"not multipart at all"),
        ("multipart/mixed; boundary=xyz", _part("xyz", b"Content-Type: multipart/mixed")),
        ("multipart/form-data; boundary=xyz", _part("xyz", b'Content-Disposition: form-data; name="fi')),
        ("multipart/form-data; boundary=xyz", b'--xyz\r\nContent-Disposition: form-data; name="file"'),
        ("multipart/form-data; boundary=b0", _nested_parts(1200)),
        ("multipart/form-data; boundary=xyz", _part("xyz")[: -len(b"\r\n--xyz--\r\n")]),
        ("multipart/form-data; boundary=xyz", _part("xyz")[: -len(b"--xyz--\r\n")]),
    ],
    ids=[
        "no-boundary",
        "boundary-71",
        "nul-in-header",
        "nul-in-name",
        "no-colon",
        "many-headers",
        "garbage",
        "nested-no-boundary",
        "unclosed-quote",
        "truncated-headers",
        "nested-1200-deep",
        "cut-before-the-boundary",
        "cut-at-the-boundary",
    ],
)
async def test_malformed_multipart_gets_400(server, content_type, body, tracebacks):
    await server.order("o1")
    st, data = await _upload_raw(server, body, content_type)
    assert st == 400 and isinstance(data, dict) and data["error"]["code"] == "bad_request", (st, data)
    assert not tracebacks()
    # and a good upload still works
    st, data = await _upload_raw(server, _part("xyz"), "multipart/form-data; boundary=xyz")
    assert st == 201, data


def _raw_token(**claims) -> str:
    return jwt.encode({"role": "buyer", "exp": 4102444800, **claims}, SECRET, algorithm="HS256")


async def test_token_sub_and_name_are_bounded(server, tracebacks):
    await server.order("o1", buyer="b" * 200)
    # a name past 200 characters is cut to 200 (display only), a longer sub is refused
    c = await Client.open(server.ws_url)
    server.clients.append(c)
    await c.send({"type": "auth", "token": _raw_token(sub="b" * 200, name="N" * 5_000)})
    ready = await c.expect("ready")
    assert ready["user"]["name"] == "N" * 200
    await c.join("o1")
    assert (await c.post("o1", "hi"))["type"] == "ack"
    msg = await c.expect("message", seq=1)
    assert msg["sender"]["name"] == "N" * 200
    bad = await Client.open(server.ws_url)
    server.clients.append(bad)
    await bad.send({"type": "auth", "token": _raw_token(sub="b" * 201)})
    err = await bad.expect("error")
    assert err["code"] == "unauthorized" and "sub" in err["message"]
    assert await bad.closed() == 4401
    st, body = await server.api("GET", "/api/v1/orders/o1/messages", auth=_raw_token(sub="b" * 201))
    assert st == 401
    # a token past 8192 characters (a 40,000-character name) is refused like a bad first frame
    big = await Client.open(server.ws_url)
    server.clients.append(big)
    await big.send({"type": "auth", "token": _raw_token(sub="b" * 200, name="N" * 40_000)})
    assert (await big.expect("error"))["code"] == "unauthorized"
    assert await big.closed() == 4401
    assert not tracebacks()


@pytest.mark.parametrize(
    "claims, claim",
    [
        ({"name": "Ana \ud83d"}, "name"),  # "Ana 😀".slice(0, 5) on a JavaScript platform
        ({"sub": "buyer1\ud800"}, "sub"),
        ({"name": "Ana\u0000"}, "name"),
        ({"sub": "buyer1\u0000"}, "sub"),
    ],
    ids=["name-cut-emoji", "sub-lone-surrogate", "name-nul", "sub-nul"],
)
async def test_token_claims_no_store_can_hold_are_unauthorized(server, claims, claim, tracebacks):
    """Signed, but a claim holds a lone UTF-16 surrogate (PyJWT's json accepts one) or
    U+0000: refused as a bad token, naming the claim, instead of 1011 or 500."""
    await server.order("o1")
    c = await Client.open(server.ws_url)
    server.clients.append(c)
    await c.send({"type": "auth", "token": _raw_token(**{"sub": "buyer1", **claims})})
    err = await c.expect("error")
    assert err["code"] == "unauthorized" and f"token {claim} " in err["message"], err
    assert await c.closed() == 4401 and not c.of_type("ready")
    bot = _raw_token(**{"sub": "bot1", "role": "bot", "orders": ["o1"], **claims})
    st, body = await server.api("POST", "/api/v1/orders/o1/messages", {"client_id": "c1", "text": "hi"}, auth=bot)
    assert st == 401 and body["error"]["code"] == "unauthorized", (st, body)
    assert f"token {claim} " in body["error"]["message"], body
    st, page = await server.api("GET", "/api/v1/orders/o1/messages")
    assert st == 200 and page["messages"] == []
    assert not tracebacks()


@pytest.mark.parametrize(
    "exp",
    [10**400, float("inf"), float("nan"), -1, True, "4102444800"],
    ids=["huge", "inf", "nan", "neg", "bool", "str"],
)
async def test_a_token_exp_that_is_no_time_is_unauthorized(server, exp, tracebacks):
    """Signed, but `exp` is no number of seconds a clock reaches: refused naming the claim,
    on the socket (first frame, URL, refresh) and over REST, instead of 1011, 500, or a
    credential that never expires."""
    await server.order("o1")
    bad = _raw_token(sub="buyer1", exp=exp)
    c = await Client.open(server.ws_url)
    server.clients.append(c)
    await c.send({"type": "auth", "token": bad})
    err = await c.expect("error")
    assert err["code"] == "unauthorized" and "token exp " in err["message"], err
    assert await c.closed() == 4401
    in_url = await Client.open(f"{server.ws_url}?token={bad}")
    server.clients.append(in_url)
    assert (await in_url.expect("error"))["code"] == "unauthorized"
    assert await in_url.closed() == 4401
    ok = await server.client("buyer1", "buyer")
    await ok.send({"type": "auth", "token": bad})  # a refresh
    assert (await ok.expect("error"))["code"] == "unauthorized"
    st, body = await server.api("GET", "/api/v1/orders/o1/messages", auth=bad)
    assert st == 401 and "token exp " in body["error"]["message"], (st, body)
    assert not tracebacks()


async def _raw_http(server, request: bytes) -> tuple[int, bytes]:
    """Send `request` as is (bytes an HTTP client would not): (status, body)."""
    port = int(server.base.rsplit(":", 1)[1])
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request)
        data = await asyncio.wait_for(reader.read(), 10)  # Connection: close
    finally:
        writer.close()
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), body


@pytest.mark.parametrize(
    "credential, sections",
    [(b"\xff\xfe", {}), (b"a.\xff.c", {}), (b"a.\xff.c", {"auth": {"api_key": ""}})],
    ids=["latin-1", "jwt-shaped", "jwt-shaped-no-api-key"],  # compared with the api key / read as a token
)
@pytest.mark.parametrize("path", ["/api/v1/orders/o1", "/api/v1/orders/o1/messages", "/api/v1/threads"])
async def test_authorization_bytes_that_are_not_utf8_get_401(server, path, credential, tracebacks):
    """aiohttp decodes a header's bytes with surrogateescape: these answered 500 on every route."""
    st, body = await _raw_http(
        server,
        f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n".encode()
        + b"Authorization: Bearer "
        + credential
        + b"\r\n\r\n",
    )
    assert st == 401 and json.loads(body)["error"]["code"] == "unauthorized", (st, body)
    assert not tracebacks()


INVISIBLE = [
    "\u200b",
    "\u200c",
    "\u200d",
    "\u2060",
    "\ufeff",
    "\u200e",
    "\u200f",
    "\u202a",
    "\u202e",
    "\u2066",
    "\u2069",
    "\u00ad",
    "\u180e",
    "\u3000",
    "\u00a0",
    "\u2028",
    "\u034f",
    "\U000e0020",
]


async def test_invisible_only_text_is_refused(server):
    await server.order("o1")
    buyer = await server.client("buyer1", "buyer")
    for text in ["".join(INVISIBLE), " \u200b \n\t\ufeff", *INVISIBLE]:
        r = await buyer.post("o1", text)
        assert r["type"] == "error" and r["code"] == "bad_request", (ascii(text), r)
    st, body = await server.api("POST", "/api/v1/orders/o1/messages", {"client_id": "r", "text": "\u200b\u2060"})
    assert st == 400 and body["error"]["code"] == "bad_request"
    # visible text with invisible characters around it, and emoji sequences with joiners, pass
    for text in ("\u200bhi\u200b", "\U0001f468\u200d\U0001f469\u200d\U0001f467", "\u05e9\u200f"):
        assert (await buyer.post("o1", text))["type"] == "ack", ascii(text)
    st, page = await server.api("GET", "/api/v1/orders/o1/messages")
    assert len(page["messages"]) == 3


@pytest.mark.parametrize(
    "frame",
    [
        {"type": "join", "order": "o1\u0000"},
        {"type": "history", "order": "\u0000"},
        {"type": "send", "order": "o1", "client_id": "c\u0000", "text": "hi"},
        {"type": "send", "order": "o1", "client_id": "c1", "text": "a\u0000b"},
        {"type": "inbox", "cursor": "1:o\u0000"},
    ],
    ids=["join", "history", "client_id", "text", "cursor"],
)
async def test_nul_in_any_string_gets_bad_request(server, frame, tracebacks):
    """U+0000 is refused in every field on every backend (PostgreSQL's text cannot hold it)."""
    await server.order("o1")
    buyer = await server.client("buyer1", "buyer")
    await buyer.join("o1")
    err = await request(buyer, frame, "history", "joined", "inbox", "ack")
    assert err["type"] == "error" and err["code"] == "bad_request", err
    await _still_serves(server, buyer)
    assert not tracebacks()


async def test_rest_nul_gets_400(server, tracebacks):
    await server.order("o1")
    for method, path, body in (
        ("GET", "/api/v1/orders/o1%00/messages", None),
        ("GET", "/api/v1/orders/o1/messages?after=%00", None),
        ("PUT", "/api/v1/orders/o2", {"buyer": {"id": "b\u0000", "name": "B"}}),
        ("POST", "/api/v1/orders/o1/messages", {"client_id": "c1", "text": "a\u0000b"}),
    ):
        st, answer = await server.api(method, path, body)
        assert st == 400 and answer["error"]["code"] == "bad_request", (path, st, answer)
    assert not tracebacks()


@pytest.mark.parametrize(
    "path, body",
    [
        (
            "/api/v1/orders/o1",
            {"buyer": {"id": "buyer1", "name": "Ana", "avatar_url": "https://cdn.example/a\u0000.png"}},
        ),
        ("/api/v1/orders/o1", {"buyer": {"id": "buyer1", "name": "Ana", "email": "ana\u0000@shop.example"}}),
        ("/api/v1/orders/o1", {"supplier": {"id": "supplier1", "name": "Berg", "email": "b@shop\u0000.example"}}),
        ("/api/v1/buyers/buyer1", {"sales_rep": {"id": "rep1", "name": "Rita", "avatar_url": "https://x/\u0000"}}),
        ("/api/v1/buyers/buyer1", {"sales_rep": None, "contact": {"email": "a@b.c\u0000o"}}),
    ],
    ids=["order-avatar_url", "order-email-local", "order-email-domain", "buyer-rep-avatar_url", "buyer-email"],
)
async def test_rest_nul_in_a_persons_avatar_url_or_email_gets_400(server, path, body, tracebacks):
    """These fields have patterns of their own, which must refuse U+0000 too (it was stored, and
    an avatar_url echoed to every participant)."""
    await server.order("o1")
    st, answer = await server.api("PUT", path, body)
    assert st == 400 and answer["error"]["code"] == "bad_request", (st, answer)
    st, order = await server.api("GET", "/api/v1/orders/o1")
    assert b"\\u0000" not in msgspec.json.encode(order), order  # nothing was stored
    assert not tracebacks()


async def test_a_websocket_key_that_is_not_ascii_gets_400(server, tracebacks):
    host, port = server.base.removeprefix("http://").rsplit(":", 1)
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(
        b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: \xff\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    status = await asyncio.wait_for(reader.readline(), 10)
    writer.close()
    assert status.startswith(b"HTTP/1.1 400"), status
    assert not tracebacks()


async def test_a_reader_gone_in_the_middle_of_an_export_ends_it_quietly(server, monkeypatch, caplog):
    """A reader that resets the connection between two chunks of an NDJSON export:
    the next write raised into aiohttp's error log ("Error handling request")."""
    caplog.set_level(logging.INFO)  # aiohttp's access line says the export's answer is done
    await server.order("o1")
    supplier = await server.client("supplier1", "supplier")
    for i in range(3):
        await supplier.post("o1", f"line {i}")
    paused, go_on = hold_export(server.app[CHAT].store, monkeypatch)
    http = server.srv.runner.server  # aiohttp's side of the connections
    monkeypatch.setattr(http, "handler_cancellation", False)  # as `chatd serve` runs (a test server cancels)
    host, port = server.base.removeprefix("http://").rsplit(":", 1)
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(
        f"GET /api/v1/orders/o1/messages?format=ndjson HTTP/1.1\r\nHost: x\r\n"
        f"Authorization: Bearer {API_KEY}\r\n\r\n".encode()
    )
    await paused.wait()  # the first chunk is written; the second waits
    assert (await reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 200")
    ours = writer.get_extra_info("sockname")
    writer.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()  # closed with linger 0: a reset, not a FIN

    def gone() -> bool:
        return not any(h.transport and h.transport.get_extra_info("peername") == ours for h in http.connections)

    await wait_for(gone, what="the server to see the reset")
    go_on.set()

    def ended() -> list[logging.LogRecord]:
        return [r for r in caplog.records if r.levelno >= logging.ERROR or "format=ndjson" in r.getMessage()]

    records = await wait_for(ended, what="the export's answer to end")
    assert not [r for r in records if r.levelno >= logging.ERROR or r.exc_info], records


@pytest.mark.parametrize("raw", ["5_0", "%2B5", "%205", "%D9%A3", "-1", "1e3", "0x10"])
async def test_a_query_integer_is_ascii_digits(server, raw):
    """Python's int() reads "5_0", "+5", " 5" and other scripts' digits: a query value is
    an integer only as the documentation writes one."""
    await server.order("o1")
    for path in ("/api/v1/orders/o1/messages?limit=", "/api/v1/threads?limit=", "/api/v1/reports/response-times?days="):
        st, body = await server.api("GET", path + raw)
        assert st == 400 and body["error"]["code"] == "bad_request", (path, raw, st, body)
    st, page = await server.api("GET", "/api/v1/orders/o1/messages?limit=5")
    assert st == 200


async def test_query_errors_name_the_query_and_unknown_ones_are_refused(server):
    await server.order("o1")
    st, body = await server.api("GET", "/api/v1/threads?unread_for=" + "u" * 201)
    assert st == 400 and body["error"]["message"].startswith("invalid query: "), body
    for query, says in (("format=xml", "format must be json or ndjson"), ("bogus=1", "unknown parameter bogus")):
        st, body = await server.api("GET", f"/api/v1/orders/o1/messages?{query}")
        assert st == 400 and body["error"]["code"] == "bad_request" and says in body["error"]["message"], body
    for query in ("format=json", "format=ndjson", "limit=&format="):  # empty is absent
        st, _ = await server.api("GET", f"/api/v1/orders/o1/messages?{query}")
        assert st == 200, query
