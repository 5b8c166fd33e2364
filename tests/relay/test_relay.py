"""Several chatd processes relayed through a real Redis server started by the tests.

Participants are spread over instances; none of them may be able to tell.
"""

from __future__ import annotations

import asyncio
import os
import uuid

import aiohttp

from tests.support.client import API_KEY, Client, token
from tests.support.cluster import health
from tests.support.procs import ServerProc, free_port
from tests.support.wait import wait_for

ORDER = {
    "buyer": {"id": "buyer1", "name": "Bea"},
    "supplier": {"id": "supplier1", "name": "Sam"},
    "sales_rep": {"id": "rep1", "name": "Rita"},
}


def seqs(client: Client, order: str) -> list[int]:
    return [f["seq"] for f in client.frames if f.get("type") == "message" and f.get("order") == order]


async def test_contract_across_two_instances(cluster_factory):
    c = await cluster_factory(2, {"typing_ttl_s": 0.3})
    st, _ = await c.api(0, "PUT", "/api/v1/orders/o1", ORDER)
    assert st == 201
    buyer = await c.client(0, "buyer1", "buyer", name="Bea")
    rep = await c.client(0, "rep1", "sales_rep", name="Rita")
    supplier = await c.client(1, "supplier1", "supplier", name="Sam")
    buyer_inbox = await c.client(1, "buyer1", "buyer", name="Bea")  # second tab, other instance

    await buyer.join("o1")
    await rep.join("o1")
    joined = await supplier.join("o1")
    # presence is global: the supplier on B sees the buyer and rep joined on A,
    # in `joined` or, if A's count reached Redis a moment later, in `presence`
    online = {p["id"]: p["online"] for p in joined["participants"]}
    assert online["supplier1"] is True and set(online) == {"buyer1", "supplier1", "rep1"}
    for user in ("buyer1", "rep1"):
        if not online[user]:
            await supplier.expect("presence", user=user, online=True)
    p = await buyer.expect("presence", user="supplier1")
    assert p["online"] is True

    await buyer_inbox.send({"type": "inbox"})
    await buyer_inbox.expect("inbox")

    # a message from B reaches A, with unread counts and notify
    ack = await supplier.post("o1", "Your order ships Tuesday")
    assert ack["seq"] == 1
    for cl in (buyer, rep, supplier):
        m = await cl.expect("message", seq=1)
        assert m["text"] == "Your order ships Tuesday"
    u = await buyer.expect("unread", order="o1")
    assert (u["count"], u["total"]) == (1, 1)
    n = await buyer_inbox.expect("notify", order="o1")
    assert n["message"]["seq"] == 1
    await buyer_inbox.expect("unread", order="o1")

    # a note from A never reaches the buyer, on any instance
    await rep.post("o1", "internal: margin is thin", kind="note")
    await supplier.expect("message", seq=2)
    # typing from B reaches A, not B's own user, and expires by itself
    await supplier.send({"type": "typing", "order": "o1", "active": True})
    t = await buyer.expect("typing", active=True)
    assert t["user"]["id"] == "supplier1"
    t = await buyer.expect("typing", active=False)
    assert t["user"]["id"] == "supplier1"

    # read receipt from A reaches B
    await buyer.send({"type": "read", "order": "o1", "seq": 1})
    r = await supplier.expect("receipt", user="buyer1")
    assert r["seq"] == 1
    u = await buyer_inbox.expect("unread", order="o1", count=0)
    assert u["total"] == 0

    # status change on B shows on A (message and order frame)
    await supplier.send({"type": "set_status", "order": "o1", "status": "shipped", "client_id": "s1"})
    await supplier.expect("ack", client_id="s1")
    o = await buyer.expect("order", order="o1")
    assert o["status"] == "shipped"
    m = await buyer.expect("message", seq=3)
    assert m["kind"] == "status"

    # the buyer saw 1 and 3, never the note
    assert seqs(buyer, "o1") == [1, 3]
    assert all(f.get("kind") != "note" for f in buyer_inbox.frames if f.get("type") == "notify")

    # replacing the rep through instance B's REST cuts the rep on A off at once
    body = dict(ORDER, sales_rep={"id": "rep2", "name": "Ron"})
    st, _ = await c.api(1, "PUT", "/api/v1/orders/o1", body)
    assert st == 200
    left = await rep.expect("left", order="o1")
    assert left["reason"] == "removed"
    await rep.send({"type": "join", "order": "o1"})
    err = await rep.expect("error")
    assert err["code"] == "not_found"

    # presence: the supplier leaves on B, the buyer on A sees it
    await supplier.send({"type": "leave", "order": "o1"})
    p = await buyer.expect("presence", user="supplier1", online=False)
    assert p["order"] == "o1"


