"""Sending: acks, exactly-once retries, status and dispute messages, leave, ping, history caps."""

from __future__ import annotations

import uuid

import pytest

from tests.support.client import request, settled

BACKENDS = ("single", "cluster")  # each test also runs over two instances and Redis


async def _history(client, order, **kw) -> list[dict]:
    page = await request(client, {"type": "history", "order": order, **kw}, "history")
    assert page["type"] == "history", page
    return page["messages"]


async def test_retry_with_same_client_id_is_stored_once(server):
    await server.order("o1")
    buyer = await server.client("buyer1", "buyer")
    supplier = await server.client("supplier1", "supplier")
    await supplier.join("o1")
    cid = str(uuid.uuid4())
    first = await buyer.post("o1", "pay now?", client_id=cid)
    assert first["duplicate"] is False and first["seq"] == 1
    again = await buyer.post("o1", "pay now? (retry, text differs)", client_id=cid)
    assert again["duplicate"] is True
    assert (again["seq"], again["ts"], again["client_id"], again["order"]) == (1, first["ts"], cid, "o1")

    # after a reconnect too (a lost ack)
    await buyer.close()
    buyer = await server.client("buyer1", "buyer")
    third = await buyer.post("o1", "pay now?", client_id=cid)
    assert third["duplicate"] is True and third["seq"] == 1

    # the same client_id from someone else is a different message
    other = await supplier.post("o1", "yes", client_id=cid)
    assert other["duplicate"] is False and other["seq"] == 2

    msgs = await _history(supplier, "o1")
    assert [(m["seq"], m["client_id"], m["sender"]["id"]) for m in msgs] == [(1, cid, "buyer1"), (2, cid, "supplier1")]
    assert msgs[0]["text"] == "pay now?"
    await settled(supplier)
    assert [m["seq"] for m in supplier.of_type("message")] == [1, 2]  # the retries broadcast nothing
    # and the supplier's unread moved once
    assert [u["count"] for u in supplier.of_type("unread")] == [1, 0]


async def test_status_and_dispute_retries_are_idempotent(server):
    await server.order("o1")
    supplier = await server.client("supplier1", "supplier")
    buyer = await server.client("buyer1", "buyer")
    cid = str(uuid.uuid4())
    frame = {"type": "set_status", "order": "o1", "status": "shipped", "client_id": cid, "text": "on its way"}
    a = await request(supplier, frame, "ack")
    b = await request(supplier, dict(frame, status="delivered"), "ack")
    assert (a["duplicate"], b["duplicate"], a["seq"], b["seq"]) == (False, True, 1, 1)
    st, order = await server.api("GET", "/api/v1/orders/o1")
    assert order["status"] == "shipped" and order["last_seq"] == 1
    msgs = await _history(buyer, "o1")
    assert [(m["kind"], m["status"], m["text"]) for m in msgs] == [("status", "shipped", "on its way")]

    cid = str(uuid.uuid4())
    frame = {"type": "dispute", "order": "o1", "action": "open", "client_id": cid, "reason": "broken"}
    a = await request(buyer, frame, "ack")
    b = await request(buyer, frame, "ack")  # not a conflict: the same request again
    assert (a["duplicate"], b["duplicate"], a["seq"], b["seq"]) == (False, True, 2, 2)
    st, order = await server.api("GET", "/api/v1/orders/o1")
    assert order["dispute"]["open"] is True and order["dispute"]["reason"] == "broken" and order["last_seq"] == 2


async def test_rest_post_retry(server):
    await server.order("o1")
    buyer = await server.client("buyer1", "buyer")
    await buyer.join("o1")
    body = {"client_id": "c-1", "text": "Your parcel left the warehouse", "kind": "system"}
    st, ack = await server.api("POST", "/api/v1/orders/o1/messages", body)
    assert st == 201 and ack["seq"] == 1 and ack["duplicate"] is False
    st, ack2 = await server.api("POST", "/api/v1/orders/o1/messages", body)
    assert st == 200 and ack2["seq"] == 1 and ack2["duplicate"] is True and ack2["ts"] == ack["ts"]
    m = await buyer.expect("message", seq=1)
    assert m["kind"] == "system" and m["sender"]["id"] == "system"
    st, page = await server.api("GET", "/api/v1/orders/o1/messages")
    assert [x["seq"] for x in page["messages"]] == [1]


