"""REST over two instances: what an order's participants see is what REST reports."""

from __future__ import annotations

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
