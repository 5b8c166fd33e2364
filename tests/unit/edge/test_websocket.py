"""The socket chatd serves after the handshake (chatd.edge.websocket), on a stand-in transport.

It relies on aiohttp's frame reader calling it as its queue; these tests pin
that contract (an aiohttp upgrade that changes it fails here first) and the
close handshake, the order frames are served in, the backlog's flow control,
which pings are answered and the shared heartbeat.
"""

from __future__ import annotations

import asyncio
import os
import struct

from chatd.edge.heartbeat import Sockets
from chatd.edge.websocket import BACKLOG_BYTES, CLOSED, CLOSING, OPEN, WebSocket


class Transport:
    def __init__(self) -> None:
        self.out = bytearray()
        self.closing = False
        self.aborted = False
        self.paused = False
        self.unsent = 0  # what a real transport holds for a peer that does not read

    def write(self, data: bytes) -> None:
        assert not self.closing
        self.out += data

    def get_write_buffer_size(self) -> int:
        return self.unsent

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        self.closing = True

    def abort(self) -> None:
        self.closing = self.aborted = True
        self.unsent = 0

    def pause_reading(self) -> None:
        self.paused = True

    def resume_reading(self) -> None:
        self.paused = False

    def frames(self) -> list[tuple[int, bytes]]:
        """What was written, as (opcode, payload); server frames are unmasked and short here."""
        out, b = [], bytes(self.out)
        while b:
            n, at = b[1] & 0x7F, 2
            if n == 126:
                n, at = struct.unpack("!H", b[2:4])[0], 4
            out.append((b[0] & 0x0F, b[at : at + n]))
            b = b[at + n :]
        self.out.clear()
        return out


def client_frame(opcode: int, payload: bytes, fin: bool = True) -> bytes:
    mask = os.urandom(4)
    n = len(payload)
    head = bytes(((0x80 if fin else 0) | opcode,))
    if n < 126:
        head += bytes((0x80 | n,))
    elif n < 65536:
        head += struct.pack("!BH", 0x80 | 126, n)
    else:
        head += struct.pack("!BQ", 0x80 | 127, n)
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


class Echo(WebSocket):
    """Serves each frame by recording it; a gate, when set, holds every frame until opened."""

    __slots__ = ("seen", "ends", "gate")

    def __init__(self, sockets: Sockets, transport: Transport, max_msg_size: int = 1024) -> None:
        super().__init__(sockets, transport, max_msg_size)  # type: ignore[arg-type]
        self.seen: list[str | bytes] = []
        self.ends: list[tuple[int | None, str]] = []
        self.gate: asyncio.Event | None = None

    async def on_frame(self, data: str | bytes) -> None:
        if self.gate is not None:
            await self.gate.wait()
        self.seen.append(data)

    def on_end(self, code: int | None, how: str) -> None:
        self.ends.append((code, how))


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


def socket(close_timeout_s: float = 5.0, heartbeat_s: float | None = None) -> tuple[Echo, Transport]:
    t = Transport()
    return Echo(Sockets(heartbeat_s, close_timeout_s), t), t


async def test_text_binary_and_fragmented_frames_are_served_in_order():
    ws, t = socket()
    ws.data_received(client_frame(0x1, b"one") + client_frame(0x2, b"\x00two"))
    ws.data_received(client_frame(0x1, b"thr", fin=False) + client_frame(0x9, b"p"))  # a ping between fragments
    ws.data_received(client_frame(0x0, b"ee"))
    await settle()
    assert ws.seen == ["one", b"\x00two", "three"]
    assert t.frames() == [(0xA, b"p")]  # the ping answered at once
    assert ws.task is None  # nothing runs while it waits


async def test_their_close_is_answered_1000_after_the_frames_before_it():
    ws, t = socket()
    ws.gate = asyncio.Event()
    ws.data_received(client_frame(0x1, b"a") + client_frame(0x1, b"b") + client_frame(0x8, struct.pack("!H", 4000)))
    await settle()
    assert ws.state is OPEN and not t.closing  # the close waits behind the frames
    ws.gate.set()
    await settle()
    assert ws.seen == ["a", "b"]
    assert t.frames() == [(0x8, struct.pack("!H", 1000))] and t.closing
    assert ws.state is CLOSED and ws.ends == [(4000, "client")]
    await asyncio.wait_for(ws.wait_closed(), 1)


async def test_our_close_waits_for_theirs_and_drops_what_was_not_served():
    ws, t = socket()
    ws.gate = asyncio.Event()
    ws.data_received(client_frame(0x1, b"busy") + client_frame(0x1, b"dropped"))
    await settle()
    ws.close(4401, b"why")
    assert t.frames() == [(0x8, struct.pack("!H", 4401) + b"why")]
    assert ws.state is CLOSING and not t.closing
    assert ws.ends == []  # on_end waits for the frame being served
    ws.gate.set()
    await settle()
    assert ws.seen == ["busy"] and ws.ends == [(4401, "closed")]
    ws.data_received(client_frame(0x1, b"late") + client_frame(0x8, struct.pack("!H", 4401)))
    await settle()
    assert ws.seen == ["busy"] and t.closing and ws.state is CLOSED
    ws.connection_lost(None)
    assert ws.ends == [(4401, "closed")]  # once
    await asyncio.wait_for(ws.wait_closed(), 1)


