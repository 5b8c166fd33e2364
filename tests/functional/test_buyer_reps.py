"""A buyer's sales rep (issue 12): `PUT /api/v1/buyers/{buyer}` assigns the rep of every
order of the buyer, current and future; an order's own `sales_rep` overrides it."""

from __future__ import annotations

from tests.support.client import request, token

BACKENDS = ("single", "cluster")  # each test also runs over two instances and Redis

BUYER = {"id": "buyer1", "name": "Bea"}
SUPPLIER = {"id": "supplier1", "name": "Sam"}
OLD = {"id": "rep1", "name": "Rita"}
NEW = {"id": "rep2", "name": "Ravi"}
OWN = {"id": "rep3", "name": "Rosa"}


def err(body) -> str:
    assert set(body) == {"error"} and set(body["error"]) - {"ref"} == {"code", "message"}, body
    return body["error"]["code"]


async def _new_order(server, order: str, **extra) -> dict:
    st, o = await server.api("PUT", f"/api/v1/orders/{order}", {"buyer": BUYER, "supplier": SUPPLIER, **extra})
    assert st == 201, o
    return o


async def test_reassigning_a_buyers_rep_moves_every_following_order_at_once(server):
    st, body = await server.api("PUT", "/api/v1/buyers/buyer1", {"sales_rep": OLD})
    assert st == 200 and body == {"buyer": "buyer1", "sales_rep": OLD, "orders": [], "changed": []}
    for order in ("B-1", "B-2", "B-3"):
        assert (await _new_order(server, order))["sales_rep"] == OLD  # the buyer's rep
    assert (await _new_order(server, "B-4", sales_rep=OWN))["sales_rep"] == OWN  # its own

    old = await server.client("rep1", "sales_rep")  # one instance
    supplier = await server.client("supplier1", "supplier")  # the other, in a cluster
    for order in ("B-1", "B-2", "B-3"):
        j = await old.join(order)
        assert {p["id"]: p["role"] for p in j["participants"]}["rep1"] == "sales_rep"
    await supplier.join("B-1")
    await supplier.join("B-4")
    assert (await old.post("B-1", "hello from the old rep"))["type"] == "ack"

    st, body = await server.api("PUT", "/api/v1/buyers/buyer1", {"sales_rep": NEW})
    assert st == 200, body
    assert body == {
        "buyer": "buyer1",
        "sales_rep": NEW,
        "orders": ["B-1", "B-2", "B-3"],
        "changed": ["B-1", "B-2", "B-3"],
    }

    # the old rep is cut off every order of the buyer, and loses access
    for order in ("B-1", "B-2", "B-3"):
        assert (await old.expect("left", order=order))["reason"] == "removed"
    for order in ("B-1", "B-2", "B-3"):
        e = await request(old, {"type": "join", "order": order}, "joined", "error")
        assert e["type"] == "error" and e["code"] == "not_found", e
    st, _ = await server.api("GET", "/api/v1/orders/B-1/messages", auth=token("rep1", "sales_rep"))
    assert st == 404

    # participants see the new rep
    state = await supplier.expect("order", order="B-1")
    assert {p["id"]: p["role"] for p in state["participants"]} == {
        "buyer1": "buyer",
        "supplier1": "supplier",
        "rep2": "sales_rep",
    }

    # the new rep can join all three and reads what was there
    new = await server.client("rep2", "sales_rep")
    for order in ("B-1", "B-2", "B-3"):
        j = await new.join(order)
        assert j["order"] == order
    assert [m["text"] for m in new.of_type("message", order="B-1")] == ["hello from the old rep"]

    # the order with its own rep keeps it; nobody there was told anything
    st, o = await server.api("GET", "/api/v1/orders/B-4")
    assert st == 200 and o["sales_rep"] == OWN
    assert not supplier.of_type("order", order="B-4")
    e = await request(new, {"type": "join", "order": "B-4"}, "joined", "error")
    assert e["type"] == "error" and e["code"] == "not_found"

    # a new order of the buyer gets the buyer's rep now
    assert (await _new_order(server, "B-5"))["sales_rep"] == NEW
    assert (await new.join("B-5"))["order"] == "B-5"
    e = await request(old, {"type": "join", "order": "B-5"}, "joined", "error")
    assert e["code"] == "not_found"

    # an order's own sales_rep overrides the buyer's for that order only
    st, o = await server.api("PUT", "/api/v1/orders/B-2", {"sales_rep": OWN})
    assert st == 200 and o["sales_rep"] == OWN
    st, body = await server.api("PUT", "/api/v1/buyers/buyer1", {"sales_rep": None})
    assert st == 200 and body["orders"] == ["B-1", "B-3", "B-5"] and body["changed"] == ["B-1", "B-3", "B-5"]
    for order in ("B-1", "B-3", "B-5"):
        assert (await new.expect("left", order=order))["reason"] == "removed"
    st, o = await server.api("GET", "/api/v1/orders/B-2")
    assert o["sales_rep"] == OWN
    st, o = await server.api("GET", "/api/v1/orders/B-1")
    assert o["sales_rep"] is None


