"""Unread counts across orders, read markers, receipts, presence, inbox and notify."""

from __future__ import annotations

import asyncio
import time

from tests.support.client import Client, request, settled, token
from tests.support.wait import wait_for

BACKENDS = ("single", "cluster")  # each test also runs over two instances and Redis


async def _next_ms(ts: int) -> None:
    """Wait (bounded) until the wall clock has passed `ts`, so activities get distinct times."""
    deadline = time.monotonic() + 1.0
    while int(time.time() * 1000) <= ts and time.monotonic() < deadline:  # noqa: ASYNC110 - polls the clock
        await asyncio.sleep(0.001)


async def _open(server, url: str, sub: str, role: str) -> Client:
    c = await Client.open(url, token(sub, role))
    server.clients.append(c)
    return c


async def test_unread_across_orders_with_total(server):
    for o in ("u1", "u2", "u3"):
        await server.order(o)
    buyer = await server.client("buyer1", "buyer")
    buyer2 = await server.client("buyer1", "buyer")  # a second tab: same counts
    supplier = await server.client("supplier1", "supplier")
    plan = [("u1", "text"), ("u1", "text"), ("u2", "text"), ("u3", "note"), ("u2", "text"), ("u3", "text")]
    for order, kind in plan:
        assert (await supplier.post(order, f"{order} {kind}", kind=kind))["type"] == "ack"
    want = [("u1", 1, 1), ("u1", 2, 2), ("u2", 1, 3), ("u2", 2, 4), ("u3", 1, 5)]
    for c in (buyer, buyer2):
        for order, count, total in want:
            u = await c.expect("unread")
            assert (u["order"], u["count"], u["total"]) == (order, count, total)
        assert len(c.of_type("unread")) == len(want)  # the note moved nothing
    # the sender's own counts do not move
    await settled(supplier)
    assert supplier.of_type("unread") == []

    # reading one order lowers the total everywhere
    await buyer.send({"type": "read", "order": "u1", "seq": 1})
    for c in (buyer, buyer2):
        u = await c.expect("unread", order="u1")
        assert (u["count"], u["total"]) == (1, 4)
    # the read marker never moves backward
    await buyer.send({"type": "read", "order": "u1", "seq": 0})
    await settled(buyer)
    assert len(buyer.of_type("unread", order="u1")) == 3

    j = await buyer.join("u2")
    assert (j["read_seq"], j["unread"], j["last_seq"]) == (0, 2, 2)
    j = await buyer.join("u1")
    assert (j["read_seq"], j["unread"]) == (1, 1)

    # sending moves the sender's marker: their count for u1 drops to 0
    await buyer.post("u1", "thanks")
    for c in (buyer, buyer2):
        u = await c.expect("unread", order="u1", count=0)
        assert u["total"] == 3
    # ... and the supplier now has one unread in u1
    u = await supplier.expect("unread", order="u1")
    assert (u["count"], u["total"]) == (1, 1)

    await buyer.send({"type": "inbox"})
    inbox = await buyer.expect("inbox")
    assert inbox["total_unread"] == 3
    assert {e["order"]: e["unread"] for e in inbox["orders"]} == {"u1": 0, "u2": 2, "u3": 1}


async def test_receipts_and_presence(server):
    await server.order("r1")
    buyer = await server.client("buyer1", "buyer")
    supplier = await server.client("supplier1", "supplier")
    staff = await server.client("staff1", "staff")
    j = await supplier.join("r1")
    assert {p["id"]: p["online"] for p in j["participants"]} == {"buyer1": False, "supplier1": True, "rep1": False}
    await buyer.join("r1")
    p = await supplier.expect("presence", order="r1", user="buyer1")
    assert p["online"] is True
    await staff.join("r1")  # staff is not a participant: no presence
    await supplier.post("r1", "one")
    await supplier.post("r1", "two")
    await buyer.expect("message", seq=2)
    await buyer.send({"type": "read", "order": "r1", "seq": 2})
    r = await supplier.expect("receipt", order="r1")
    assert (r["user"], r["seq"]) == ("buyer1", 2)
    await staff.expect("receipt", order="r1", user="buyer1")
    # a second connection of the buyer joining is not news; the last one leaving is
    buyer2 = await server.client("buyer1", "buyer")
    await buyer2.join("r1")
    await buyer2.send({"type": "leave", "order": "r1"})
    assert (await buyer2.expect("left", order="r1"))["reason"] == "leave"
    await buyer.close()
    p = await supplier.expect("presence", order="r1", user="buyer1", online=False)
    if not hasattr(server, "nodes"):
        assert len(supplier.of_type("presence", user="buyer1")) == 2
    else:  # the other instance's join and leave may reach Redis after this close: a flicker, then offline
        seen = lambda: [f["online"] for f in supplier.of_type("presence", user="buyer1")]  # noqa: E731
        await wait_for(lambda: seen()[-1] is False and seen().count(True) == seen().count(False), what="offline")
        assert seen() in ([True, False], [True, False, True, False], [True, True, False, False]), seen()
    assert staff.of_type("presence", user="staff1") == [] and supplier.of_type("presence", user="staff1") == []


