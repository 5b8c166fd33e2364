"""RedisRelay's connection counts in Redis: a resync of this instance's counts
(after every reconnect) racing admits must never write a count lower than one
an admit already wrote, or another instance admits past the limit.

Drives RedisRelay's private resync directly: on a loaded machine it happens
at startup while the first connections are admitted, too rarely to catch.
"""

from __future__ import annotations

import asyncio
import uuid

from chatd.relay.redis import RedisRelay
from tests.contract.test_relay_contract import Node, presence_frame


async def test_resyncs_during_admits_never_let_the_limit_be_passed(redis_url):
    over = []
    for _ in range(10):
        a, b = (Node(RedisRelay(redis_url, presence_frame, admit_timeout_s=30.0), True) for _ in range(2))
        for node in (a, b):
            await node.relay.start(node.handler)
        users = [f"u-{uuid.uuid4().hex[:8]}" for _ in range(10)]
        tries = [(user, node) for user in users for node in (a, b, a, b, a, b)]

        async def resyncs(a: Node, b: Node) -> None:
            for _ in range(20):
                await asyncio.gather(a.relay._sync_presence(), b.relay._sync_presence())

        results, _ = await asyncio.gather(asyncio.gather(*(n.connect(u, 3) for u, n in tries)), resyncs(a, b))
        admitted: dict[str, int] = {}
        for (user, _), ok in zip(tries, results, strict=True):
            admitted[user] = admitted.get(user, 0) + ok
        assert a.relay.admit_fallbacks + b.relay.admit_fallbacks == 0
        over += [n for n in admitted.values() if n > 3]
        for node in (a, b):
            await node.close()
    assert over == []


async def test_an_instance_counted_before_its_first_heartbeat_is_not_taken_for_dead(redis_url):
    # b admits before its own heartbeat has ever run (its tasks are stopped before
    # they start); a's heartbeat must see b alive, keep b's counts, and so refuse
    a, b = (Node(RedisRelay(redis_url, presence_frame, admit_timeout_s=30.0), True) for _ in range(2))
    await a.relay.start(a.handler)
    await b.relay.start(b.handler)  # no await inside: its tasks have not run yet
    for task in b.relay._tasks:
        task.cancel()
    try:
        user = f"u-{uuid.uuid4().hex[:8]}"
        assert [await b.connect(user, 3) for _ in range(3)] == [True, True, True]
        await a.relay._heartbeat()
        assert await a.connect(user, 3) is False
    finally:
        for node in (a, b):
            await node.close()
