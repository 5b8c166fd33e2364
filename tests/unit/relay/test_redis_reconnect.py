"""RedisRelay's bare connections (chatd.relay.resp) cut by Redis while Redis
stays up: the relay notices, connects again, resyncs the rooms it watches,
and events flow both ways again."""

from __future__ import annotations

import uuid

import pytest
import redis.asyncio as aioredis

from chatd.relay.redis import RedisRelay
from chatd.rooms.events import RoomEvent
from tests.contract.test_relay_contract import Node, presence_frame
from tests.support.redis_server import RedisProc
from tests.support.wait import wait_for


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory):  # its own: the test cuts every connection Redis has
    r = RedisProc(tmp_path_factory.mktemp("redis"))
    r.start()
    yield r.url
    r.stop()


@pytest.mark.parametrize("kind", ["pubsub", "normal"])  # the subscriber's, then every other connection
async def test_connections_killed_by_redis_come_back(redis_url, kind):
    a, b = (
        Node(RedisRelay(redis_url, presence_frame, canary_interval_s=0.2, admit_timeout_s=30.0), True) for _ in range(2)
    )
    order, user = f"o-{uuid.uuid4().hex[:8]}", f"u-{uuid.uuid4().hex[:8]}"
    admin = aioredis.from_url(redis_url)
    try:
        for node in (a, b):
            await node.relay.start(node.handler)
            await node.watch(order, user)
        first = RoomEvent(order, b"before", seq=1)
        a.relay.publish_room(first)
        await b.handler.until(lambda: first in b.handler.got, "the first event at b")

        resyncs = len(b.handler.resynced)
        assert await admin.client_kill_filter(_type=kind, skipme=True) >= 2
        if kind == "pubsub":
            await b.handler.until(lambda: [order] in b.handler.resynced[resyncs:], "b subscribed again")
        # the canary came through again (no handler event for that)
        await wait_for(lambda: a.relay.healthy and b.relay.healthy, timeout=10, what="both relays healthy")
        for n, (src, dst) in enumerate([(a, b), (b, a)]):
            ev = RoomEvent(order, b"after %d" % n, seq=2 + n)
            src.relay.publish_room(ev)
            await dst.handler.until(lambda ev=ev, dst=dst: ev in dst.handler.got, "an event after the cut", timeout=10)
        for node in (a, b):  # nothing came twice, and nothing of its own came back
            assert len(node.handler.got) == len(set(map(bytes, (e.data for e in node.handler.got))))
    finally:
        await admin.aclose()
        for node in (a, b):
            await node.close()
