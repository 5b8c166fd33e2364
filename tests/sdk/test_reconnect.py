"""Reconnect, resume and exactly-once sending, with the server killed (-9) and restarted."""

from __future__ import annotations

import asyncio
import os
import signal

import pytest

from chatd import client, wire
from tests.sdk.conftest import Api
from tests.sdk.proxy import Proxy
from tests.sdk.waits import messages
from tests.support.client import TIMEOUT, token
from tests.support.postgres_server import store_url
from tests.support.procs import ServerProc

FAST = {"reconnect_delay_s": 0.05, "max_reconnect_delay_s": 0.5}
BOT = {"orders": "*"}


async def test_stream_survives_kill_9_and_restart_without_gap_or_duplicate(own_proc):
    """A reader follows an order while a bot posts 90 messages; the server is
    killed twice mid-stream, each time with a send on the wire. The reader
    ends with exactly seq 1..90, once each, and each message is stored once."""
    api = Api(own_proc.base)
    order = await api.order()
    total, kills = 90, (20, 50)
    go = {k: asyncio.Event() for k in kills}
    on_the_wire = {k: asyncio.Event() for k in kills}
    async with (
        client.connect(own_proc.base, token("supplier1", "supplier"), **FAST) as reader,
        client.connect(own_proc.base, token("bot1", "bot", **BOT), **FAST) as bot,
    ):
        await reader.join(order)

        async def post() -> list[wire.Ack]:
            acks = []
            for i in range(total):
                if i in go:
                    await go[i].wait()
                    on_the_wire[i].set()  # set before the send runs: the test wakes once it is written
                acks.append(await bot.send(order, f"m{i}"))
            return acks

        poster = asyncio.create_task(post())
        got: list[wire.Message] = []
        for k in kills:
            got += await messages(reader, k - len(got))  # caught up: connected, bot paused before m{k}
            go[k].set()
            await on_the_wire[k].wait()
            own_proc.kill()
            await own_proc.astart()
        got += await messages(reader, total - len(got), timeout=30)
        acks = await asyncio.wait_for(poster, 30)

    assert [m.seq for m in got] == list(range(1, total + 1))
    assert [m.text for m in got] == [f"m{i}" for i in range(total)]
    assert [a.seq for a in acks] == list(range(1, total + 1))
    assert reader.reconnects == 2 and bot.reconnects == 2
    stored = await api.messages(order)
    assert [m["text"] for m in stored] == [f"m{i}" for i in range(total)]


async def test_missed_more_than_the_replay_limit_is_filled_from_history(tmp_path):
    """Offline while 30 messages are posted, with a replay limit of 5: the
    client pages the rest from history and still yields every seq once, in order."""
    proc = ServerProc(tmp_path, {"limits": {"replay_since_default": 5}})
    proc.start()
    proxy = await Proxy(proc.port).start()
    try:
        api = Api(proc.base)
        order = await api.order()
        async with (
            client.connect(proxy.url, token("supplier1", "supplier"), **FAST) as reader,
            client.connect(proc.base, token("bot1", "bot", **BOT)) as bot,
        ):
            await reader.join(order)
            for i in range(3):
                await bot.send(order, f"m{i}")
            assert [m.seq for m in await messages(reader, 3)] == [1, 2, 3]
            proxy.refuse = True
            proxy.cut()
            for i in range(3, 33):
                await bot.send(order, f"m{i}")
            proxy.refuse = False
            await bot.send(order, "m33")  # live, after the gap
            got, joins = [], []
            async with asyncio.timeout(TIMEOUT):
                async for ev in reader:
                    if isinstance(ev, wire.Joined):
                        joins.append(ev)
                    elif isinstance(ev, wire.Message):
                        got.append(ev)
                        if len(got) == 31:
                            break
            assert [j.truncated for j in joins] == [True]  # the replay alone would have left a gap
            assert [m.seq for m in got] == list(range(4, 35))
            assert [m.text for m in got] == [f"m{i}" for i in range(3, 34)]
            assert reader.reconnects >= 1
    finally:
        await proxy.aclose()
        proc.kill()


async def test_send_whose_ack_was_lost_is_retried_and_stored_once(own_proc):
    """The server stores the message, its ack never reaches the client, the
    server is killed: after the restart the SDK resends the same client_id and
    gets the original ack back (duplicate), and the message exists once."""
    proxy = await Proxy(own_proc.port).start()
    try:
        api = Api(own_proc.base)
        order = await api.order()
        async with (
            client.connect(proxy.url, token("supplier1", "supplier"), **FAST) as sender,
            client.connect(own_proc.base, token("bot1", "bot", **BOT), reconnect=False) as watcher,
        ):
            await watcher.join(order)
            await sender.send(order, "before")
            proxy.mute()  # from here on nothing the server says reaches the sender
            sending = asyncio.create_task(sender.send(order, "exactly once", client_id="cid-lost-ack"))
            stored = [m for m in await messages(watcher, 2) if m.text == "exactly once"]
            assert len(stored) == 1 and not sending.done()
            own_proc.kill()
            await own_proc.astart()
            ack = await asyncio.wait_for(sending, 30)
        assert (ack.seq, ack.duplicate, ack.client_id) == (stored[0].seq, True, "cid-lost-ack")
        assert [m["text"] for m in await api.messages(order)] == ["before", "exactly once"]
    finally:
        await proxy.aclose()