async def test_three_instances_exact_sequence(cluster_factory):
    c = await cluster_factory(3)
    await c.api(0, "PUT", "/api/v1/orders/o2", ORDER)
    watchers = []
    for i in range(3):
        w = await c.client(i, "supplier1", "supplier")
        await w.join("o2")
        watchers.append(w)
    bots = [await c.client(i, f"bot{i}", "bot", orders=["o2"]) for i in range(3)]

    async def burst(bot: Client, n: int) -> list[int]:
        acks = []
        for k in range(n):
            a = await bot.post("o2", f"{bot}-{k}")
            assert a["type"] == "ack", a
            acks.append(a["seq"])
        return acks

    results = await asyncio.gather(*(burst(b, 40) for b in bots))
    all_acked = sorted(s for r in results for s in r)
    assert all_acked == list(range(1, 121))
    for w in watchers:
        await w.expect("message", seq=120)
        assert seqs(w, "o2") == list(range(1, 121))


async def test_four_processes_write_one_order_gapless(cluster_factory):
    c = await cluster_factory(4)
    await c.api(0, "PUT", "/api/v1/orders/o3", ORDER)

    async def writer(i: int) -> list[int]:
        out = []
        for k in range(50):
            st, ack = await c.api(
                i, "POST", "/api/v1/orders/o3/messages", {"client_id": f"w{i}-{k}", "text": f"from {i} #{k}"}
            )
            assert st == 201, ack
            out.append(ack["seq"])
        return out

    seq_lists = await asyncio.gather(*(writer(i) for i in range(4)))
    flat = sorted(s for lst in seq_lists for s in lst)
    assert flat == list(range(1, 201))
    st, page = await c.api(2, "GET", "/api/v1/orders/o3/messages?after=0&limit=200")
    assert [m["seq"] for m in page["messages"]] == list(range(1, 201))
    assert len({m["client_id"] for m in page["messages"]}) == 200


async def test_redis_killed_and_restarted_loses_nothing(cluster_factory, redis_proc):
    c = await cluster_factory(2)
    await c.api(0, "PUT", "/api/v1/orders/o4", ORDER)
    a = await c.client(0, "buyer1", "buyer")
    b = await c.client(1, "supplier1", "supplier")
    poster_a = await c.client(0, "botA", "bot", orders="*")
    poster_b = await c.client(1, "botB", "bot", orders="*")
    await a.join("o4")
    await b.join("o4")

    async def post(bot: Client, n: int, tag: str) -> None:
        for k in range(n):
            ack = await bot.post("o4", f"{tag}{k}")
            assert ack["type"] == "ack", ack

    await asyncio.gather(post(poster_a, 20, "a"), post(poster_b, 20, "b"))
    await asyncio.to_thread(redis_proc.kill)
    for node in c.nodes:
        await wait_for(lambda node=node: health(node.base).get("relay") == "degraded", what="degraded relay")
    # while Redis is down: persistence and local delivery go on
    await asyncio.gather(post(poster_a, 20, "c"), post(poster_b, 20, "d"))
    await a.expect("message", text="c19")  # its own socket: the ack went to the poster's
    local = [f["text"] for f in a.frames if f.get("type") == "message" and f["text"].startswith("c")]
    assert local == [f"c{k}" for k in range(20)]  # A's own messages reached A's member at once
    st, page = await c.api(1, "GET", "/api/v1/orders/o4/messages?after=0&limit=200")
    assert [m["seq"] for m in page["messages"]] == list(range(1, 81))  # and all were stored
    await asyncio.to_thread(redis_proc.start)
    for node in c.nodes:
        await wait_for(lambda node=node: health(node.base).get("relay") == "ok", what="relay back")
    await asyncio.gather(post(poster_a, 10, "e"), post(poster_b, 10, "f"))
    for cl in (a, b):
        await cl.expect("message", seq=100, timeout=20)
        assert seqs(cl, "o4") == list(range(1, 101))


