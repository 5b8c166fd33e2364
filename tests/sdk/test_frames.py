"""Requests whose frame cannot go out: too large for the server, or not encodable at all."""

from __future__ import annotations

import asyncio

import pytest

from chatd import client
from tests.sdk.conftest import Api
from tests.sdk.proxy import Proxy
from tests.support.client import TIMEOUT, token
from tests.support.procs import ServerProc

FAST = {"reconnect_delay_s": 0.05, "max_reconnect_delay_s": 0.5}
LONE_SURROGATE = "order-\ud83d"


async def test_a_frame_the_server_closes_1009_over_fails_and_is_not_sent_again(tmp_path):
    """The server's `max_frame_bytes` is below the client's: it closes the socket (1009)
    over a long send. That send fails with TooLarge instead of being written again on
    every reconnect, and the requests behind it are answered."""
    proc = ServerProc(tmp_path, {"limits": {"max_frame_bytes": 2048}})
    proc.start()
    try:
        order = await Api(proc.base).order()
        async with client.connect(proc.base, token("supplier1", "supplier"), **FAST) as c:
            await c.join(order)
            big = asyncio.create_task(c.send(order, "x" * 3000))
            small = asyncio.create_task(c.send(order, "small"))
            async with asyncio.timeout(TIMEOUT):
                with pytest.raises(client.TooLarge, match="1009"):
                    await big
                ack = await small
            assert ack.seq == 1
            assert (await c.send(order, "after")).seq == 2
            assert c.reconnects == 1
    finally:
        proc.kill()


async def test_an_unencodable_request_raises_bad_request_and_leaves_no_trace(chatd_proc, api):
    """An order id with a lone surrogate cannot be UTF-8: the request raises BadRequest
    before anything is written, the next request is answered, and a reconnect
    neither writes it again nor rejoins it."""
    order = await api.order()
    proxy = await Proxy(chatd_proc.port).start()
    try:
        async with client.connect(proxy.url, token("supplier1", "supplier"), **FAST) as c:
            await c.join(order)
            with pytest.raises(client.BadRequest, match="encode"):
                await c.read(LONE_SURROGATE, 1)
            with pytest.raises(client.BadRequest, match="encode"):
                await c.join(LONE_SURROGATE)
            await asyncio.wait_for(c.ping(), TIMEOUT)
            proxy.cut()
            ack = await asyncio.wait_for(c.send(order, "after the blip"), TIMEOUT)
            assert ack.seq == 1 and c.reconnects == 1
    finally:
        await proxy.aclose()
