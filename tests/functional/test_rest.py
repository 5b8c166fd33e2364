"""REST on the same port (issue 2, point 5): orders, messages (JSON and ndjson), read markers, health."""

from __future__ import annotations

import json

import aiohttp

from tests.support.client import API_KEY, token

BACKENDS = ("single", "cluster")  # each test also runs over two instances and Redis

BUYER = {"id": "buyer1", "name": "Bea"}
SUPPLIER = {"id": "supplier1", "name": "Sam"}
REP = {"id": "rep1", "name": "Rita"}


def err(body) -> str:
    assert set(body) == {"error"} and set(body["error"]) - {"ref"} == {"code", "message"}, body
    return body["error"]["code"]


async def test_put_and_get_order(server):
    st, o = await server.api("PUT", "/api/v1/orders/A-1", {"buyer": BUYER, "supplier": SUPPLIER, "sales_rep": REP})
    assert st == 201
    assert o["order"] == "A-1" and o["status"] == "open" and o["dispute"] is None and o["last_seq"] == 0
    assert o["participants"] == [
        {"id": "buyer1", "name": "Bea", "role": "buyer", "online": False, "avatar_url": None},
        {"id": "supplier1", "name": "Sam", "role": "supplier", "online": False, "avatar_url": None},
        {"id": "rep1", "name": "Rita", "role": "sales_rep", "online": False, "avatar_url": None},
    ]
    supplier = await server.client("supplier1", "supplier")
    j = await supplier.join("A-1")
    await supplier.post("A-1", "hi")
    # update: absent fields keep their value; a status change posts its message (issue 12)
    st, o = await server.api("PUT", "/api/v1/orders/A-1", {"status": "paid"})
    assert st == 200 and o["status"] == "paid" and o["sales_rep"] == REP and o["last_seq"] == 2
    ev = await supplier.expect("order", order="A-1")
    assert ev["status"] == "paid" and j["status"] == "open"
    for auth in (API_KEY, token("staff1", "staff")):
        st, o = await server.api("GET", "/api/v1/orders/A-1", auth=auth)
        assert st == 200 and o["status"] == "paid" and o["last_seq"] == 2
        assert {p["id"]: p["online"] for p in o["participants"]}["supplier1"] is True


async def test_order_errors(server):
    await server.order("A-1")
    # 401: no or bad credentials
    for auth in (None, "nope", token("buyer1", "buyer", ttl_s=-5)):
        st, body = await server.api("GET", "/api/v1/orders/A-1", auth=auth)
        assert st == 401 and err(body) == "unauthorized"
    st, body = await server.api("PUT", "/api/v1/orders/A-2", {"buyer": BUYER, "supplier": SUPPLIER}, auth=None)
    assert st == 401 and err(body) == "unauthorized"
    # 403: a valid caller that may not do this
    for auth in (token("buyer1", "buyer"), token("supplier1", "supplier"), token("bot1", "bot", orders="*")):
        st, body = await server.api("GET", "/api/v1/orders/A-1", auth=auth)
        assert st == 403 and err(body) == "forbidden"
    st, body = await server.api("PUT", "/api/v1/orders/A-1", {"status": "x"}, auth=token("staff1", "staff"))
    assert st == 403 and err(body) == "forbidden"
    # 404
    st, body = await server.api("GET", "/api/v1/orders/nope")
    assert st == 404 and err(body) == "not_found"
    st, body = await server.api("GET", "/api/v1/nothing-here")
    assert st == 404 and err(body) == "not_found"
    # 400: bad bodies
    for bad in (
        {"status": "open"},  # a new order needs buyer and supplier
        {"buyer": BUYER, "supplier": BUYER},  # one user, two slots
        {"buyer": {"id": "b"}, "supplier": SUPPLIER},  # missing name
        {"buyer": BUYER, "supplier": SUPPLIER, "colour": "red"},  # unknown field
        {"buyer": "b", "supplier": SUPPLIER},
    ):
        st, body = await server.api("PUT", "/api/v1/orders/A-2", bad)
        assert st == 400 and err(body) == "bad_request", bad
    async with aiohttp.ClientSession() as s:
        async with s.put(
            server.base + "/api/v1/orders/A-2", data=b"{not json", headers={"Authorization": f"Bearer {API_KEY}"}
        ) as r:
            assert r.status == 400 and err(await r.json()) == "bad_request"
    st, body = await server.api("GET", "/api/v1/orders/A-2")
    assert st == 404  # nothing was created by the bad requests