async def test_a_supplier_replaced_while_redis_is_down_is_cut_off(cluster_factory, redis_proc):
    """The `left` of a removal goes by pub/sub, which keeps nothing while Redis is
    down: the old supplier, joined on the other instance, stayed in the room for good
    and got every later message there, the new supplier's notes included."""
    c = await cluster_factory(2)
    await c.api(0, "PUT", "/api/v1/orders/o-cut", ORDER)
    old = await c.client(1, "supplier1", "supplier")
    rep = await c.client(1, "rep1", "sales_rep")  # a witness on the same instance
    await old.join("o-cut")
    await rep.join("o-cut")
    await asyncio.to_thread(redis_proc.kill)
    for node in c.nodes:
        await wait_for(lambda node=node: health(node.base).get("relay") == "degraded", what="degraded relay")
    st, body = await c.api(0, "PUT", "/api/v1/orders/o-cut", {**ORDER, "supplier": {"id": "s2", "name": "New"}})
    assert st == 200, body
    await old.expect("left", order="o-cut", reason="removed", timeout=20)  # by the store catch-up
    new = await c.client(0, "s2", "supplier")
    assert (await new.post("o-cut", "for the new supplier side only", kind="note"))["type"] == "ack"
    await rep.expect("message", text="for the new supplier side only", timeout=20)
    assert not [f for f in old.frames if f.get("type") == "message" and f.get("kind") == "note"], old.frames
    await asyncio.to_thread(redis_proc.start)


async def test_a_gap_filled_after_a_removal_while_redis_is_down_reaches_only_who_may_see_it(
    cluster_factory, redis_proc
):
    """Redis down, the supplier replaced on A, a note posted there: the next post on B
    opens a gap that B fills from the store. The fill must not hand the note (nor what
    comes after) to the old supplier still in B's room; it cuts them off first."""
    c = await cluster_factory(2)
    await c.api(0, "PUT", "/api/v1/orders/o-gap", ORDER)
    old = await c.client(1, "supplier1", "supplier")
    rep = await c.client(1, "rep1", "sales_rep")
    await old.join("o-gap")
    await rep.join("o-gap")
    await asyncio.to_thread(redis_proc.kill)
    for node in c.nodes:
        await wait_for(lambda node=node: health(node.base).get("relay") == "degraded", what="degraded relay")
    st, body = await c.api(0, "PUT", "/api/v1/orders/o-gap", {**ORDER, "supplier": {"id": "s2", "name": "New"}})
    assert st == 200, body
    new = await c.client(0, "s2", "supplier")
    assert (await new.post("o-gap", "for the new supplier side only", kind="note"))["type"] == "ack"
    assert (await rep.post("o-gap", "the rep, on B"))["type"] == "ack"
    await rep.expect("message", text="for the new supplier side only", timeout=20)
    await old.expect("left", order="o-gap", reason="removed", timeout=20)
    got = [f.get("text") for f in old.frames if f.get("type") == "message"]
    assert got == [], got  # neither the note nor the rep's message after it
    await asyncio.to_thread(redis_proc.start)


def online_in(joined: dict) -> dict[str, bool]:
    return {p["id"]: p["online"] for p in joined["participants"]}


