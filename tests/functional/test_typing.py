"""Typing indicators: forwarded to the others only, throttled, and expired by the server."""

from __future__ import annotations

import time

import pytest

from chatd.edge.keys import CHAT
from tests.support.client import settled

BACKENDS = ("single", "cluster")  # each test also runs over two instances and Redis

TTL = 0.3


@pytest.fixture
def limits():
    return {"typing_ttl_s": TTL}


async def _room(server):
    await server.order("t1")
    buyer = await server.client("buyer1", "buyer")
    supplier = await server.client("supplier1", "supplier")
    rep = await server.client("rep1", "sales_rep")
    for c in (buyer, supplier, rep):
        await c.join("t1")
    return buyer, supplier, rep


async def test_typing_reaches_others_not_the_typist(server):
    buyer, supplier, rep = await _room(server)
    buyer_tab2 = await server.client("buyer1", "buyer")
    await buyer_tab2.join("t1")
    await buyer.send({"type": "typing", "order": "t1", "active": True})
    for c in (supplier, rep):
        t = await c.expect("typing", order="t1")
        assert t["user"] == {"id": "buyer1", "name": "Buyer1", "role": "buyer"} and t["active"] is True
    await buyer.send({"type": "typing", "order": "t1", "active": False})
    for c in (supplier, rep):
        assert (await c.expect("typing", order="t1"))["active"] is False
    await settled(buyer)
    await settled(buyer_tab2)
    assert buyer.of_type("typing") == [] and buyer_tab2.of_type("typing") == []


async def test_typing_is_throttled(server):
    buyer, supplier, _ = await _room(server)
    for _ in range(5):
        await buyer.send({"type": "typing", "order": "t1", "active": True})
    # a message after the burst of typing frames: everything before it has arrived when it does
    await buyer.post("t1", "done typing")
    await supplier.expect("message", text="done typing")
    assert [t["active"] for t in supplier.of_type("typing")][:1] == [True]
    assert len([t for t in supplier.of_type("typing") if t["active"]]) == 1


async def test_typing_expires_without_refresh(server):
    buyer, supplier, rep = await _room(server)
    started = time.monotonic()
    await buyer.send({"type": "typing", "order": "t1", "active": True})
    assert (await supplier.expect("typing", order="t1", active=True))["user"]["id"] == "buyer1"
    # no refresh: the server itself says the buyer stopped
    t = await supplier.expect("typing", order="t1", active=False, timeout=5)
    assert t["user"]["id"] == "buyer1"
    assert time.monotonic() - started >= TTL
    await rep.expect("typing", order="t1", active=False, timeout=5)
    await settled(buyer)
    assert buyer.of_type("typing") == []
    # typing again afterwards is news again
    await buyer.send({"type": "typing", "order": "t1", "active": True})
    await supplier.expect("typing", order="t1", active=True)
    # an explicit stop after an expiry is not repeated
    t = await supplier.expect("typing", order="t1", active=False, timeout=5)
    await buyer.send({"type": "typing", "order": "t1", "active": False})
    await buyer.post("t1", "sentinel")
    await supplier.expect("message", text="sentinel")
    assert [x["active"] for x in supplier.of_type("typing")] == [True, False, True, False]


async def test_typist_who_goes_away_stops_typing(server):
    """A typist closing the tab (or leaving) must not stay "typing" for the others."""
    buyer, supplier, rep = await _room(server)
    await buyer.send({"type": "typing", "order": "t1", "active": True})
    await supplier.expect("typing", order="t1", active=True)
    await buyer.close()
    t = await supplier.expect("typing", order="t1", active=False, timeout=5)
    assert t["user"]["id"] == "buyer1"
    await rep.send({"type": "typing", "order": "t1", "active": True})
    await supplier.expect("typing", order="t1", active=True)
    await rep.send({"type": "leave", "order": "t1"})
    t = await supplier.expect("typing", order="t1", active=False, timeout=5)
    assert t["user"]["id"] == "rep1"


@pytest.mark.single_only("the clock is injected into the in-process server")
async def test_alternating_typing_flood_is_coalesced(server):
    """`active` true/false alternating 1,000 times: one event per interval, the latest state wins."""
    buyer, supplier, rep = await _room(server)
    chat = server.app[CHAT]
    now = [1000.0]
    chat.clock = lambda: now[0]  # frozen: all 1,000 frames fall into one interval
    for i in range(1000):
        await buyer.send({"type": "typing", "order": "t1", "active": i % 2 == 0})
    await settled(buyer)  # all handled; what they caused for the others is queued
    for c in (supplier, rep):
        await settled(c)
        assert [t["active"] for t in c.of_type("typing")] == [True]
    now[0] += 1.0 / server.cfg.limits.typing_per_s  # the interval is over
    for c in (supplier, rep):
        await c.expect("typing", order="t1", active=False)  # sent by the server's sweeper
        await settled(c)
        assert [t["active"] for t in c.of_type("typing")] == [True, False]
    assert server.app[CHAT].hub.rooms["t1"].typing_due(now[0], 1.0) == []


async def test_typing_a_note_is_told_to_note_readers_only(server):
    """The buyer must not learn that a note is being written about the order: a
    supplier typing a note shows to the rep, never to the buyer; switching to a
    message stops the note's indicator and starts one everybody sees."""
    buyer, supplier, rep = await _room(server)
    await supplier.send({"type": "typing", "order": "t1", "active": True, "note": True})
    t = await rep.expect("typing", order="t1", active=True)
    assert t["user"]["id"] == "supplier1"
    await supplier.send({"type": "typing", "order": "t1", "active": False})  # the note is done
    await rep.expect("typing", order="t1", active=False)
    await supplier.post("t1", "a sentinel for the buyer")
    await buyer.expect("message", text="a sentinel for the buyer")  # everything before it has arrived
    assert buyer.of_type("typing") == []
    # a buyer types no notes
    await buyer.send({"type": "typing", "order": "t1", "active": True, "note": True})
    err = await buyer.expect("error", ref="t1")
    assert err["code"] == "forbidden"
    await settled(rep)
    assert [x["user"]["id"] for x in rep.of_type("typing")] == ["supplier1", "supplier1"]


@pytest.mark.single_only("the clock is injected into the in-process server")
async def test_switching_from_a_note_to_a_message_while_typing(server):
    buyer, supplier, rep = await _room(server)
    chat = server.app[CHAT]
    now = [1000.0]
    chat.clock = lambda: now[0]
    await supplier.send({"type": "typing", "order": "t1", "active": True, "note": True})
    await rep.expect("typing", order="t1", active=True)
    await supplier.send({"type": "typing", "order": "t1", "active": True})  # now a message everyone will see
    await rep.expect("typing", order="t1", active=False)  # the note's indicator stops for those shown it
    now[0] += 1.0 / server.cfg.limits.typing_per_s  # the interval is over: the sweeper starts the new one
    await buyer.expect("typing", order="t1", active=True)
    await rep.expect("typing", order="t1", active=True)
    assert [x["active"] for x in buyer.of_type("typing")] == [True]
