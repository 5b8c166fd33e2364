"""Who may do what on an order (issue 2, point 4), over real sockets.

Order `m1`: buyer b1, supplier s1, sales rep r1. Order `m2`: buyer b2,
supplier s2, sales rep r2 (so r2 is "another order's rep"). Outsiders must
get exactly the answer a non-existent order gets.
"""

from __future__ import annotations

import uuid

import pytest

from tests.support.client import request, settled

BACKENDS = ("single", "cluster")  # each test also runs over two instances and Redis

OK, FORBIDDEN, NOT_FOUND = "ok", "forbidden", "not_found"

# identity -> (sub, token role, bot orders claim), expected outcome per action
ACTIONS = ("join", "send", "note", "history", "read", "set_status", "dispute_open", "dispute_close")
MATRIX = {
    "buyer": (("b1", "buyer", None), (OK, OK, FORBIDDEN, OK, OK, FORBIDDEN, OK, OK)),
    "supplier": (("s1", "supplier", None), (OK, OK, OK, OK, OK, OK, FORBIDDEN, FORBIDDEN)),
    "rep": (("r1", "sales_rep", None), (OK, OK, OK, OK, OK, FORBIDDEN, FORBIDDEN, FORBIDDEN)),
    "other_rep": (("r2", "sales_rep", None), (NOT_FOUND,) * 8),
    "other_buyer": (("b2", "buyer", None), (NOT_FOUND,) * 8),
    "other_supplier": (("s2", "supplier", None), (NOT_FOUND,) * 8),
    "staff": (("st", "staff", None), (OK, OK, OK, OK, OK, OK, OK, OK)),
    "bot_claim": (("bot1", "bot", ["m1"]), (OK, OK, OK, OK, OK, OK, FORBIDDEN, FORBIDDEN)),
    "bot_star": (("bot2", "bot", "*"), (OK, OK, OK, OK, OK, OK, FORBIDDEN, FORBIDDEN)),
    "bot_other_claim": (("bot3", "bot", ["m2"]), (NOT_FOUND,) * 8),
    "bot_no_claim": (("bot4", "bot", None), (NOT_FOUND,) * 8),
}


def _frame(action: str, order: str) -> tuple[dict, str]:
    cid = str(uuid.uuid4())
    return {
        "join": ({"type": "join", "order": order}, "joined"),
        "send": ({"type": "send", "order": order, "client_id": cid, "text": "hi"}, "ack"),
        "note": ({"type": "send", "order": order, "client_id": cid, "text": "psst", "kind": "note"}, "ack"),
        "history": ({"type": "history", "order": order}, "history"),
        "read": ({"type": "read", "order": order, "seq": 1}, ""),
        "set_status": ({"type": "set_status", "order": order, "status": "shipped", "client_id": cid}, "ack"),
        "dispute_open": (
            {"type": "dispute", "order": order, "action": "open", "client_id": cid, "reason": "late"},
            "ack",
        ),
        "dispute_close": ({"type": "dispute", "order": order, "action": "close", "client_id": cid}, "ack"),
    }[action]


async def _do(client, action: str, order: str, frame: dict | None = None) -> dict:
    frame, ok_type = (frame, _frame(action, order)[1]) if frame else _frame(action, order)
    if not ok_type:  # `read` answers nothing when it works: a ping shows it was handled
        await client.send(frame)
        reply = await request(client, {"type": "ping"}, "pong")
        if reply["type"] == "error":
            await client.expect("pong")
        return reply
    return await request(client, frame, ok_type)


def _outcome(reply: dict) -> str:
    return reply["code"] if reply["type"] == "error" else OK


async def _setup(server):
    await server.order("m1", buyer="b1", supplier="s1", rep="r1")
    await server.order("m2", buyer="b2", supplier="s2", rep="r2")
    supplier = await server.client("s1", "supplier")
    assert (await supplier.post("m1", "first"))["seq"] == 1
    return supplier