async def test_a_crashed_instance_takes_its_users_offline(cluster_factory):
    """Instance A is killed (no goodbye): within its heartbeat's lifetime B
    takes over A's presence, and B's members see A's users go offline."""
    c = await cluster_factory(2)
    await c.api(0, "PUT", "/api/v1/orders/o-crash", ORDER)
    buyer = await c.client(0, "buyer1", "buyer")
    supplier = await c.client(1, "supplier1", "supplier")
    await buyer.join("o-crash")
    joined = await supplier.join("o-crash")
    if not online_in(joined)["buyer1"]:
        await supplier.expect("presence", user="buyer1", online=True)
    await c.nodes[0].akill()
    await supplier.expect("presence", user="buyer1", online=False, timeout=20)
    rep = await c.client(1, "rep1", "sales_rep")
    assert online_in(await rep.join("o-crash")) == {"buyer1": False, "supplier1": True, "rep1": True}


async def test_presence_is_right_again_after_redis_restarts_empty(cluster_factory, redis_proc):
    """Redis dies and comes back with nothing: the instances put back what they
    hold, and changes made during the outage reach the other instance."""
    c = await cluster_factory(2)
    await c.api(0, "PUT", "/api/v1/orders/o-rr", ORDER)
    buyer = await c.client(0, "buyer1", "buyer")
    rep = await c.client(0, "rep1", "sales_rep")
    supplier = await c.client(1, "supplier1", "supplier")
    for cl in (buyer, rep):
        await cl.join("o-rr")
    joined = await supplier.join("o-rr")
    for user in ("buyer1", "rep1"):
        if not online_in(joined)[user]:
            await supplier.expect("presence", user=user, online=True)
    await asyncio.to_thread(redis_proc.kill)
    for node in c.nodes:
        await wait_for(lambda node=node: health(node.base).get("relay") == "degraded", what="degraded relay")
    await buyer.close()  # goes offline while nothing can carry the news
    await asyncio.to_thread(redis_proc.start)
    await supplier.expect("presence", user="buyer1", online=False, timeout=20)

    async def settled() -> bool:  # a fresh join on B sees what is true: rep on A online, buyer gone
        probe = await c.client(1, "supplier1", "supplier")
        try:
            return online_in(await probe.join("o-rr")) == {"buyer1": False, "supplier1": True, "rep1": True}
        finally:
            await probe.close()

    await wait_for(settled, timeout=20, what="presence after the restart")
    # and presence keeps working across instances afterwards
    buyer2 = await c.client(0, "buyer1", "buyer")
    await buyer2.join("o-rr")
    await supplier.expect("presence", user="buyer1", online=True)


async def test_connection_limit_holds_across_instances(cluster_factory):
    """The contract's connections-per-user limit counts every instance; a slot
    frees when a connection closes, and when an instance dies."""
    c = await cluster_factory(2, {"max_conns_per_user": 2})
    await c.client(0, "buyer1", "buyer")  # each answered `ready`
    second = await c.client(1, "buyer1", "buyer")

    async def admitted_on(i: int) -> bool:
        d = await Client.open(c.nodes[i].ws_url)
        c.clients.append(d)
        await d.send({"type": "auth", "token": token("buyer1", "buyer")})
        try:
            await d.expect("ready", timeout=2)
            return True
        except (TimeoutError, AssertionError):
            assert d.close_code == 4429
            return False

    assert not await admitted_on(0) and not await admitted_on(1)
    await c.client(0, "supplier1", "supplier")  # other users are not affected
    await second.close()  # on node 1: a slot frees for node 0 too

    async def on_0() -> bool:
        return await admitted_on(0)

    async def on_1() -> bool:
        return await admitted_on(1)

    await wait_for(on_0, what="a freed slot")
    await c.nodes[0].akill()  # node 0 held two: once it is taken for dead, node 1 admits two
    await wait_for(on_1, timeout=20, what="the dead instance's slots")
    assert await admitted_on(1)
    assert not await admitted_on(1)


