"""A reader that stops reading is closed with 1013; the room goes on without it (issue 2, point 8).
One that only sends pings holds a bounded backlog, and nothing once it is closed."""

from __future__ import annotations

import asyncio

import pytest

from chatd.edge.keys import CHAT, ENDPOINT
from chatd.errors import CloseCode
from tests.support.client import token
from tests.support.rawws import RawWS

QUEUE_FRAMES = 16
BUFFER_BYTES = 16384
TEXT = "x" * 60000  # about 60 KB a frame: a few MB of kernel buffers fill after some dozens
MAX_MESSAGES = 2000  # the poster gives up here: the slow reader must be gone long before


@pytest.fixture
def limits():
    return {
        "outbound_queue_frames": QUEUE_FRAMES,
        "outbound_buffer_bytes": BUFFER_BYTES,
        "max_text_chars": len(TEXT) + 10,
    }


async def test_slow_reader_is_closed_1013_and_others_get_everything(server):
    await server.order("s1")
    member = await server.client("supplier1", "supplier")
    await member.join("s1")
    poster = await server.client("staff1", "staff")  # staff: exempt from the rate limit

    port = int(server.base.rsplit(":", 1)[1])
    slow = await RawWS.open(port, rcvbuf=4096)
    await slow.send({"type": "auth", "token": token("buyer1", "buyer")})
    await slow.send({"type": "join", "order": "s1"})
    await slow.until("joined")  # ... and from here on it reads nothing

    hub = server.app[CHAT].hub
    sent = 0
    # post until the server gives up on the slow reader (bounded), then a few more
    while hub.slow_closes == 0 and sent < MAX_MESSAGES:
        sent += 1
        ack = await poster.post("s1", TEXT + str(sent))
        assert ack["type"] == "ack" and ack["seq"] == sent
    assert hub.slow_closes == 1, f"slow reader still open after {sent} messages"
    for _ in range(20):
        sent += 1
        assert (await poster.post("s1", TEXT + str(sent)))["seq"] == sent

    # the member in the same room got every message, in order
    await member.expect("message", seq=sent)
    assert [m["seq"] for m in member.of_type("message")] == list(range(1, sent + 1))
    assert member.close_code is None

    # the slow reader, reading at last, finds a prefix of the stream and then 1013
    frames, code = await asyncio.wait_for(slow.drain(), 20)
    slow.close()
    assert code == 1013
    got = [f["seq"] for f in frames if f.get("type") == "message"]
    assert got == list(range(1, len(got) + 1)) and len(got) < sent


PING = b"p" * 125  # the largest payload a control frame holds
MAX_PINGS = 200_000  # about 26 MB: the kernel's buffers are full long before


@pytest.mark.parametrize("limits", [{"outbound_buffer_bytes": BUFFER_BYTES, "auth_timeout_s": 60}])
@pytest.mark.parametrize("authenticated", [True, False], ids=["after-auth", "before-auth"])
async def test_pings_from_a_reader_that_stopped_are_bounded_and_let_go_at_close(server, monkeypatch, authenticated):
    """A client that pings and never reads holds at most `outbound_buffer_bytes` (and one
    pong) of answers; once its socket is closed the server keeps nothing for it."""
    port = int(server.base.rsplit(":", 1)[1])
    ep = server.app[ENDPOINT]
    slow = await RawWS.open(port, rcvbuf=4096)
    try:
        if authenticated:
            await slow.send({"type": "auth", "token": token("buyer1", "buyer")})
            await slow.until("ready")  # ... and from here on it reads nothing
        (sock,) = ep.sockets.open
        transport = sock.transport
        worst, more = 0, None  # pings still to send once the kernel's buffers are full
        for i in range(MAX_PINGS):
            await slow._send_raw(0x9, PING)
            if i % 500 == 0:
                await asyncio.sleep(0)  # the server reads what was sent (one read takes it all)
                held = transport.get_write_buffer_size()
                worst = max(worst, held)
                if more is None and held:
                    more = 4000  # about 500 KB of pongs more: kept, they would pass the bound at once
                elif more is not None and (more := more - 500) <= 0:
                    break
        assert more is not None, "the kernel's buffers never filled: nothing was held"
        assert worst <= BUFFER_BYTES + 2 + len(PING), f"the server holds {worst} bytes of pongs"

        # closed by the server (the auth deadline, or shutdown): the peer never answers nor reads
        monkeypatch.setattr(ep.sockets, "close_timeout_s", 0.1)
        if authenticated:
            sock.close(CloseCode.GOING_AWAY, b"server shutting down")
        else:
            sock.no_auth_in_time()
        await asyncio.wait_for(sock.wait_closed(), 5)
        assert transport.is_closing() and transport.get_write_buffer_size() == 0, (
            f"{transport.get_write_buffer_size()} bytes kept for a peer that does not read"
        )
    finally:
        slow.close()