async def test_send_written_to_a_frozen_server_is_stored_once_after_restart(own_proc):
    """The send frame reaches a stopped server (SIGSTOP), which is then killed
    before reading it: the SDK sends it again after the restart; stored once."""
    proxy = await Proxy(own_proc.port).start()
    try:
        api = Api(own_proc.base)
        order = await api.order()
        async with client.connect(proxy.url, token("supplier1", "supplier"), **FAST) as sender:
            await sender.send(order, "before")
            os.kill(own_proc.proc.pid, signal.SIGSTOP)
            written = proxy.upstream_bytes
            sending = asyncio.create_task(sender.send(order, "exactly once", client_id="cid-frozen"))
            await proxy.sent_more_than(written)  # the frame went out to the server
            own_proc.kill()
            await own_proc.astart()
            ack = await asyncio.wait_for(sending, 30)
        assert (ack.seq, ack.duplicate) == (2, False)
        assert [m["text"] for m in await api.messages(order)] == ["before", "exactly once"]
    finally:
        await proxy.aclose()


async def test_requests_in_flight_during_an_outage_are_answered_after_it(own_proc):
    api = Api(own_proc.base)
    order = await api.order()
    async with client.connect(own_proc.base, token("supplier1", "supplier"), **FAST) as c:
        await c.send(order, "one")
        own_proc.kill()
        pending = [
            asyncio.create_task(c.send(order, "two")),
            asyncio.create_task(c.history(order)),
            asyncio.create_task(c.read(order, 1)),
        ]
        await own_proc.astart()
        ack, page, read = await asyncio.wait_for(asyncio.gather(*pending), 30)
        assert ack.seq == 2 and read is None
        assert [m.text for m in page.messages][:1] == ["one"]
    assert [m["text"] for m in await api.messages(order)] == ["one", "two"]


async def test_gives_up_after_the_reconnect_timeout(own_proc):
    api = Api(own_proc.base)
    order = await api.order()
    c = await client.connect(own_proc.base, token("supplier1", "supplier"), reconnect_timeout_s=0.5, **FAST)
    try:
        await c.join(order)
        own_proc.kill()
        sending = asyncio.create_task(c.send(order, "never"))
        with pytest.raises(client.ClientClosed, match="gave up reconnecting"):
            async with asyncio.timeout(20):
                async for _ in c:
                    pass
        with pytest.raises(client.ClientClosed):
            await sending
    finally:
        await c.aclose()


async def test_rooms_the_read_bucket_refuses_on_resume_are_rejoined_later(tmp_path):
    """Back after a restart, the SDK rejoins every room at once; past the read bucket's
    burst the server answers `rate_limited`. The SDK took that for a removal: it dropped
    the room, made up a `left` and never delivered its messages again."""
    shared = {"url": store_url() or ""}  # the restart's database is the first's (a file, or PostgreSQL's)
    first = ServerProc(tmp_path, {"store": shared})
    first.start()
    tight = None
    try:
        api = Api(first.base)
        orders = [await api.order(buyer="buyer1") for _ in range(8)]
        async with (
            client.connect(first.base, token("buyer1", "buyer"), **FAST) as buyer,
            client.connect(first.base, token("bot1", "bot", **BOT), **FAST) as bot,
        ):
            for order in orders:
                await buyer.join(order)
            await _joined(buyer, orders)  # the joins' own
            await first.akill()
            tight = ServerProc(
                tmp_path, {"store": shared, "limits": {"read_burst": 3, "read_rate_per_s": 2.0}}, port=first.port
            )
            await tight.astart()  # the same file: a restart with a read bucket of 3
            await _joined(buyer, orders)  # the rejoins, none of them a `left`
            for order in orders:
                await bot.send(order, f"after the restart in {order}")
            got = await messages(buyer, len(orders))
            assert {m.order for m in got} == set(orders)
            assert buyer.reconnects == 1
    finally:
        first.kill()
        if tight is not None:
            tight.kill()


async def _joined(sdk: client.Client, orders: list[str]) -> None:
    """Read events until each of `orders` has had a `Joined`; a `Left` fails."""
    waiting = set(orders)
    async with asyncio.timeout(TIMEOUT):
        async for ev in sdk:
            assert not isinstance(ev, wire.Left), ev
            if isinstance(ev, wire.Joined):
                waiting.discard(ev.order)
                if not waiting:
                    return