async def test_get_messages_permissions_and_paging(server):
    await server.order("A-1")
    await server.order("B-1", buyer="buyer2", supplier="supplier2", rep="rep2")
    supplier = await server.client("supplier1", "supplier")
    for i in range(5):
        await supplier.post("A-1", f"m{i + 1}")
    base = "/api/v1/orders/A-1/messages"
    for auth in (
        API_KEY,
        token("staff1", "staff"),
        token("buyer1", "buyer"),
        token("rep1", "sales_rep"),
        token("bot1", "bot", orders=["A-1"]),
    ):
        st, page = await server.api("GET", base, auth=auth)
        assert st == 200 and [m["seq"] for m in page["messages"]] == [1, 2, 3, 4, 5], auth
        assert page["order"] == "A-1" and page["has_more"] is False
    st, page = await server.api("GET", base + "?before=4&limit=2")
    assert [m["seq"] for m in page["messages"]] == [2, 3] and page["has_more"] is True
    st, page = await server.api("GET", base + "?after=3")
    assert [m["seq"] for m in page["messages"]] == [4, 5] and page["has_more"] is False
    # outsiders: the same 404 as for an order that does not exist
    st_ghost, ghost = await server.api("GET", "/api/v1/orders/nope/messages", auth=token("rep2", "sales_rep"))
    for auth in (
        token("rep2", "sales_rep"),
        token("buyer2", "buyer"),
        token("bot2", "bot", orders=["B-1"]),
        token("bot3", "bot"),
    ):
        st, body = await server.api("GET", base, auth=auth)
        # the same but for `ref`, which names the order asked for
        assert (st, body) == (st_ghost, {"error": {**ghost["error"], "ref": "A-1"}}) and err(body) == "not_found"
    st, body = await server.api("GET", base, auth=None)
    assert st == 401 and err(body) == "unauthorized"
    st, body = await server.api("GET", base + "?limit=ten")
    assert st == 400 and err(body) == "bad_request"


async def test_ndjson_streams_whole_history(server):
    await server.order("A-1")
    staff = await server.client("staff1", "staff")
    for i in range(620):  # more than one export chunk, more than a page
        await staff.post("A-1", f"m{i + 1}")
    st, raw = await server.api("GET", "/api/v1/orders/A-1/messages?format=ndjson")
    assert st == 200
    lines = [json.loads(x) for x in raw.decode().splitlines()]
    assert [m["seq"] for m in lines] == list(range(1, 621))
    assert lines[0]["text"] == "m1" and lines[0]["type"] == "message" and lines[0]["order"] == "A-1"
    async with aiohttp.ClientSession() as s:
        async with s.get(
            server.base + "/api/v1/orders/A-1/messages?format=ndjson", headers={"Authorization": f"Bearer {API_KEY}"}
        ) as r:
            assert r.content_type == "application/x-ndjson"
    st, body = await server.api("GET", "/api/v1/orders/nope/messages?format=ndjson")
    assert st == 404 and err(body) == "not_found"