@pytest.mark.parametrize("who", list(MATRIX))
async def test_matrix(server, who):
    (sub, role, orders), expected = MATRIX[who]
    await _setup(server)
    me = await server.client(sub, role, orders=orders)
    buyer = await server.client("b1", "buyer") if who != "buyer" else None
    outcomes = dict(zip(ACTIONS, expected, strict=True))
    for action, want in outcomes.items():
        if action == "dispute_close" and outcomes["dispute_open"] != OK:
            # this user could not open one: the buyer does, so there is one to close
            assert (await _do(buyer, "dispute_open", "m1"))["type"] == "ack"
        frame, _ = _frame(action, "m1")
        reply = await _do(me, action, "m1", frame)
        assert _outcome(reply) == want, (who, action, reply)
        if reply["type"] == "error":
            # the error names what the client waits on: the client_id of a post, else the order
            assert reply["ref"] == frame.get("client_id", "m1"), reply
        if want == NOT_FOUND:
            # an outsider cannot tell m1 from an order that does not exist
            ghost_frame = dict(frame, order="no-such-order")
            ghost = await _do(me, action, "no-such-order", ghost_frame)
            assert _outcome(ghost) == NOT_FOUND, (action, ghost)
            assert reply["message"] == ghost["message"]
            assert set(reply) == set(ghost)
            assert ghost["ref"] == ghost_frame.get("client_id", "no-such-order")


async def test_outsider_error_frames_identical(server):
    """Byte for byte (ids aside): join, history, send by another order's rep."""
    await _setup(server)
    r2 = await server.client("r2", "sales_rep")
    for action in ("join", "history", "send", "read", "set_status", "dispute_open"):
        frame, ok_type = _frame(action, "m1")
        ghost_frame = dict(frame, order="nope")
        a = await request(r2, frame, ok_type or "pong") if ok_type else await _do(r2, action, "m1")
        b = await request(r2, ghost_frame, ok_type or "pong") if ok_type else await _do(r2, action, "nope")

        def norm(f, order):
            return {k: (v.replace(order, "<o>") if isinstance(v, str) else v) for k, v in f.items() if k != "_taken"}

        assert norm(a, "m1") == norm(b, "nope"), (action, a, b)


async def test_outsider_learns_nothing_from_inbox_or_live(server):
    supplier = await _setup(server)
    r2 = await server.client("r2", "sales_rep")
    await r2.send({"type": "inbox"})
    inbox = await r2.expect("inbox")
    assert [e["order"] for e in inbox["orders"]] == ["m2"]
    await supplier.post("m1", "secret plans")
    await settled(r2)
    assert not r2.of_type("message") and not r2.of_type("notify") and not r2.of_type("unread")


async def test_buyer_cannot_close_a_dispute_staff_opened(server):
    await _setup(server)
    staff = await server.client("st", "staff")
    buyer = await server.client("b1", "buyer")
    r = await _do(staff, "dispute_open", "m1")
    assert r["type"] == "ack"
    r = await _do(buyer, "dispute_close", "m1")
    assert r["code"] == "forbidden"
    r = await _do(staff, "dispute_close", "m1")
    assert r["type"] == "ack"
    r = await _do(staff, "dispute_close", "m1")
    assert r["code"] == "conflict"


async def test_slot_wins_over_token_role(server):
    """A staff token for the buyer's id is still the buyer on that order: no notes."""
    supplier = await _setup(server)
    await supplier.post("m1", "internal", kind="note")
    fake = await server.client("b1", "staff")
    page = await request(fake, {"type": "history", "order": "m1"}, "history")
    assert [m["kind"] for m in page["messages"]] == ["text"]
    r = await _do(fake, "set_status", "m1")
    assert r["code"] == "forbidden"


async def test_dispute_and_status_reach_the_room(server):
    await _setup(server)
    buyer = await server.client("b1", "buyer")
    supplier = await server.client("s1", "supplier")
    await buyer.join("m1")
    await supplier.join("m1")
    r = await _do(supplier, "set_status", "m1")
    assert r["type"] == "ack"
    m = await buyer.expect("message", kind="status")
    assert m["status"] == "shipped" and m["sender"]["role"] == "supplier"
    o = await buyer.expect("order", order="m1")
    assert o["status"] == "shipped" and o["dispute"] is None
    r = await _do(buyer, "dispute_open", "m1")
    assert r["type"] == "ack"
    await supplier.expect("order", order="m1", dispute=None)  # the status change
    m = await supplier.expect("message", kind="dispute")
    assert m["sender"]["id"] == "b1"
    o = await supplier.expect("order", order="m1")
    assert o["dispute"]["open"] is True and o["dispute"]["by"] == "b1" and o["dispute"]["reason"] == "late"
    j = await supplier.join("m1")
    assert j["status"] == "shipped" and j["dispute"]["open"] is True
    page = await request(buyer, {"type": "inbox"}, "inbox")
    (entry,) = page["orders"]
    assert (entry["status"], entry["dispute_open"], entry["last_message"]["kind"]) == ("shipped", True, "dispute")