async def test_message_shape_and_ack_after_broadcast(server):
    await server.order("o1")
    body = {"client_id": "c-0", "text": "Order received", "kind": "system"}
    assert (await server.api("POST", "/api/v1/orders/o1/messages", body))[0] == 201  # before anyone joined
    supplier = await server.client("supplier1", "supplier")
    await supplier.join("o1")
    ack = await supplier.post("o1", "hello", client_id="abc")
    # the sender's own connection gets the message too, before its ack (also the
    # first message of a room just opened here, after a replay)
    m = await supplier.expect("message", seq=2)
    assert supplier.frames.index(m) < supplier.frames.index(ack)
    assert m == {
        "type": "message",
        "order": "o1",
        "seq": 2,
        "ts": ack["ts"],
        "kind": "text",
        "sender": {"id": "supplier1", "name": "Supplier1", "role": "supplier"},
        "text": "hello",
        "client_id": "abc",
        "attachments": [],
        "_taken": True,
    }
    # everyone who sees a message can find it in history by the time of the ack
    msgs = await _history(supplier, "o1")
    assert msgs[-1]["seq"] == 2 and msgs[-1]["ts"] == ack["ts"]


async def test_text_rules(server):
    await server.order("o1")
    buyer = await server.client("buyer1", "buyer")
    for text in ("", "   \n"):
        r = await buyer.post("o1", text)
        assert r["type"] == "error" and r["code"] == "bad_request"
    r = await request(buyer, {"type": "send", "order": "o1", "client_id": "", "text": "x"}, "ack")
    assert r["code"] == "bad_request"
    r = await request(
        buyer, {"type": "send", "order": "o1", "client_id": "a1", "text": "x", "attachments": ["att-1"]}, "ack"
    )
    assert r["code"] == "bad_request" and r["ref"] == "a1"
    ok = await buyer.post("o1", "x" * 4000)
    assert ok["type"] == "ack" and ok["seq"] == 1


async def test_leave_stops_delivery_and_ping(server):
    await server.order("o1")
    buyer = await server.client("buyer1", "buyer")
    supplier = await server.client("supplier1", "supplier")
    await buyer.join("o1")
    await supplier.post("o1", "one")
    await buyer.expect("message", seq=1)
    await buyer.send({"type": "leave", "order": "o1"})
    assert (await buyer.expect("left", order="o1"))["reason"] == "leave"
    await supplier.post("o1", "two")
    await buyer.expect("unread", order="o1", count=2)  # counted, but not delivered to the room
    await settled(buyer)
    assert [m["seq"] for m in buyer.of_type("message")] == [1]
    await buyer.send({"type": "ping"})
    assert (await buyer.expect("pong")) == {"type": "pong", "_taken": True}
    # typing needs a joined order
    r = await request(buyer, {"type": "typing", "order": "o1", "active": True}, "typing")
    assert r["type"] == "error" and r["code"] == "bad_request" and r["ref"] == "o1"


@pytest.mark.parametrize("limits", [{"history_max": 7, "history_default": 3}], ids=["small-pages"])
async def test_history_page_cap(server):
    await server.order("o1")
    staff = await server.client("staff1", "staff")
    for i in range(10):
        await staff.post("o1", f"m{i}")
    assert [m["seq"] for m in await _history(staff, "o1")] == [8, 9, 10]
    assert [m["seq"] for m in await _history(staff, "o1", limit=500)] == list(range(4, 11))
    assert [m["seq"] for m in await _history(staff, "o1", after=0, limit=500)] == list(range(1, 8))
    st, page = await server.api("GET", "/api/v1/orders/o1/messages?limit=100&after=2")
    assert [m["seq"] for m in page["messages"]] == list(range(3, 10)) and page["has_more"] is True
