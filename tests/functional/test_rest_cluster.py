"""REST over two instances: what an order's participants see is what REST reports."""

from __future__ import annotations

from tests.support.wait import wait_for

BACKENDS = ("cluster",)  # REST goes to the first instance, WebSocket clients alternate


async def test_rest_order_counts_participants_online_on_every_instance(server):
    """A participant joined on the other instance is online in GET /orders/{id}, as in
    the `joined` and `order` frames (REST used to count only its own instance's rooms)."""
    await server.order("P-1")
    supplier = await server.client("supplier1", "supplier")  # the first instance, like REST
    await supplier.join("P-1")
    buyer = await server.client("buyer1", "buyer")  # the second instance
    await buyer.join("P-1")
    await supplier.expect("presence", order="P-1", user="buyer1", online=True)
    st, o = await server.api("GET", "/api/v1/orders/P-1")
    assert st == 200
    assert {p["id"]: p["online"] for p in o["participants"]} == {"buyer1": True, "supplier1": True, "rep1": False}
    st, o = await server.api("PUT", "/api/v1/orders/P-1", {"status": "paid"})
    assert st == 200
    assert {p["id"]: p["online"] for p in o["participants"]} == {"buyer1": True, "supplier1": True, "rep1": False}


async def test_rest_on_an_instance_without_the_room_sees_who_is_joined_elsewhere(server):
    """Nobody is joined to the order on the first instance (REST's): a participant joined on
    the second is online all the same in GET /orders/{id}, in the `order` frame a PUT sends
    and in GET /threads (the first instance used to know only the rooms it watches)."""
    await server.order("P-2")
    await post_once(server, "P-2")
    await server.client("boss", "staff")  # the first instance: joined to nothing
    buyer = await server.client("buyer1", "buyer")  # the second instance
    await buyer.join("P-2")

    async def buyer_online():
        st, o = await server.api("GET", "/api/v1/orders/P-2")
        assert st == 200
        return {p["id"]: p["online"] for p in o["participants"]} == {"buyer1": True, "supplier1": False, "rep1": False}

    await wait_for(buyer_online, timeout=5, what="the buyer online in GET /orders/P-2 on the first instance")
    st, o = await server.api("PUT", "/api/v1/orders/P-2", {"status": "paid"})
    assert st == 200
    assert {p["id"]: p["online"] for p in o["participants"]}["buyer1"] is True
    ev = await buyer.expect("order", order="P-2", status="paid")
    assert {p["id"]: p["online"] for p in ev["participants"]} == {"buyer1": True, "supplier1": False, "rep1": False}
    st, body = await server.api("GET", "/api/v1/threads")
    assert st == 200 and [t["order"] for t in body["threads"]] == ["P-2"]
    assert {p["id"]: p["online"] for p in body["threads"][0]["participants"]}["buyer1"] is True


async def post_once(server, order: str) -> None:
    st, ack = await server.api("POST", f"/api/v1/orders/{order}/messages", {"client_id": "c1", "text": "hi"})
    assert st == 201, ack
