"""The relay contract (chatd.relay.base), the same tests over LocalRelay and
RedisRelay (a real redis-server): what callers may rely on whichever runs.

A "node" is one instance as chat.Chat drives it: a relay, the handler it
delivers to, and the connection counts Chat passes to `admit`. LocalRelay is
the only instance there is, so asking it for two nodes gives the same node
twice: every assertion below holds for one process as for several.
"""

from __future__ import annotations

import asyncio
import itertools
import uuid

import pytest

from chatd.relay.local import LocalRelay
from chatd.relay.redis import RedisRelay
from chatd.rooms.events import RoomEvent, UserEvent
from tests.support.procs import free_port
from tests.support.wait import wait_for


class Recorder:
    """A Handler that keeps what it was given, in order, and wakes waiters."""

    def __init__(self) -> None:
        self.got: list[RoomEvent | UserEvent] = []
        self.resynced: list = []
        self._changed = asyncio.Event()

    def deliver_room(self, ev: RoomEvent) -> None:
        self.got.append(ev)
        self._changed.set()

    def deliver_user(self, ev: UserEvent) -> None:
        self.got.append(ev)
        self._changed.set()

    def resync(self, orders=None) -> None:
        self.resynced.append(orders)
        self._changed.set()

    async def until(self, cond, what: str, timeout: float = 10.0) -> None:
        try:
            async with asyncio.timeout(timeout):
                while not cond():
                    self._changed.clear()
                    await self._changed.wait()
        except TimeoutError:
            raise AssertionError(f"timed out waiting for {what}") from None


class Node:
    def __init__(self, relay, across_instances: bool) -> None:
        self.relay = relay
        self.handler = Recorder()
        self.across_instances = across_instances
        self.held: dict[str, int] = {}  # user -> admitted connections here
        self.admitting: dict[str, int] = {}  # ... and being admitted (as Chat.admit counts them)
        self.closed = False

    async def watch(self, order: str, user: str) -> None:
        """This node has a member in `order` and a connection of `user` from now on."""
        self.relay.watch_user(user, True)
        self.relay.watch_room(order, True)
        if self.across_instances:  # subscribed once the relay resyncs the room (both in one SUBSCRIBE)
            await self.handler.until(lambda: [order] in self.handler.resynced, f"{order} subscribed")

    async def connect(self, user: str, limit: int) -> bool:
        local = self.held.get(user, 0) + self.admitting.get(user, 0)
        self.admitting[user] = self.admitting.get(user, 0) + 1
        try:
            ok = await self.relay.admit(user, limit, local)
        finally:
            self.admitting[user] -= 1
        if ok:
            self.held[user] = self.held.get(user, 0) + 1
        return ok

    async def close(self) -> None:
        self.closed = True
        await self.relay.aclose()

    def disconnect(self, user: str) -> None:
        self.held[user] -= 1
        self.relay.release(user, self.held[user])


def presence_frame(order: str, user: str, online: bool) -> bytes:
    return f"presence {order} {user} {online}".encode()


_dbs = itertools.count()


@pytest.fixture(params=["local", "redis"])
async def make(request):
    """make(n) -> n started nodes of one deployment (LocalRelay: one node, n times)."""
    nodes: list[Node] = []
    url = None
    if request.param == "redis":
        url = request.getfixturevalue("redis_url").rsplit("/", 1)[0] + f"/{next(_dbs) % 16}"

    async def start(relay, across: bool) -> Node:
        node = Node(relay, across)
        nodes.append(node)
        await relay.start(node.handler)
        return node

    async def make_nodes(n: int, unreachable: bool = False) -> list[Node]:
        if request.param == "local":
            return [await start(LocalRelay(), False)] * n
        target = f"redis://127.0.0.1:{free_port()}/0" if unreachable else url  # nothing listens there
        # a loaded CI machine may take over a second to answer: the fallback is not what these test
        timeout = 1.0 if unreachable else 30.0
        return [await start(RedisRelay(target, presence_frame, admit_timeout_s=timeout), True) for _ in range(n)]

    yield make_nodes
    for node in {id(n): n for n in nodes}.values():
        if not node.closed:
            await node.close()


def names() -> tuple[str, str]:
    tag = uuid.uuid4().hex[:8]
    return f"o-{tag}", f"u-{tag}"


def interleaved(order: str, user: str, n: int) -> list[RoomEvent | UserEvent]:
    return [
        RoomEvent(order, b"r%d" % i, seq=i + 1) if i % 3 else UserEvent(user, b"u%d" % i, order=order) for i in range(n)
    ]


def publish(node: Node, events) -> None:
    for ev in events:
        if isinstance(ev, RoomEvent):
            node.relay.publish_room(ev)
        else:
            node.relay.publish_user(ev)


# --- pub/sub -------------------------------------------------------------------


async def test_the_publishers_handler_gets_each_event_at_once_in_order(make):
    [a] = await make(1)
    order, user = names()
    await a.watch(order, user)
    events = interleaved(order, user, 60)
    publish(a, events)  # no suspension point: delivered here before publish returns
    assert a.handler.got == events