async def test_workers_two_serve_real_clients(tmp_path, redis_proc):
    d = tmp_path / "w"
    d.mkdir()
    proc = ServerProc(d, {"relay": {"url": redis_proc.url}}, port=free_port())
    proc.args = ["--workers", "2"]
    await proc.astart()
    clients: list[Client] = []
    try:
        # both workers answer on the one port
        pids = set()

        def saw_both():
            pids.add(health(proc.base).get("pid"))
            return len(pids - {None}) >= 2

        await wait_for(saw_both, what="two worker pids")
        await wait_for(lambda: health(proc.base).get("relay") == "ok", what="relay")
        async with aiohttp.ClientSession() as s:
            async with s.put(
                proc.base + "/api/v1/orders/o5", json=ORDER, headers={"Authorization": f"Bearer {API_KEY}"}
            ) as r:
                assert r.status == 201
        for i in range(6):
            role, sub = [("buyer", "buyer1"), ("supplier", "supplier1")][i % 2]
            cl = await Client.open(proc.ws_url, token(sub, role))
            clients.append(cl)
            await cl.join("o5")
        for i, cl in enumerate(clients):
            ack = await cl.post("o5", f"hello {i} {uuid.uuid4()}")
            assert ack["seq"] == i + 1
        for cl in clients:
            await cl.expect("message", seq=6)
            assert seqs(cl, "o5") == [1, 2, 3, 4, 5, 6]
    finally:
        for cl in clients:
            await cl.close()
        code = await asyncio.to_thread(proc.stop, 30)
        if code != 0:
            _dump_stacks(proc)
        assert code == 0, proc.log()


async def test_subscriptions_follow_local_interest(cluster_factory, redis_proc):
    """Each instance subscribes to the rooms and users it has connections for, not to a pattern."""
    import redis.asyncio as aioredis

    c = await cluster_factory(2)
    await c.api(0, "PUT", "/api/v1/orders/o6", ORDER)
    r = aioredis.from_url(redis_proc.url)
    try:

        async def channels():
            return {ch.decode() for ch in await r.pubsub_channels("chatd:*")}

        assert "chatd:room:o6" not in await channels()
        assert await r.execute_command("PUBSUB", "NUMPAT") == 0
        buyer = await c.client(0, "buyer1", "buyer")
        await wait_for(channels_has(r, "chatd:user:buyer1"), what="user channel")
        await buyer.join("o6")
        await wait_for(channels_has(r, "chatd:room:o6"), what="room channel")
        assert (await r.pubsub_numsub("chatd:room:o6"))[0][1] == 1  # only the instance with a member
        await buyer.send({"type": "leave", "order": "o6"})
        await buyer.expect("left")
        await wait_for(channels_has(r, "chatd:room:o6", present=False), what="room unsubscribed")
        await buyer.close()
        await wait_for(channels_has(r, "chatd:user:buyer1", present=False), what="user unsubscribed")
    finally:
        await r.aclose()


def channels_has(r, channel: str, present: bool = True):
    async def check():
        names = {ch.decode() for ch in await r.pubsub_channels("chatd:*")}
        return (channel in names) == present

    return check


async def test_workers_need_a_redis_relay(tmp_path):
    import subprocess
    import sys

    from tests.support.procs import ROOT, child_env

    out = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "chatd", "serve", "--workers", "2"],
        cwd=tmp_path,
        env=child_env(PYTHONPATH=str(ROOT)),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert out.returncode != 0
    assert "--workers > 1 needs a Redis relay" in out.stderr


async def test_readyz_reports_relay(cluster_factory):
    c = await cluster_factory(2)
    async with aiohttp.ClientSession() as s:
        async with s.get(c.nodes[1].base + "/readyz") as r:
            assert r.status == 200
            assert await r.json() == {"ready": True, "relay": "ok"}


def _dump_stacks(proc) -> None:
    """A worker that did not stop: have every chatd process left print its stacks
    into the log (for the assertion message), then end them."""
    import signal
    import subprocess
    import time

    out = subprocess.run(["pgrep", "-f", str(proc.config_path)], capture_output=True, text=True)
    pids = [int(p) for p in out.stdout.split()]
    for pid in pids:
        try:
            os.kill(pid, signal.SIGUSR1)
        except OSError:
            pass
    deadline = time.monotonic() + 5
    while "most recent call first" not in proc.log() and time.monotonic() < deadline:
        time.sleep(0.05)
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
