"""What other instances show comes right again after a failure: pub/sub keeps
nothing while Redis is down, and an instance that dies ends nothing it showed."""

from __future__ import annotations

import asyncio

from tests.relay.test_relay import ORDER
from tests.support.client import Client
from tests.support.cluster import Cluster, health
from tests.support.wait import seconds, wait_for


async def relay_is(c: Cluster, state: str) -> None:
    for node in c.nodes:
        await wait_for(lambda node=node: health(node.base).get("relay") == state, what=f"relay {state}")


async def inbox(client: Client) -> None:
    await client.send({"type": "inbox"})
    await client.expect("inbox")


def of(client: Client, type_: str, order: str) -> list[dict]:
    return [f for f in client.frames if f.get("type") == type_ and f.get("order") == order]


async def test_unread_and_notify_come_back_after_a_redis_outage(cluster_factory, redis_proc):
    """Messages posted on B while Redis is down reach A's room from the store; their
    `unread` and `notify` went by pub/sub and were lost: A recounts its readers."""
    c = await cluster_factory(2)
    await c.api(0, "PUT", "/api/v1/orders/o-un", ORDER)
    buyer = await c.client(0, "buyer1", "buyer")
    buyer_inbox = await c.client(0, "buyer1", "buyer")  # a second tab, on the inbox page
    rep_inbox = await c.client(0, "rep1", "sales_rep")  # the rep has only the inbox open
    supplier = await c.client(1, "supplier1", "supplier")
    await buyer.join("o-un")
    await supplier.join("o-un")
    await inbox(buyer_inbox)
    await inbox(rep_inbox)
    await asyncio.to_thread(redis_proc.kill)
    await relay_is(c, "degraded")
    for text, kind in (("one", "text"), ("two", "text"), ("margin is thin", "note")):
        assert (await supplier.post("o-un", text, kind=kind))["type"] == "ack"
    await asyncio.to_thread(redis_proc.start)
    await relay_is(c, "ok")

    await buyer.expect("message", seq=2, timeout=seconds(20))
    u = await buyer.expect("unread", order="o-un", count=2, timeout=seconds(20))
    assert u["total"] == 2
    u = await buyer_inbox.expect("unread", order="o-un", count=2, timeout=seconds(20))
    assert u["total"] == 2
    n = await buyer_inbox.expect("notify", order="o-un", timeout=seconds(20))
    assert n["message"]["text"] == "two"  # the newest the buyer may see: never the note
    u = await rep_inbox.expect("unread", order="o-un", count=3, timeout=seconds(20))
    assert u["total"] == 3
    n = await rep_inbox.expect("notify", order="o-un", timeout=seconds(20))
    assert n["message"]["kind"] == "note"
    assert not of(buyer, "notify", "o-un")  # joined: it has the messages
    assert all(f["message"]["kind"] != "note" for f in of(buyer_inbox, "notify", "o-un"))
    # and the relay carries the next one as before
    assert (await supplier.post("o-un", "three"))["type"] == "ack"
    await buyer_inbox.expect("unread", order="o-un", count=3)
    await rep_inbox.expect("unread", order="o-un", count=4)


async def test_typing_from_another_instance_ends_when_its_stop_is_lost(cluster_factory, redis_proc):
    """The stop is sent while Redis is down: A ends the indicator itself once no
    refresh came for typing_ttl_s (plus the forwarding interval); a long typing
    refreshed in time is not cut short."""
    c = await cluster_factory(2, {"typing_ttl_s": 1.5})
    await c.api(0, "PUT", "/api/v1/orders/o-ty", ORDER)
    buyer = await c.client(0, "buyer1", "buyer")
    supplier = await c.client(1, "supplier1", "supplier")
    await buyer.join("o-ty")
    await supplier.join("o-ty")
    typing = {"type": "typing", "order": "o-ty", "active": True}
    for k in range(5):  # a refresh every 0.9 s: every other one is forwarded (1 per second), 1.8 s apart
        if k:
            await asyncio.sleep(0.9)  # the typist's pace, not a wait for the server
        await supplier.send(typing)
    for _ in range(3):  # forwarded at 0, 1.8 and 3.6 s
        await buyer.expect("typing", active=True)
    assert all(f["active"] for f in of(buyer, "typing", "o-ty"))  # not cut short meanwhile
    await asyncio.to_thread(redis_proc.kill)
    await relay_is(c, "degraded")
    await supplier.send({"type": "typing", "order": "o-ty", "active": False})  # lost with Redis
    t = await buyer.expect("typing", active=False, timeout=seconds(10))
    assert t["user"]["id"] == "supplier1"
    await asyncio.to_thread(redis_proc.start)


async def test_typing_of_a_crashed_instance_ends(cluster_factory):
    """B is killed while its user types; the user stays online through a socket on A,
    so no presence change says anything. A ends the indicator once B is gone."""
    c = await cluster_factory(2, {"typing_ttl_s": 60.0})  # long: only B's departure can end it in time
    await c.api(0, "PUT", "/api/v1/orders/o-tk", ORDER)
    buyer = await c.client(0, "buyer1", "buyer")
    supplier_a = await c.client(0, "supplier1", "supplier")
    supplier_b = await c.client(1, "supplier1", "supplier")
    for cl in (buyer, supplier_a, supplier_b):
        await cl.join("o-tk")
    await supplier_b.send({"type": "typing", "order": "o-tk", "active": True})
    await buyer.expect("typing", active=True)
    await c.nodes[1].akill()
    t = await buyer.expect("typing", active=False, timeout=seconds(20))
    assert t["user"]["id"] == "supplier1"
    assert not [f for f in buyer.frames if f.get("type") == "presence" and f.get("online") is False]
    assert not of(supplier_a, "typing", "o-tk")  # never told of their own typing