async def test_every_watcher_gets_a_publishers_events_once_in_order(make):
    a, b = await make(2)
    order, user = names()
    for node in {id(n): n for n in (a, b)}.values():
        await node.watch(order, user)
    events = interleaved(order, user, 300)
    publish(a, events)
    assert a.handler.got == events
    await b.handler.until(lambda: len(b.handler.got) >= len(events), "the events at the watcher")
    # The watcher answers; once the publisher has that, any echo of its own
    # events would have come before it (one subscription, in Redis's order).
    answer = RoomEvent(order, b"answer", seq=len(events) + 1)
    b.relay.publish_room(answer)
    await a.handler.until(lambda: answer in a.handler.got, "the answer at the publisher")
    assert a.handler.got == events + [answer]
    assert b.handler.got == events + [answer]


async def test_publishing_neither_blocks_nor_raises_when_no_instance_can_be_reached(make):
    [a] = await make(1, unreachable=True)
    order, user = names()
    a.relay.watch_user(user, True)
    a.relay.watch_room(order, True)
    events = interleaved(order, user, 50)
    publish(a, events)
    assert a.handler.got == events
    # admission falls back to this instance's own count
    assert [await a.connect(user, 2) for _ in range(3)] == [True, True, False]


async def test_a_first_presence_reaches_the_room(make):
    a, b = await make(2)
    order, user = names()
    for node in {id(n): n for n in (a, b)}.values():
        await node.watch(order, user)
    frame = presence_frame(order, user, True)
    a.relay.presence(order, user, True, frame)
    for node in (a, b):
        await node.handler.until(lambda node=node: RoomEvent(order, frame) in node.handler.got, "presence")


async def test_who_is_online_is_read_also_where_the_room_is_not_watched(make):
    """`online_now` answers for rooms this node has no member in (REST, thread lists):
    the user another node holds there, once that reached Redis (LocalRelay: nobody
    elsewhere, the hub knows everyone)."""
    a, b = await make(2)
    order, user = names()
    await a.watch(order, user)
    a.relay.presence(order, user, True, presence_frame(order, user, True))
    want = {order: frozenset({user}) if b.across_instances else frozenset(), "nowhere": frozenset()}

    async def known():
        return await b.relay.online_now([order, "nowhere"]) == want

    await wait_for(known, timeout=10, what=f"{user} online in {order}, read where it is not watched")
    assert b.relay.online("nowhere") == frozenset()


async def test_who_is_online_is_nobody_known_when_no_instance_can_be_reached(make):
    [a] = await make(1, unreachable=True)
    order, _ = names()
    assert await a.relay.online_now([order]) == {order: frozenset()}


# --- admission -------------------------------------------------------------------


async def test_admits_within_the_limit_and_again_after_a_release(make):
    [a] = await make(1)
    _, user = names()
    assert [await a.connect(user, 2) for _ in range(3)] == [True, True, False]
    a.disconnect(user)
    assert await a.connect(user, 2) is True
    assert await a.connect(user, 2) is False
    assert await a.connect(user, 0) is False


async def test_the_limit_counts_connections_on_every_instance(make):
    a, b = await make(2)
    order, user = names()
    await b.watch(order, user)
    assert [await a.connect(user, 3), await a.connect(user, 3)] == [True, True]
    assert await b.connect(user, 3) is True
    assert await b.connect(user, 3) is False
    assert await a.connect(user, 3) is False
    a.disconnect(user)
    # the release counts everywhere once what `a` publishes next has arrived
    marker = RoomEvent(order, b"after the release")
    a.relay.publish_room(marker)
    await b.handler.until(lambda: marker in b.handler.got, "the marker at b")
    assert await b.connect(user, 3) is True
    assert await a.connect(user, 3) is False


async def test_instances_admitting_at_once_stay_within_the_limit(make):
    """Many tabs opening at once, on several instances: never more than the limit."""
    a, b = await make(2)
    users = [names()[1] for _ in range(10)]
    tries = [(user, node) for user in users for node in (a, b, a, b, a, b)]
    results = await asyncio.gather(*(node.connect(user, 3) for user, node in tries))
    admitted = {user: 0 for user in users}
    for (user, _), ok in zip(tries, results, strict=True):
        admitted[user] += ok
    if getattr(a.relay, "admit_fallbacks", 0) + getattr(b.relay, "admit_fallbacks", 0):
        # Redis did not answer in time: each instance's own count decided (the documented bound)
        assert all(0 < n <= 3 * 2 for n in admitted.values())
        return
    assert admitted == {user: 3 for user in users}
    assert all(a.held.get(user, 0) + (b.held.get(user, 0) if b is not a else 0) == 3 for user in users)


async def test_aclose_ends_what_the_relay_started(make):
    before = asyncio.all_tasks()
    [a] = await make(1)
    order, user = names()
    assert [await a.connect(user, 2) for _ in range(3)] == [True, True, False]
    a.disconnect(user)
    publish(a, interleaved(order, user, 20))
    assert await a.connect(user, 2) is True
    await a.close()
    assert asyncio.all_tasks() - before == set()
