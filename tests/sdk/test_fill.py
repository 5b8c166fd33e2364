"""A gap paged from history after a long outage, and the application joining again meanwhile."""

from __future__ import annotations

import asyncio

from chatd import client, wire
from tests.sdk.conftest import Api
from tests.sdk.proxy import Proxy
from tests.sdk.waits import messages
from tests.support.client import TIMEOUT, token
from tests.support.procs import ServerProc

FAST = {"reconnect_delay_s": 0.05, "max_reconnect_delay_s": 0.5}
BOT = {"orders": "*"}
SHORT_REPLAY = {"limits": {"replay_since_default": 5, "replay_default": 5}}


class HistoryGate:
    """Holds the client's history requests (the gap fill's pages) until `open` is set."""

    def __init__(self, sdk: client.Client) -> None:
        self.entered = asyncio.Event()
        self.open = asyncio.Event()
        real = sdk.history

        async def history(*args, **kw):
            self.entered.set()
            await self.open.wait()
            return await real(*args, **kw)

        sdk.history = history  # type: ignore[method-assign]

    async def wait_entered(self) -> None:
        async with asyncio.timeout(TIMEOUT):
            await self.entered.wait()


async def until_seq(sdk: client.Client, order: str, last: int) -> list[int]:
    """The seqs of `order` the client yields, up to and including `last`."""
    seqs: list[int] = []
    async with asyncio.timeout(TIMEOUT):
        async for ev in sdk:
            if isinstance(ev, wire.Message) and ev.order == order:
                seqs.append(ev.seq)
                if ev.seq >= last:
                    return seqs
    raise AssertionError(f"the client ended after {seqs}")


async def _outage(proxy: Proxy, bot: client.Client, order: str, n: int) -> None:
    """Cut the reader off while the bot posts `n` messages."""
    proxy.refuse = True
    proxy.cut()
    for i in range(n):
        await bot.send(order, f"missed {i}")
    proxy.refuse = False


async def test_joining_again_while_the_gap_is_filled_loses_nothing(tmp_path):
    """Back after missing more than the server replays, the client pages the gap from
    history; the application calls join(order) again meanwhile ("make sure I am joined").
    The fill used to be cancelled and its gap dropped; now the join resumes from what
    was handed out and every message comes once, in order."""
    proc = ServerProc(tmp_path, SHORT_REPLAY)
    proc.start()
    proxy = await Proxy(proc.port).start()
    try:
        order = await Api(proc.base).order()
        async with (
            client.connect(proxy.url, token("supplier1", "supplier"), **FAST) as reader,
            client.connect(proc.base, token("bot1", "bot", **BOT)) as bot,
        ):
            await reader.join(order)
            await bot.send(order, "first")
            assert [m.seq for m in await messages(reader, 1)] == [1]
            gate = HistoryGate(reader)
            await _outage(proxy, bot, order, 40)  # seq 2..41
            await gate.wait_entered()  # reconnected, truncated replay: the fill's first page waits
            await bot.send(order, "live")  # seq 42, waits behind the gap
            joined = await reader.join(order)
            gate.open.set()
            await bot.send(order, "end")  # seq 43
            assert await until_seq(reader, order, 43) == list(range(2, 44))
            assert joined.order == order and reader.reconnects == 1
    finally:
        await proxy.aclose()
        proc.kill()


async def test_live_messages_waiting_for_a_gap_fill_are_bounded(tmp_path):
    """While the gap is paged from history, live messages wait; past `max_queued_events`
    they are left on the server (as for a slow reader) and come by a rejoin later."""
    proc = ServerProc(tmp_path, SHORT_REPLAY)
    proc.start()
    proxy = await Proxy(proc.port).start()
    try:
        order = await Api(proc.base).order()
        async with (
            client.connect(proxy.url, token("supplier1", "supplier"), max_queued_events=8, **FAST) as reader,
            client.connect(proc.base, token("bot1", "bot", **BOT)) as bot,
        ):
            await reader.join(order)
            await bot.send(order, "first")
            assert [m.seq for m in await messages(reader, 1)] == [1]
            gate = HistoryGate(reader)
            await _outage(proxy, bot, order, 30)  # seq 2..31
            await gate.wait_entered()
            for i in range(30):  # seq 32..61, live while the fill waits
                await bot.send(order, f"live {i}")
            await reader.ping()  # answered after every message frame before it
            assert len(reader._rooms[order].buffer or []) <= 8
            gate.open.set()
            await bot.send(order, "end")  # seq 62
            assert await until_seq(reader, order, 62) == list(range(2, 63))
    finally:
        await proxy.aclose()
        proc.kill()
