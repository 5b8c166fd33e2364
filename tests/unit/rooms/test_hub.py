"""Gap filling never stops fan-out: the hub reads a gap from the store in a task,
holds that room's later events meanwhile and releases them in order.

Real sockets on 127.0.0.1 carry what the hub writes; the store is stood in for by
an async gap reader that answers only when the test opens its gate, so the test
controls when the "read" completes instead of sleeping.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

import msgspec

from chatd.auth.tokens import Identity
from chatd.rooms.events import RoomEvent
from chatd.rooms.hub import Conn, Hub
from chatd.wire import encode, frame


def _ev(order: str, seq: int = 0, text: str = "") -> RoomEvent:
    return RoomEvent(order, frame(encode({"order": order, "seq": seq, "text": text})), seq)


class Peer:
    """The far end of a real TCP connection: reads the frames the hub wrote."""

    def __init__(self, reader: asyncio.StreamReader) -> None:
        self.reader = reader

    async def next(self, timeout: float = 5.0) -> dict:
        head = await asyncio.wait_for(self.reader.readexactly(2), timeout)
        n = head[1] & 0x7F
        if n == 126:
            n = int.from_bytes(await self.reader.readexactly(2), "big")
        return msgspec.json.decode(await asyncio.wait_for(self.reader.readexactly(n), timeout))

    async def nothing(self) -> bool:
        """True if no byte is waiting: what the hub wrote so far has been read."""
        try:
            await asyncio.wait_for(self.reader.read(1), 0.05)
        except TimeoutError:
            return True
        return False


@contextlib.asynccontextmanager
async def sockets(n: int):
    """n (server-side transport, client-side Peer) pairs over 127.0.0.1."""
    accepted: asyncio.Queue = asyncio.Queue()

    async def on_conn(reader, writer):
        await accepted.put(writer)

    server = await asyncio.start_server(on_conn, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    pairs, writers = [], []
    try:
        for _ in range(n):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            server_side = await accepted.get()
            writers += [writer, server_side]
            pairs.append((server_side.transport, Peer(reader)))
        yield pairs
    finally:
        for w in writers:
            w.close()
        server.close()
        await server.wait_closed()


def _member(hub: Hub, transport, user: str, order: str, replayed_to: int) -> Conn:
    conn = Conn(Identity(user, user, "supplier", None, time.time() + 3600), transport, lambda *a: None)
    hub.add_conn(conn)
    member, _ = hub.join(conn, order, True)
    hub.release(conn, order, member, replayed_to)
    return conn


async def test_a_gap_is_filled_in_a_task_and_later_events_wait_in_order():
    gate = asyncio.Event()
    calls = []

    async def gap_reader(order, after, before):
        calls.append((order, after, before))
        await gate.wait()  # the store is slow
        return [_ev(order, s, "from the store") for s in range(after + 1, before)]

    hub = Hub(queue_frames=100, buffer_bytes=1 << 20, gap_reader=gap_reader)
    async with sockets(2) as ((ta, a), (tb, b)):
        _member(hub, ta, "u1", "r1", replayed_to=1)
        _member(hub, tb, "u2", "r2", replayed_to=0)

        hub.deliver_room(_ev("r1", 4, "live"))  # 2 and 3 are missing: returns at once
        hub.deliver_room(_ev("r1", 0, "typing"))  # no seq: waits behind the gap too
        hub.deliver_room(_ev("r1", 3, "relayed late"))  # the store's copy covers it
        hub.deliver_room(_ev("r1", 5, "live"))
        hub.deliver_room(_ev("r2", 1, "other room"))  # another room is not held up

        assert (await b.next())["text"] == "other room"
        assert calls == [("r1", 1, 4)]
        assert await a.nothing()  # r1 waits for its gap

        gate.set()
        got = [await a.next() for _ in range(5)]
        assert [(m["seq"], m["text"]) for m in got] == [
            (2, "from the store"),
            (3, "from the store"),
            (4, "live"),
            (0, "typing"),
            (5, "live"),
        ]
        hub.deliver_room(_ev("r1", 5, "again"))  # an older copy: dropped
        hub.deliver_room(_ev("r1", 6, "live"))
        assert (await a.next())["seq"] == 6
        await hub.aclose()


async def test_a_second_gap_found_in_the_held_events_is_filled_next():
    answers = {(1, 3): asyncio.Event(), (3, 6): asyncio.Event()}
    calls = []

    async def gap_reader(order, after, before):
        calls.append((after, before))
        await answers[(after, before)].wait()
        return [_ev(order, s, "stored") for s in range(after + 1, before)]

    hub = Hub(queue_frames=100, buffer_bytes=1 << 20, gap_reader=gap_reader)
    async with sockets(1) as ((ta, a),):
        _member(hub, ta, "u1", "r1", replayed_to=1)
        hub.deliver_room(_ev("r1", 3, "live"))  # gap: 2
        hub.deliver_room(_ev("r1", 6, "live"))  # behind it, a second gap: 4, 5
        hub.deliver_room(_ev("r1", 7, "live"))
        answers[(1, 3)].set()
        assert [(await a.next())["seq"] for _ in range(2)] == [2, 3]
        assert calls == [(1, 3), (3, 6)]
        assert await a.nothing()
        answers[(3, 6)].set()
        assert [(await a.next())["seq"] for _ in range(4)] == [4, 5, 6, 7]
        await hub.aclose()


async def test_a_failed_gap_read_still_releases_what_was_held():
    async def gap_reader(order, after, before):
        raise RuntimeError("store down")

    hub = Hub(queue_frames=100, buffer_bytes=1 << 20, gap_reader=gap_reader)
    async with sockets(1) as ((ta, a),):
        _member(hub, ta, "u1", "r1", replayed_to=1)
        hub.deliver_room(_ev("r1", 4, "live"))
        hub.deliver_room(_ev("r1", 5, "live"))
        assert [(await a.next())["seq"] for _ in range(2)] == [4, 5]  # the gap stays (resume fills it)
        await hub.aclose()


async def test_an_event_without_seq_before_the_first_release_does_not_start_the_count():
    """A room new here counts from its first member's replay: a presence event
    published while that join replays must not set the count to 0, or the next
    message would look like a gap and wait for a store read."""
    calls = []

    async def gap_reader(order, after, before):
        calls.append((after, before))
        return []

    hub = Hub(queue_frames=100, buffer_bytes=1 << 20, gap_reader=gap_reader)
    async with sockets(1) as ((ta, a),):
        conn = Conn(Identity("u1", "u1", "supplier", None, time.time() + 3600), ta, lambda *a: None)
        hub.add_conn(conn)
        member, _ = hub.join(conn, "r1", True)
        hub.deliver_room(_ev("r1", 0, "online"))  # the joiner's own presence, during the replay
        hub.release(conn, "r1", member, replayed_to=9)
        hub.deliver_room(_ev("r1", 10, "live"))
        assert [(m["seq"], m["text"]) for m in [await a.next(), await a.next()]] == [(0, "online"), (10, "live")]
        assert calls == []  # delivered at once: no gap to read
        await hub.aclose()