async def test_our_close_gives_up_waiting_after_the_timeout():
    ws, t = socket(close_timeout_s=0.05)
    ws.close(1001)
    await asyncio.wait_for(ws.wait_closed(), 1)
    assert t.closing and ws.state is CLOSED
    assert t.aborted  # what the peer did not read is not kept for it


async def test_a_close_with_bytes_unsent_aborts_after_the_timeout():
    ws, t = socket(close_timeout_s=0.05)
    t.unsent = 1 << 20
    ws.data_received(client_frame(0x8, struct.pack("!H", 1000)))
    assert t.closing and not t.aborted  # closed, the answer still owed
    assert ws.state is CLOSED and ws.ends == [(1000, "client")]
    await asyncio.sleep(0.1)
    assert t.aborted and t.unsent == 0


async def test_a_close_with_nothing_unsent_is_not_aborted():
    ws, t = socket(close_timeout_s=0.05)
    ws.data_received(client_frame(0x8, struct.pack("!H", 1000)))
    await asyncio.sleep(0.1)
    assert t.closing and not t.aborted


async def test_pings_are_answered_only_while_little_is_unsent():
    ws, t = socket()
    t.unsent = ws.sockets.buffer_bytes
    ws.data_received(client_frame(0x9, b"a"))
    assert t.frames() == [(0xA, b"a")]
    t.unsent += 1  # past the backlog the hub holds frames at: a peer that does not read
    ws.data_received(client_frame(0x9, b"b") * 1000)
    assert t.frames() == []
    t.unsent = 0  # it reads again: the next ping is answered
    ws.data_received(client_frame(0x9, b"c"))
    assert t.frames() == [(0xA, b"c")] and ws.state is OPEN


async def test_a_frame_too_large_closes_1009_at_once():
    ws, t = socket()
    ws.data_received(client_frame(0x1, b"x" * 1024))  # max_msg_size 1024: refused (chatd passes limit + 1)
    await settle()
    assert t.frames() == [(0x8, struct.pack("!H", 1009))] and t.closing
    assert ws.seen == [] and ws.ends == [(1009, "error")]


async def test_invalid_utf8_closes_1007():
    ws, t = socket()
    ws.data_received(client_frame(0x1, b"\xff\xfe"))
    await settle()
    assert t.frames() == [(0x8, struct.pack("!H", 1007))] and ws.ends == [(1007, "error")]


async def test_the_end_of_the_stream_still_serves_what_was_read():
    ws, t = socket()
    ws.gate = asyncio.Event()
    ws.data_received(client_frame(0x1, b"a") + client_frame(0x1, b"b"))
    await settle()
    ws.connection_lost(None)
    assert ws.ends == []
    ws.gate.set()
    await settle()
    assert ws.seen == ["a", "b"] and ws.ends == [(None, "lost")]


async def test_a_long_backlog_pauses_reading_until_half_is_served():
    ws, t = socket()
    ws.gate = asyncio.Event()
    frame = client_frame(0x1, b"y" * 1000)
    n = BACKLOG_BYTES // 1000 + 2
    ws.data_received(frame * n)
    await settle()
    assert t.paused
    ws.gate.set()
    await settle()
    assert not t.paused and len(ws.seen) == n


async def test_a_job_runs_before_any_frame():
    ws, t = socket()
    order: list[str] = []
    gate = asyncio.Event()

    async def job() -> None:
        await gate.wait()
        order.append("job")

    ws.begin(job())
    ws.data_received(client_frame(0x1, b"after"))
    await settle()
    assert ws.seen == []
    gate.set()
    await settle()
    assert order == ["job"] and ws.seen == ["after"]


async def test_one_heartbeat_pings_quiet_sockets_and_drops_those_that_stay_quiet():
    sockets = Sockets(heartbeat_s=0.1)  # a tick every 0.05 s
    (quiet, tq), (chatty, tc) = [(Echo(sockets, t), t) for t in (Transport(), Transport())]
    for _ in range(12):
        await asyncio.sleep(0.05)
        chatty.data_received(client_frame(0xA, b""))  # a pong, or any frame, is a sign of life
    assert tq.frames() == [(0x9, b"")] and tq.aborted and quiet.ends == [(1006, "error")]
    assert not tc.closing and chatty.state is OPEN
    assert sockets.open == {chatty}
    chatty.close(1000)
    sockets.stop()


async def test_nothing_after_their_close_is_served():
    ws, t = socket()
    ws.gate = asyncio.Event()
    ws.data_received(client_frame(0x1, b"a") + client_frame(0x8, struct.pack("!H", 1000)) + client_frame(0x1, b"b"))
    await settle()
    ws.gate.set()
    await settle()
    assert ws.seen == ["a"] and ws.ends == [(1000, "client")]
