"""The REST client: odd order ids, error bodies, a proxy's answers and a stream cut mid-way."""

from __future__ import annotations

import contextlib

import aiohttp
import pytest
from aiohttp import web
from yarl import URL

from chatd import client
from chatd.client.rest import Rest
from tests.sdk.conftest import run_py
from tests.support.client import API_KEY

LINE = (
    b'{"type":"message","order":"o","seq":1,"ts":1,"kind":"text",'
    b'"sender":{"id":"a","name":"A","role":"bot"},"text":"x","client_id":null,"attachments":[]}\n'
)


async def _put(base: str, raw_segment: str) -> None:
    """Create an order whose id is `raw_segment` percent-decoded (sent as is)."""
    body = {"buyer": {"id": "buyer1", "name": "B"}, "supplier": {"id": "supplier1", "name": "S"}}
    url = URL(f"{base}/api/v1/orders/{raw_segment}", encoded=True)
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {API_KEY}"}) as s:
        async with s.put(url, json=body) as r:
            assert r.status in (200, 201), await r.text()


async def test_dot_order_ids_reach_their_own_order(chatd_proc, api):
    """Order ids "." and ".." are dot segments a URL would lose; they still name their order."""
    for raw in ("%2E", "%2E%2E", "messages"):
        await _put(chatd_proc.base, raw)
    async with Rest(chatd_proc.base, API_KEY) as rest:
        for order in (".", ".."):
            ack = await rest.post(order, f"in {order}", client_id=f"c{len(order)}")
            assert ack.order == order
            assert [(m.order, m.text) async for m in rest.export(order)] == [(order, f"in {order}")]
        assert [m async for m in rest.export("messages")] == []


async def test_an_error_body_keeps_its_ref(chatd_proc):
    async with Rest(chatd_proc.base, API_KEY) as rest:
        with pytest.raises(client.NotFound) as missing:
            await rest.post("no-such-order", "hi")
    assert missing.value.ref == "no-such-order"


@contextlib.asynccontextmanager
async def _fake_upstream():
    """A stand-in for what sits in front of chatd: `/gw502/...` answers a proxy's HTML
    error page, `/cut/...` drops the connection after one line of the export."""

    async def gateway(request: web.Request) -> web.Response:
        return web.Response(status=502, text="<html>502 Bad Gateway</html>", content_type="text/html")

    async def cut(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "application/x-ndjson"})
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        await resp.write(LINE)
        assert request.transport is not None
        request.transport.abort()
        return resp

    app = web.Application()
    app.router.add_route("*", "/gw502/api/v1/orders/{order}/messages", gateway)
    app.router.add_get("/cut/api/v1/orders/{order}/messages", cut)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        port = runner.addresses[0][1]
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


async def test_a_proxy_error_page_is_unavailable_and_a_cut_export_a_connection_failure():
    async with _fake_upstream() as base:
        async with Rest(f"{base}/gw502", API_KEY) as rest:
            with pytest.raises(client.Unavailable, match="HTTP 502"):
                await rest.post("o1", "hi")
        got = []
        async with Rest(f"{base}/cut", API_KEY) as rest:
            with pytest.raises(client.ConnectionFailed):
                async for m in rest.export("o1"):
                    got.append(m.seq)
        assert got == [1]
        run = await run_py("-m", "chatd", "history", "--order", "o1", "--url", f"{base}/cut", "--api-key", "k")
    assert run.code == 2 and "Traceback" not in run.err, run
    assert "#1 A (bot): x" in run.out