async def test_a_staff_token_holding_a_slot_goes_offline_as_it_went_online(server):
    """A staff token whose id holds a slot is that participant there: online when it
    joins, and offline when it leaves or its connection closes, by the same rule (the
    role on the order, not the token's), on every instance."""
    await server.order("pr1", buyer="b1", supplier="s1", rep=None)
    supplier = await server.client("s1", "supplier")
    await supplier.join("pr1")
    url = server.next_ws_url()  # with two instances: the other one
    buyer = await _open(server, url, "b1", "staff")  # the buyer's id, with a staff token
    await buyer.join("pr1")
    await supplier.expect("presence", user="b1", online=True)
    assert (await request(buyer, {"type": "leave", "order": "pr1"}, "left"))["type"] == "left"
    await supplier.expect("presence", user="b1", online=False)
    # a member joining now where the buyer was reads the room's presence afresh (from Redis)
    late = await _open(server, url, "s1", "supplier")
    j = await late.join("pr1")
    assert {p["id"]: p["online"] for p in j["participants"]} == {"b1": False, "s1": True}
    again = await server.client("b1", "staff")
    await again.join("pr1")
    await supplier.expect("presence", user="b1", online=True)
    await again.close()
    await supplier.expect("presence", user="b1", online=False)
    assert [p["online"] for p in supplier.of_type("presence", user="b1")] == [True, False, True, False]


async def test_inbox_order_and_cursor(server):
    orders = ["ib-a", "ib-b", "ib-c", "ib-d", "ib-e"]
    for o in orders:
        await server.order(o)
    supplier = await server.client("supplier1", "supplier")
    # activity oldest to newest: c, a, e, b, d (not the id order)
    for o in ("ib-c", "ib-a", "ib-e", "ib-b", "ib-d"):
        ack = await supplier.post(o, f"in {o}")
        await _next_ms(ack["ts"])
    buyer = await server.client("buyer1", "buyer")
    seen, cursor = [], None
    for _ in range(5):
        frame = {"type": "inbox", "limit": 2}
        if cursor:
            frame["cursor"] = cursor
        page = await request(buyer, frame, "inbox")
        assert page["total_unread"] == 5
        seen += [e["order"] for e in page["orders"]]
        for e in page["orders"]:
            assert e["unread"] == 1 and e["status"] == "open" and e["dispute_open"] is False
            assert e["last_message"]["text"] == f"in {e['order']}"
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == ["ib-d", "ib-b", "ib-e", "ib-a", "ib-c"]
    # new activity moves an order to the top
    await _next_ms(int(time.time() * 1000))
    await supplier.post("ib-c", "again")
    page = await request(buyer, {"type": "inbox"}, "inbox")
    assert [e["order"] for e in page["orders"]][:2] == ["ib-c", "ib-d"]
    assert page["next_cursor"] is None
    r = await request(buyer, {"type": "inbox", "cursor": "garbage"}, "inbox")
    assert r["type"] == "error" and r["code"] == "bad_request"
    # just some orders: ids not the user's are left out, the answer says which it was for
    only = ["ib-a", "ib-zz", "ib-c"]
    page = await request(buyer, {"type": "inbox", "only": only}, "inbox")
    assert [e["order"] for e in page["orders"]] == ["ib-c", "ib-a"] and page["only"] == only
    assert page["total_unread"] == 6 and page["next_cursor"] is None
    assert "only" not in await request(buyer, {"type": "inbox", "limit": 1}, "inbox")
    r = await request(buyer, {"type": "inbox", "only": [f"o{i}" for i in range(201)]}, "inbox")
    assert r["type"] == "error" and r["code"] == "bad_request" and "only" in r["message"]


async def test_notify_only_after_inbox_and_only_for_orders_not_joined(server):
    await server.order("nt1")
    await server.order("nt2")
    plain = await server.client("buyer1", "buyer")  # never asks for inbox
    watcher = await server.client("buyer1", "buyer")
    supplier = await server.client("supplier1", "supplier")

    await supplier.post("nt1", "before inbox")
    await watcher.expect("unread", order="nt1", count=1)
    await plain.expect("unread", order="nt1", count=1)
    assert watcher.of_type("notify") == []

    await request(watcher, {"type": "inbox"}, "inbox")
    await watcher.join("nt2")
    await supplier.post("nt1", "for the inbox")
    await supplier.post("nt2", "in the open room")
    n = await watcher.expect("notify", order="nt1")
    assert n["message"]["text"] == "for the inbox" and n["message"]["seq"] == 2
    await watcher.expect("message", order="nt2", seq=1)
    await watcher.expect("unread", order="nt2", count=1)
    await plain.expect("unread", order="nt2", count=1)
    assert [n["order"] for n in watcher.of_type("notify")] == ["nt1"]
    assert plain.of_type("notify") == []
    # the sender gets no notify of their own message
    await request(supplier, {"type": "inbox"}, "inbox")
    await supplier.post("nt1", "mine")
    await watcher.expect("unread", order="nt1", count=3)
    await settled(supplier)
    assert supplier.of_type("notify") == []


