"""GET /metrics (issue 5, point 5), parsed with prometheus-client's own parser."""

from __future__ import annotations

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from tests.support.client import Client, settled


async def scrape(url: str) -> dict:
    async with aiohttp.ClientSession() as s:
        async with s.get(url) as r:
            assert r.status == 200
            assert r.headers["Content-Type"].startswith("text/plain; version=0.0.4")
            text = await r.text()
    return {f.name: f for f in text_string_to_metric_families(text)}


def value(fams: dict, name: str, sample: str | None = None, **labels) -> float:
    fam = fams[name]
    total = 0.0
    for s in fam.samples:
        if (sample is None or s.name == sample) and all(s.labels.get(k) == v for k, v in labels.items()):
            total += s.value
    return total


FAMILIES = [
    "chatd_connections",
    "chatd_users_connected",
    "chatd_rooms",
    "chatd_room_memberships",
    "chatd_messages_in",
    "chatd_messages_out",
    "chatd_ack_latency_seconds",
    "chatd_store_batch_size",
    "chatd_store_commit_seconds",
    "chatd_relay_up",
    "chatd_webhook_backlog",
    "chatd_webhook_dead",
    "chatd_ws_closes",
    "chatd_webhook_deliveries",
    "chatd_contact_filter_hits",
    "chatd_uploads",
]


async def test_metrics_follow_what_happens(server):
    url = server.base + "/metrics"
    await server.order("MX-1")
    before = await scrape(url)
    for name in FAMILIES:
        if name in (
            "chatd_messages_in",
            "chatd_ws_closes",
            "chatd_webhook_deliveries",
            "chatd_contact_filter_hits",
            "chatd_uploads",
        ):
            continue  # labelled counters appear with their first event
        assert name in before, name
    assert value(before, "chatd_connections") == 0
    assert value(before, "chatd_relay_up") == 1

    buyer = await server.client("buyer1", "buyer")
    supplier = await server.client("supplier1", "supplier")
    await buyer.join("MX-1")
    await supplier.join("MX-1")
    for i in range(3):
        assert (await supplier.post("MX-1", f"m{i}"))["type"] == "ack"
    await buyer.expect("message", order="MX-1", seq=3)
    await settled(supplier)

    after = await scrape(url)
    assert value(after, "chatd_connections") == 2
    assert value(after, "chatd_users_connected") == 2
    assert value(after, "chatd_rooms") == 1
    assert value(after, "chatd_room_memberships") == 2

    def d(name, sample=None, **kw):
        return value(after, name, sample, **kw) - (value(before, name, sample, **kw) if name in before else 0)

    assert d("chatd_messages_in", "chatd_messages_in_total", kind="text") == 3
    assert d("chatd_messages_out", "chatd_messages_out_total") == 6  # 3 messages x 2 members
    assert d("chatd_ack_latency_seconds", "chatd_ack_latency_seconds_count") == 3
    assert d("chatd_store_batch_size", "chatd_store_batch_size_count") >= 1
    assert d("chatd_store_batch_size", "chatd_store_batch_size_sum") >= 3  # at least the 3 posts
    assert d("chatd_store_commit_seconds", "chatd_store_commit_seconds_count") >= 1

    # closes by code: a client's normal close, a server close for a bad token
    await buyer.close()
    bad = await Client.open(server.ws_url)
    await bad.send({"type": "auth", "token": "not-a-token"})
    assert await bad.closed() == 4401
    final = await scrape(url)
    closes = {
        (s.labels["code"], s.labels["by"]): s.value
        for s in final["chatd_ws_closes"].samples
        if s.name.endswith("_total")
    }
    before_closes = {
        (s.labels["code"], s.labels["by"]): s.value
        for s in before.get("chatd_ws_closes", type("F", (), {"samples": []})).samples
        if s.name.endswith("_total")
    }
    assert closes[("4401", "server")] - before_closes.get(("4401", "server"), 0) == 1
    assert closes[("1000", "client")] - before_closes.get(("1000", "client"), 0) >= 1
    assert value(final, "chatd_connections") == 1


async def test_separate_metrics_listener(tmp_path, aiohttp_server):
    from chatd.app import create_app
    from tests.conftest import make_config, with_sections
    from tests.support.procs import free_port

    port = free_port()
    srv = await aiohttp_server(create_app(with_sections(make_config(tmp_path), {"metrics": {"port": port}})))
    async with aiohttp.ClientSession() as s:
        async with s.get(f"http://127.0.0.1:{srv.port}/metrics") as r:
            assert r.status == 404  # not on the public port when a listener is configured
    fams = await scrape(f"http://127.0.0.1:{port}/metrics")
    assert "chatd_connections" in fams