async def test_removed_rep_is_cut_off_at_once(server):
    await _setup(server)
    r1a = await server.client("r1", "sales_rep")
    r1b = await server.client("r1", "sales_rep")
    r1idle = await server.client("r1", "sales_rep")
    buyer = await server.client("b1", "buyer")
    await r1a.join("m1")
    await r1b.join("m1")
    await buyer.join("m1")
    # the host platform reassigns the order to rep r3
    await server.order("m1", buyer="b1", supplier="s1", rep="r3")
    for c in (r1a, r1b):
        left = await c.expect("left", order="m1")
        assert left["reason"] == "removed"
    o = await buyer.expect("order", order="m1")
    assert {p["id"] for p in o["participants"]} == {"b1", "s1", "r3"}
    # no way back in, on any connection
    for c in (r1a, r1idle):
        for action in ("join", "send", "history", "read"):
            assert _outcome(await _do(c, action, "m1")) == NOT_FOUND, action
    # and nothing of the room reaches them any more
    supplier = await server.client("s1", "supplier")
    await supplier.post("m1", "after the change")
    await buyer.expect("message", text="after the change")
    await settled(r1a)
    await settled(r1b)
    assert not any(m["text"] == "after the change" for c in (r1a, r1b) for m in c.of_type("message"))
    assert r1idle.of_type("left") == []
    # the new rep is in
    r3 = await server.client("r3", "sales_rep")
    j = await r3.join("m1")
    assert j["last_seq"] == 2
    # the removed rep's REST access is gone too
    from tests.support.client import token

    st, body = await server.api("GET", "/api/v1/orders/m1/messages", auth=token("r1", "sales_rep"))
    assert st == 404 and body["error"]["code"] == "not_found"


async def test_rep_removed_with_null(server):
    await _setup(server)
    r1 = await server.client("r1", "sales_rep")
    await r1.join("m1")
    st, _ = await server.api("PUT", "/api/v1/orders/m1", {"sales_rep": None})
    assert st == 200
    assert (await r1.expect("left", order="m1"))["reason"] == "removed"
    assert _outcome(await _do(r1, "join", "m1")) == NOT_FOUND


async def test_replaced_buyer_and_removed_rep_lose_their_inbox_entry(server):
    supplier = await _setup(server)
    await supplier.post("m1", "internal", kind="note")
    rep = await server.client("r1", "sales_rep")
    page = await request(rep, {"type": "inbox"}, "inbox")
    assert [e["order"] for e in page["orders"]] == ["m1"] and page["total_unread"] == 2
    # the buyer is replaced and the rep dropped in one update
    st, _ = await server.api(
        "PUT", "/api/v1/orders/m1", {"buyer": {"id": "b9", "name": "New Buyer"}, "sales_rep": None}
    )
    assert st == 200
    page = await request(rep, {"type": "inbox"}, "inbox")
    assert page["orders"] == [] and page["total_unread"] == 0
    old_buyer = await server.client("b1", "buyer")
    assert _outcome(await _do(old_buyer, "history", "m1")) == NOT_FOUND
    # the new buyer sees the text, never the note, and counts accordingly
    new_buyer = await server.client("b9", "buyer")
    page = await request(new_buyer, {"type": "inbox"}, "inbox")
    assert page["total_unread"] == 1 and page["orders"][0]["last_message"]["seq"] == 1
    j = await new_buyer.join("m1")
    assert (j["unread"], j["last_seq"]) == (1, 1)
    await settled(new_buyer)
    assert [m["seq"] for m in new_buyer.of_type("message")] == [1]
