"""Notes are internal: they never reach a buyer by any path (issue 2, point 4).

Live, history, join replay (with and without `since`), unread counts,
`joined.unread`/`last_seq`, inbox, notify, REST JSON and ndjson.
"""

from __future__ import annotations

import json

from tests.support.client import request, settled, token

BACKENDS = ("single", "cluster")  # each test also runs over two instances and Redis

ORDER = "n1"


async def _post_mix(server):
    """seq 1 text, 2 note, 3 text, 4 note; returns the supplier client."""
    await server.order(ORDER)
    supplier = await server.client("supplier1", "supplier")
    for text, kind in (("t1", "text"), ("n2", "note"), ("t3", "text"), ("n4", "note")):
        ack = await supplier.post(ORDER, text, kind=kind)
        assert ack["type"] == "ack", ack
    return supplier


async def test_live_notes_reach_staff_side_only(server):
    await server.order(ORDER)
    buyer = await server.client("buyer1", "buyer")
    rep = await server.client("rep1", "sales_rep")
    staff = await server.client("staff1", "staff")
    bot = await server.client("bot1", "bot", orders=[ORDER])
    supplier = await server.client("supplier1", "supplier")
    for c in (buyer, rep, staff, bot, supplier):
        await c.join(ORDER)
    await supplier.post(ORDER, "internal only", kind="note")
    await supplier.post(ORDER, "hello all")
    for c in (rep, staff, bot, supplier):
        n = await c.expect("message", seq=1)
        assert n["kind"] == "note" and n["text"] == "internal only"
        await c.expect("message", seq=2)
    await buyer.expect("message", seq=2, text="hello all")
    assert [m["seq"] for m in buyer.of_type("message")] == [2]
    # the buyer's unread went 0 -> 1 for the text only: one unread frame
    u = await buyer.expect("unread", order=ORDER)
    assert u["count"] == 1 and u["total"] == 1
    await settled(buyer)
    assert len(buyer.of_type("unread")) == 1
    # a buyer cannot write one either
    r = await buyer.post(ORDER, "let me in", kind="note")
    assert r["type"] == "error" and r["code"] == "forbidden"


async def test_history_and_replay_hide_notes_from_buyer(server):
    await _post_mix(server)
    buyer = await server.client("buyer1", "buyer")
    rep = await server.client("rep1", "sales_rep")
    page = await request(buyer, {"type": "history", "order": ORDER}, "history")
    assert [m["seq"] for m in page["messages"]] == [1, 3] and page["has_more"] is False
    page = await request(buyer, {"type": "history", "order": ORDER, "after": 0, "limit": 1}, "history")
    assert [m["seq"] for m in page["messages"]] == [1] and page["has_more"] is True
    page = await request(buyer, {"type": "history", "order": ORDER, "before": 4, "limit": 1}, "history")
    assert [m["seq"] for m in page["messages"]] == [3] and page["has_more"] is True
    page = await request(rep, {"type": "history", "order": ORDER}, "history")
    assert [m["seq"] for m in page["messages"]] == [1, 2, 3, 4]

    j = await buyer.join(ORDER)
    assert j["last_seq"] == 3 and j["unread"] == 2 and j["read_seq"] == 0
    await settled(buyer)
    assert [m["seq"] for m in buyer.of_type("message")] == [1, 3]
    j = await buyer.join(ORDER, since=1)
    await settled(buyer)
    assert [m["seq"] for m in buyer.of_type("message")] == [1, 3, 3]
    j = await buyer.join(ORDER, since=0, limit=1)
    assert j["truncated"] is True
    await settled(buyer)
    assert [m["seq"] for m in buyer.of_type("message")] == [1, 3, 3, 3]
    assert not [m for m in buyer.frames if m.get("kind") == "note"]

    j = await rep.join(ORDER)
    assert j["last_seq"] == 4 and j["unread"] == 4
    await settled(rep)
    assert [m["seq"] for m in rep.of_type("message")] == [1, 2, 3, 4]


async def test_unread_inbox_notify_ignore_notes_for_buyer(server):
    await server.order(ORDER)
    buyer = await server.client("buyer1", "buyer")
    rep = await server.client("rep1", "sales_rep")
    for c in (buyer, rep):
        await c.send({"type": "inbox"})
        inbox = await c.expect("inbox")
        assert inbox["total_unread"] == 0
    supplier = await server.client("supplier1", "supplier")
    await supplier.post(ORDER, "visible")
    await supplier.post(ORDER, "hidden", kind="note")
    await supplier.post(ORDER, "visible again")
    # the rep hears of all three, the buyer of the texts only
    for seq in (1, 2, 3):
        n = await rep.expect("notify", order=ORDER)
        assert n["message"]["seq"] == seq
        await rep.expect("unread", order=ORDER, count=seq, total=seq)
    for seq, count in ((1, 1), (3, 2)):
        n = await buyer.expect("notify", order=ORDER)
        assert n["message"]["seq"] == seq
        await buyer.expect("unread", order=ORDER, count=count, total=count)
    assert [n["message"]["seq"] for n in buyer.of_type("notify")] == [1, 3]
    assert len(buyer.of_type("unread")) == 2

    await buyer.send({"type": "inbox"})
    inbox = await buyer.expect("inbox")
    assert inbox["total_unread"] == 2
    (entry,) = inbox["orders"]
    assert entry["unread"] == 2 and entry["last_message"]["seq"] == 3 and entry["last_message"]["kind"] == "text"
    await rep.send({"type": "inbox"})
    inbox = await rep.expect("inbox")
    (entry,) = inbox["orders"]
    assert entry["unread"] == 3 and entry["last_message"]["seq"] == 3 and inbox["total_unread"] == 3

    # a rep's note moves the buyer's inbox not at all
    await rep.post(ORDER, "rep note", kind="note")
    await buyer.send({"type": "inbox"})
    inbox = await buyer.expect("inbox")
    assert inbox["orders"][0]["last_message"]["seq"] == 3 and inbox["total_unread"] == 2

    # a buyer's read past what they see is clamped; notes never count
    await buyer.send({"type": "read", "order": ORDER, "seq": 99})
    u = await buyer.expect("unread", order=ORDER, count=0)
    assert u["total"] == 0


async def test_rest_hides_notes_from_buyer_token(server):
    await _post_mix(server)
    buyer_tok = token("buyer1", "buyer")
    st, body = await server.api("GET", f"/api/v1/orders/{ORDER}/messages", auth=buyer_tok)
    assert st == 200 and [m["seq"] for m in body["messages"]] == [1, 3]
    st, body = await server.api("GET", f"/api/v1/orders/{ORDER}/messages?after=1", auth=buyer_tok)
    assert st == 200 and [m["seq"] for m in body["messages"]] == [3]
    st, raw = await server.api("GET", f"/api/v1/orders/{ORDER}/messages?format=ndjson", auth=buyer_tok)
    assert st == 200
    lines = [json.loads(x) for x in raw.decode().splitlines() if x]
    assert [m["seq"] for m in lines] == [1, 3] and all(m["kind"] == "text" for m in lines)
    # the supplier, a rep, staff and the api key get everything
    for auth in (token("supplier1", "supplier"), token("rep1", "sales_rep"), token("staff1", "staff"), None):
        kw = {"auth": auth} if auth else {}
        st, raw = await server.api("GET", f"/api/v1/orders/{ORDER}/messages?format=ndjson", **kw)
        assert st == 200
        assert [json.loads(x)["seq"] for x in raw.decode().splitlines() if x] == [1, 2, 3, 4]