async def test_a_newly_assigned_rep_hears_their_new_total(server):
    await _new_order(server, "N-1")
    await _new_order(server, "N-2")
    bot = await server.client("bot1", "bot", orders="*")
    for order, n in (("N-1", 3), ("N-2", 1)):
        for i in range(n):
            assert (await bot.post(order, f"status {i}"))["type"] == "ack"
    rep = await server.client("rep2", "sales_rep")
    assert (await request(rep, {"type": "inbox"}, "inbox"))["total_unread"] == 0
    st, body = await server.api("PUT", "/api/v1/buyers/buyer1", {"sales_rep": NEW})
    assert st == 200 and body["changed"] == ["N-1", "N-2"], body
    first = await rep.expect("unread", order="N-1")
    second = await rep.expect("unread", order="N-2")
    assert [(u["count"], u["total"]) for u in (first, second)] == [(3, 3), (1, 4)]
    assert (await request(rep, {"type": "inbox"}, "inbox"))["total_unread"] == 4


async def test_only_the_api_key_assigns_a_buyers_rep(server):
    for auth in (None, "nope", token("buyer1", "buyer", ttl_s=-5)):
        st, body = await server.api("PUT", "/api/v1/buyers/buyer1", {"sales_rep": OLD}, auth=auth)
        assert st == 401 and err(body) == "unauthorized"
    for auth in (token("buyer1", "buyer"), token("rep1", "sales_rep"), token("staff1", "staff")):
        st, body = await server.api("PUT", "/api/v1/buyers/buyer1", {"sales_rep": OLD}, auth=auth)
        assert st == 403 and err(body) == "forbidden"
    await _new_order(server, "C-1")
    st, o = await server.api("GET", "/api/v1/orders/C-1")
    assert o["sales_rep"] is None  # nothing was assigned


async def test_bad_bodies_are_refused(server):
    await _new_order(server, "D-1")
    for bad in (
        {},  # sales_rep is required (null unassigns)
        {"sales_rep": "rep1"},
        {"sales_rep": {"id": "rep1"}},
        {"sales_rep": {"id": "", "name": "R"}},
        {"sales_rep": OLD, "extra": 1},
        [],
        {"sales_rep": {"id": "buyer1", "name": "Self"}},  # the buyer
        {"sales_rep": {"id": "supplier1", "name": "Sam"}},  # the supplier of one of its orders
    ):
        st, body = await server.api("PUT", "/api/v1/buyers/buyer1", bad)
        assert st == 400 and err(body) == "bad_request", (bad, body)
    st, body = await server.api("PUT", "/api/v1/buyers/buyer1", data=b"{not json")
    assert st == 400 and err(body) == "bad_request"
    st, body = await server.api("PUT", "/api/v1/buyers/" + "x" * 201, {"sales_rep": OLD})
    assert st == 400 and err(body) == "bad_request"
    st, o = await server.api("GET", "/api/v1/orders/D-1")
    assert o["sales_rep"] is None  # nothing was written