async def test_rejoin_on_the_same_connection_is_not_presence_news(server):
    await server.order("r1")
    supplier = await server.client("supplier1", "supplier")
    buyer = await server.client("buyer1", "buyer")
    await supplier.join("r1")
    await buyer.join("r1")
    await supplier.expect("presence", user="buyer1", online=True)
    await buyer.join("r1", since=0)  # a resume on the same connection
    await buyer.post("r1", "sentinel")
    await supplier.expect("message", text="sentinel")
    assert [p["online"] for p in supplier.of_type("presence", user="buyer1")] == [True]
    j = await supplier.join("r1")
    assert {p["id"]: p["online"] for p in j["participants"]}["buyer1"] is True


async def test_a_participant_put_in_a_slot_hears_their_new_total(server):
    await server.order("S-1", rep=None)
    await server.order("S-2", supplier="supplier2", rep=None)  # supplier2's own order: a total to add to
    bot = await server.client("bot1", "bot", orders="*")
    for text in ("packed", "labelled", "picked up"):
        assert (await bot.post("S-1", text))["type"] == "ack"
    assert (await bot.post("S-2", "one for supplier2"))["type"] == "ack"
    old = await server.client("supplier1", "supplier")
    new = await server.client("supplier2", "supplier")
    assert (await request(new, {"type": "inbox"}, "inbox"))["total_unread"] == 1
    st, body = await server.api("PUT", "/api/v1/orders/S-1", {"supplier": {"id": "supplier2", "name": "Two"}})
    assert st == 200, body
    u = await new.expect("unread", order="S-1")
    assert (u["count"], u["total"]) == (3, 4)
    u = await old.expect("unread", order="S-1")
    assert (u["count"], u["total"]) == (0, 0)
    # a status change in the same write: the status message counts on from the new marker, and comes last
    body = {"supplier": {"id": "supplier1", "name": "One"}, "status": "shipped"}
    st, _ = await server.api("PUT", "/api/v1/orders/S-1", body)
    assert st == 200
    back = await old.expect("unread", order="S-1", count=3)
    status = await old.expect("unread", order="S-1", count=4)
    assert (back["total"], status["total"]) == (3, 4)
    assert [f for f in old.frames if f is back or f is status] == [back, status]  # by identity: in this order
    u = await new.expect("unread", order="S-1", count=0)
    assert u["total"] == 1
    assert (await request(old, {"type": "inbox"}, "inbox"))["total_unread"] == 4


async def test_a_status_change_a_dispute_or_a_help_request_reads_for_its_sender_on_every_tab(server):
    """Like a post, the message a status change, a dispute or a help request writes moves
    its sender's marker past what they had not read: each of their connections hears it."""
    await server.order("O-1")
    supplier = await server.client("supplier1", "supplier")
    supplier2 = await server.client("supplier1", "supplier")  # another tab: the same badge
    buyer = await server.client("buyer1", "buyer")
    buyer2 = await server.client("buyer1", "buyer")
    for text in ("one", "two", "three"):
        assert (await buyer.post("O-1", text))["type"] == "ack"
    for c in (supplier, supplier2):
        await c.expect("unread", order="O-1", count=3)
    status = {"type": "set_status", "order": "O-1", "status": "shipped", "client_id": "st-1"}
    assert (await request(supplier, status, "ack"))["type"] == "ack"
    for c in (supplier, supplier2):
        u = await c.expect("unread", order="O-1", count=0)
        assert u["total"] == 0
    for c in (buyer, buyer2):  # the buyer's status message; then their dispute reads it
        await c.expect("unread", order="O-1", count=1)
    dispute = {"type": "dispute", "order": "O-1", "action": "open", "client_id": "d-1", "reason": "late"}
    assert (await request(buyer, dispute, "ack"))["type"] == "ack"
    for c in (buyer, buyer2):
        u = await c.expect("unread", order="O-1", count=0)
        assert u["total"] == 0
    for c in (supplier, supplier2):
        await c.expect("unread", order="O-1", count=1)
    assert (await request(supplier, {"type": "help", "order": "O-1", "client_id": "h-1"}, "ack"))["type"] == "ack"
    for c in (supplier, supplier2):
        u = await c.expect("unread", order="O-1", count=0)
        assert u["total"] == 0
    await settled(supplier)
    assert (await request(supplier2, {"type": "inbox"}, "inbox"))["total_unread"] == 0
