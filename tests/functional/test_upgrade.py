"""The WebSocket upgrade chatd answers itself before it takes the socket from aiohttp
(chatd.edge.upgrade): the 101 and its accept key, the 400 of a request that is no
upgrade, and frames a client sent right behind its request, before the 101."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os
import struct

import aiohttp

from tests.support.client import token

WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def _masked(payload: bytes, opcode: int = 0x1) -> bytes:
    mask = os.urandom(4)
    n = len(payload)
    head = bytes((0x80 | opcode, 0x80 | n)) if n < 126 else struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, n)
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


async def test_the_101_and_frames_sent_before_it(server):
    port = int(server.base.rsplit(":", 1)[1])
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    key = base64.b64encode(os.urandom(16)).decode()
    auth = json.dumps({"type": "auth", "token": token("buyer1", "buyer")}).encode()
    ping = json.dumps({"type": "ping"}).encode()
    writer.write(
        (
            f"GET /ws HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
        + _masked(auth)
        + _masked(ping)
    )
    head = (await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)).decode()
    assert head.startswith("HTTP/1.1 101 Switching Protocols\r\n")
    headers = {k.lower(): v for k, _, v in (line.partition(": ") for line in head.split("\r\n")[1:] if line)}
    assert headers["upgrade"] == "websocket" and headers["connection"].lower() == "upgrade"
    assert headers["server"] == "chatd"  # no Python and aiohttp versions
    assert headers["sec-websocket-accept"] == base64.b64encode(hashlib.sha1(key.encode() + WS_GUID).digest()).decode()
    types = []
    for _ in range(2):
        b0, n = await asyncio.wait_for(reader.readexactly(2), 5)
        assert b0 == 0x81
        if n == 126:
            n = struct.unpack("!H", await reader.readexactly(2))[0]
        types.append(json.loads(await reader.readexactly(n))["type"])
    assert types == ["ready", "pong"]
    writer.close()


async def test_a_request_that_is_no_upgrade_gets_400(server):
    async with aiohttp.ClientSession() as s:
        async with s.get(server.base + "/ws") as r:
            assert r.status == 400
            assert r.headers["Server"] == "chatd"
            assert (await r.json())["error"]["code"] == "bad_request"
        async with s.get(server.base + "/ws", headers={"Upgrade": "websocket", "Connection": "Upgrade"}) as r:
            assert r.status == 400  # no Sec-WebSocket-Version / Key


async def test_every_answer_names_the_server_without_versions(server):
    """aiohttp's default `Server` header names the Python and aiohttp versions."""
    async with aiohttp.ClientSession() as s:
        for path in ("/healthz", "/widget.js", "/api/v1/orders/nope", "/no/such/route"):
            async with s.get(server.base + path) as r:
                assert r.headers["Server"] == "chatd", (path, r.status, r.headers)