async def test_post_message(server):
    await server.order("A-1")
    buyer = await server.client("buyer1", "buyer")
    await buyer.join("A-1")
    st, ack = await server.api("POST", "/api/v1/orders/A-1/messages", {"client_id": "k1", "text": "Paid."})
    assert st == 201 and ack["seq"] == 1 and ack["client_id"] == "k1" and ack["duplicate"] is False
    m = await buyer.expect("message", seq=1)
    assert m["kind"] == "text" and m["sender"]["id"] == "system" and m["text"] == "Paid."
    bot = token("courier", "bot", orders=["A-1"])
    st, ack = await server.api(
        "POST",
        "/api/v1/orders/A-1/messages",
        {"client_id": "k1", "text": "Out for delivery", "kind": "system"},
        auth=bot,
    )
    assert st == 201 and ack["seq"] == 2  # same client_id, another sender
    m = await buyer.expect("message", seq=2)
    assert m["sender"] == {"id": "courier", "name": "Courier", "role": "bot"} and m["kind"] == "system"
    await buyer.expect("unread", order="A-1", count=2)
    # who may not
    for auth, status, code in (
        (token("buyer1", "buyer"), 403, "forbidden"),
        (token("staff1", "staff"), 403, "forbidden"),
        (token("other", "bot", orders=["Z"]), 404, "not_found"),
        (None, 401, "unauthorized"),
    ):
        st, body = await server.api("POST", "/api/v1/orders/A-1/messages", {"client_id": "x", "text": "t"}, auth=auth)
        assert (st, err(body)) == (status, code)
    for bad in (
        {"client_id": "x", "text": "t", "kind": "note"},
        {"text": "t"},
        {"client_id": "x", "text": ""},
        {"client_id": "x", "text": 5},
    ):
        st, body = await server.api("POST", "/api/v1/orders/A-1/messages", bad)
        assert st == 400 and err(body) == "bad_request", bad
    st, body = await server.api("POST", "/api/v1/orders/nope/messages", {"client_id": "x", "text": "t"})
    assert st == 404 and err(body) == "not_found"
    st, page = await server.api("GET", "/api/v1/orders/A-1/messages")
    assert [m["seq"] for m in page["messages"]] == [1, 2]


async def test_post_read_marks_unread_live(server):
    await server.order("A-1")
    supplier = await server.client("supplier1", "supplier")
    buyer = await server.client("buyer1", "buyer")
    for i in range(4):
        await supplier.post("A-1", f"m{i}")
    await buyer.expect("unread", count=4)
    await buyer.send({"type": "read", "order": "A-1", "seq": 4})
    await buyer.expect("unread", count=0)
    # an operator marks the last two unread again: pushed to the buyer at once
    st, body = await server.api("POST", "/api/v1/orders/A-1/read", {"user": "buyer1", "seq": 2})
    assert st == 200 and body == {"order": "A-1", "user": "buyer1", "read_seq": 2, "unread": 2, "total": 2}
    u = await buyer.expect("unread", order="A-1", count=2)
    assert u["total"] == 2
    j = await buyer.join("A-1", since=4)
    assert (j["read_seq"], j["unread"]) == (2, 2)
    # staff may too; forward again
    st, body = await server.api(
        "POST", "/api/v1/orders/A-1/read", {"user": "buyer1", "seq": 4}, auth=token("staff1", "staff")
    )
    assert st == 200 and body["unread"] == 0 and body["total"] == 0
    await buyer.expect("unread", order="A-1", count=0)
    # errors
    st, body = await server.api(
        "POST", "/api/v1/orders/A-1/read", {"user": "buyer1", "seq": 1}, auth=token("buyer1", "buyer")
    )
    assert st == 403 and err(body) == "forbidden"
    st, body = await server.api("POST", "/api/v1/orders/A-1/read", {"user": "stranger", "seq": 1})
    assert st == 404 and err(body) == "not_found"
    st, body = await server.api("POST", "/api/v1/orders/nope/read", {"user": "buyer1", "seq": 1})
    assert st == 404 and err(body) == "not_found"
    st, body = await server.api("POST", "/api/v1/orders/A-1/read", {"user": "buyer1"})
    assert st == 400 and err(body) == "bad_request"
    st, body = await server.api("POST", "/api/v1/orders/A-1/read", {"user": "buyer1", "seq": 1}, auth=None)
    assert st == 401


async def test_healthz(server):
    st, body = await server.api("GET", "/healthz", auth=None)
    assert st == 200 and body["status"] == "ok" and body["store"] == "ok"
