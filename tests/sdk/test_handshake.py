"""Opening a socket: what a refusal during auth says, and what aclose() leaves behind."""

from __future__ import annotations

import asyncio

import pytest
from websockets.asyncio.server import serve

from chatd import client
from tests.sdk.conftest import Api, run_py
from tests.sdk.proxy import Proxy
from tests.support.client import TIMEOUT, token
from tests.support.procs import ServerProc

FAST = {"reconnect_delay_s": 0.05, "max_reconnect_delay_s": 0.5}


async def test_aclose_during_a_reconnect_handshake_closes_that_socket(chatd_proc, api):
    """The socket drops and the next one lands on a server that never answers `auth`:
    aclose() meanwhile closes that half-open socket too."""
    order = await api.order()
    held: list = []
    arrived = asyncio.Event()

    async def silent(ws) -> None:  # takes the upgrade and the `auth`, never answers
        held.append(ws)
        await ws.recv()  # the client now waits for `ready`
        arrived.set()
        await ws.wait_closed()

    proxy = await Proxy(chatd_proc.port).start()
    try:
        async with serve(silent, "127.0.0.1", 0) as mute:
            c = await client.connect(proxy.url, token("supplier1", "supplier"), **FAST)
            try:
                await c.join(order)
                proxy.target_port = mute.sockets[0].getsockname()[1]
                proxy.cut()
                async with asyncio.timeout(TIMEOUT):
                    await arrived.wait()
            finally:
                await c.aclose()
            async with asyncio.timeout(TIMEOUT):
                await held[0].wait_closed()
    finally:
        await proxy.aclose()


async def test_too_many_connections_during_auth_is_said_so(tmp_path):
    """A user past `max_conns_per_user` is closed 4429 right after auth: the SDK's
    ConnectionFailed carries the close code and reason, and `chatd say` prints them."""
    proc = ServerProc(tmp_path, {"limits": {"max_conns_per_user": 1}})
    proc.start()
    try:
        order = await Api(proc.base).order()
        bot = token("bot1", "bot", orders="*")
        async with client.connect(proc.base, bot):
            with pytest.raises(client.ConnectionFailed, match="too many connections") as refused:
                await client.connect(proc.base, bot)
            assert refused.value.close_code == 4429
            run = await run_py(
                "-m", "chatd", "say", "--order", order, "--text", "hi", env={"CHATD_URL": proc.base, "CHATD_TOKEN": bot}
            )
        assert run.code == 2 and "too many connections (close 4429)" in run.err, run
        assert "Close some of this id's other connections" in run.err and "Is the server running" not in run.err
    finally:
        proc.kill()
