"""Resume without loss (issue 2, point 7): `join` with `since` while others post.

Two rate-exempt posters pipeline a burst of 300 messages; clients re-join
with `since` at several points of the burst and must get exactly the
messages after `since`, in order, once each, replay and live together.
"""

from __future__ import annotations

import asyncio
import uuid

from tests.support.client import request, settled

BACKENDS = ("single", "cluster")  # each test also runs over two instances and Redis

ORDER = "burst"
N = 300


def seqs(client, order=ORDER) -> list[int]:
    return [m["seq"] for m in client.of_type("message", order=order)]


async def wait_seq(client, seq: int, timeout: float = 20.0) -> None:
    await client.expect("message", order=ORDER, seq=seq, timeout=timeout)


async def _burst(posters, n: int) -> None:
    """Send `n` messages round robin without waiting for acks, then wait for all acks."""
    for i in range(n):
        await posters[i % len(posters)].send(
            {"type": "send", "order": ORDER, "client_id": str(uuid.uuid4()), "text": f"m{i}"}
        )
    for idx, p in enumerate(posters):
        mine = len(range(idx, n, len(posters)))
        for _ in range(mine):
            f = await p._next_of(("ack", "error"))
            assert f["type"] == "ack", f


async def test_resume_during_burst_no_gap_no_duplicate(server):
    await server.order(ORDER)
    staff = await server.client("staff1", "staff")
    bot = await server.client("bot1", "bot", orders="*")
    watcher = await server.client("supplier1", "supplier")
    await watcher.join(ORDER)
    checkpoints = [1, 40, 90, 150, 210, 270, 299]
    resumers = [await server.client("buyer1", "buyer") for _ in checkpoints]
    # one client drops its connection mid-burst and comes back with `since`
    dropper = await server.client("rep1", "sales_rep")
    await dropper.join(ORDER)

    burst = asyncio.create_task(_burst([staff, bot], N))
    joined = []
    for k, r in zip(checkpoints, resumers, strict=True):
        await wait_seq(watcher, k)
        await r.send({"type": "join", "order": ORDER, "since": k})
        if k == 150:
            await wait_seq(dropper, 120)
            await dropper.close()
            held = max(seqs(dropper))
            dropper = await server.client("rep1", "sales_rep")
            joined.append(("dropper", held, await dropper.join(ORDER, since=held)))
    for k, r in zip(checkpoints, resumers, strict=True):
        joined.append((k, k, await r.expect("joined", order=ORDER)))
    await burst

    for k, r in zip(checkpoints, resumers, strict=True):
        await wait_seq(r, N)
        assert seqs(r) == list(range(k + 1, N + 1)), k
    await wait_seq(dropper, N)
    held = joined[0][1]
    assert seqs(dropper) == list(range(held + 1, N + 1))
    await wait_seq(watcher, N)
    assert seqs(watcher) == list(range(1, N + 1))
    for _, since, j in joined:
        assert j["truncated"] is False and since <= j["last_seq"] <= N
    # the burst was under way while most of them joined
    assert any(j["last_seq"] < N for _, _, j in joined)
    # and the history agrees, once each
    page = await request(watcher, {"type": "history", "order": ORDER, "after": 0, "limit": 200}, "history")
    page2 = await request(watcher, {"type": "history", "order": ORDER, "after": 200, "limit": 200}, "history")
    assert [m["seq"] for m in page["messages"] + page2["messages"]] == list(range(1, N + 1))
    assert page["has_more"] is True and page2["has_more"] is False


async def test_truncated_replay_mid_burst(server):
    """More than `limit` missed while others post: newest `limit` then live, contiguous."""
    await server.order(ORDER)
    staff = await server.client("staff1", "staff")
    watcher = await server.client("supplier1", "supplier")
    await watcher.join(ORDER)
    late = await server.client("buyer1", "buyer")
    burst = asyncio.create_task(_burst([staff], N))
    await wait_seq(watcher, 100)
    j = await late.join(ORDER, since=0, limit=20)
    await burst
    await wait_seq(late, N)
    assert j["truncated"] is True
    got = seqs(late)
    assert got == list(range(got[0], N + 1))
    assert got[0] == j["last_seq"] - 19 and j["last_seq"] >= 100


async def test_replay_limits_and_paging_back(server):
    await server.order(ORDER)
    staff = await server.client("staff1", "staff")
    await _burst([staff], N)
    buyer = await server.client("buyer1", "buyer")

    j = await buyer.join(ORDER)  # no since: newest replay_default (50), not truncated
    await settled(buyer)
    assert j["truncated"] is False and j["last_seq"] == N and j["unread"] == N
    assert seqs(buyer) == list(range(N - 49, N + 1))

    buyer.frames.clear()
    j = await buyer.join(ORDER, since=0)  # default since-limit 500 covers all 300
    await settled(buyer)
    assert j["truncated"] is False and seqs(buyer) == list(range(1, N + 1))

    buyer.frames.clear()
    j = await buyer.join(ORDER, since=100, limit=50)
    await settled(buyer)
    assert j["truncated"] is True and seqs(buyer) == list(range(N - 49, N + 1))

    buyer.frames.clear()
    j = await buyer.join(ORDER, since=N)
    await settled(buyer)
    assert j["truncated"] is False and seqs(buyer) == []

    # the client pages back with history to fill the hole
    page = await request(buyer, {"type": "history", "order": ORDER, "before": N - 49, "limit": 500}, "history")
    assert [m["seq"] for m in page["messages"]] == list(range(51, N - 49)) and page["has_more"] is True
    page = await request(buyer, {"type": "history", "order": ORDER, "before": 51, "limit": 200}, "history")
    assert [m["seq"] for m in page["messages"]] == list(range(1, 51)) and page["has_more"] is False
    page = await request(buyer, {"type": "history", "order": ORDER}, "history")
    assert [m["seq"] for m in page["messages"]] == list(range(N - 49, N + 1)) and page["has_more"] is True

    for bad in ({"since": -1}, {"limit": -5}):
        r = await request(buyer, {"type": "join", "order": ORDER, **bad}, "joined")
        assert r["type"] == "error" and r["code"] == "bad_request" and r["ref"] == ORDER
    r = await request(buyer, {"type": "history", "order": ORDER, "limit": 0}, "history")
    assert r["type"] == "error" and r["code"] == "bad_request"


async def test_no_replay_cap_but_limit(server):
    """`limit` above the default (500) is honoured: no other window cap."""
    await server.order(ORDER)
    staff = await server.client("staff1", "staff")
    await _burst([staff], 600)
    rep = await server.client("rep1", "sales_rep")
    j = await rep.join(ORDER, since=0, limit=1000)
    await settled(rep)
    assert j["truncated"] is False and seqs(rep) == list(range(1, 601))
    rep.frames.clear()
    j = await rep.join(ORDER, since=0)
    await settled(rep)
    assert j["truncated"] is True and seqs(rep) == list(range(101, 601))
