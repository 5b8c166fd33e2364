"""Operability (issue 15): /metrics passes `promtool check metrics` (Debian's prometheus
package), the Grafana dashboard in docs/ queries only metrics chatd exposes (its PromQL
checked by `promtool check rules`), and `[log] format = "json"` writes JSON lines whose
request lines carry the order and the user."""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import subprocess
import time

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support.client import API_KEY, Client, token
from tests.support.procs import ROOT, ServerProc
from tests.support.receiver import WEBHOOK_SECRET

BACKENDS = ("single", "cluster")  # the cluster's /metrics has the relay up and two instances
PROMTOOL = shutil.which("promtool")
if PROMTOOL is None:  # scripts/deps.sh installs it (package prometheus) for `make test` and CI
    pytest.fail("promtool is not installed: run `make deps` (scripts/deps.sh)", pytrace=False)
DASHBOARD = ROOT / "docs" / "grafana-dashboard.json"


@pytest.fixture
def sections(receiver):
    return {
        "webhooks": {"url": receiver.url, "secret": WEBHOOK_SECRET, "backoff_initial_s": 0.05},
        "sla": {"reply_within_s": 3600},
    }


async def _activity(server, receiver) -> None:
    """Something in every family: messages, closes, webhooks, notifications."""
    await server.order("M-1")
    buyer = await server.client("buyer1", "buyer")
    await buyer.join("M-1")
    await buyer.post("M-1", "where is my parcel?")
    await server.api("POST", "/api/v1/orders/M-1/messages", {"client_id": "c1", "text": "on its way"})
    await buyer.close()
    await receiver.wait_for(lambda rs: len(rs) >= 1)
    deadline = time.monotonic() + 10  # ... and counted, after its settle (on one of the instances)
    while not any("chatd_webhook_deliveries_total{" in text for text in [await _scrape(b) for b in server.bases]):
        assert time.monotonic() < deadline, "no webhook delivery counted"
        await asyncio.sleep(0.05)


async def promtool(*args: str, stdin: str = "") -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        PROMTOOL, *args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    out, _ = await asyncio.wait_for(proc.communicate(stdin.encode()), 60)
    return proc.returncode or 0, out.decode()


async def _scrape(base: str) -> str:
    async with aiohttp.ClientSession() as s, s.get(base + "/metrics") as r:
        assert r.status == 200
        return await r.text()


async def test_metrics_pass_promtool_check_metrics(server, receiver):
    await _activity(server, receiver)
    for base in server.bases:
        text = await _scrape(base)
        code, out = await promtool("check", "metrics", stdin=text)
        assert code == 0 and out == "", out
        names = {f.name for f in text_string_to_metric_families(text)}
        assert {"chatd_sla_breaches", "chatd_notifications_due", "chatd_notifications_pending"} <= names


def _exprs() -> list[str]:
    dash = json.loads(DASHBOARD.read_text())
    return [t["expr"] for p in dash["panels"] for t in p["targets"]]


async def test_the_grafana_dashboard_queries_what_chatd_exposes(server, receiver, tmp_path):
    await _activity(server, receiver)
    samples = {
        s.name for base in server.bases for f in text_string_to_metric_families(await _scrape(base)) for s in f.samples
    }
    exprs = _exprs()
    used = {m for e in exprs for m in re.findall(r"\b(chatd_\w+)", e)}
    assert used <= samples, f"not exposed: {sorted(used - samples)}"
    for topic in (
        "chatd_connections",
        "chatd_messages_in_total",
        "chatd_store_commit_seconds_bucket",
        "chatd_relay_up",
        "chatd_webhook_backlog",
        "chatd_notifications_due",
        "chatd_sla_breaches_total",
    ):
        assert topic in used, topic
    # the PromQL itself, with Grafana's variables filled in, as recording rules promtool parses
    rules = tmp_path / "rules.yml"
    lines = ["groups:", "  - name: chatd-dashboard", "    rules:"]
    for i, e in enumerate(exprs):
        e = e.replace("$__rate_interval", "5m").replace("$job", ".*")
        lines += [f"      - record: chatd:dashboard_{i}", f"        expr: {json.dumps(e)}"]
    rules.write_text("\n".join(lines) + "\n")
    code, out = await promtool("check", "rules", str(rules))
    assert code == 0, out


@pytest.mark.single_only("one process with its own log file")
async def test_json_logs_carry_order_and_user_on_request_lines(tmp_path):
    proc = ServerProc(tmp_path, {"log": {"format": "json"}})
    await proc.astart()
    try:
        api = {"Authorization": f"Bearer {API_KEY}"}
        people = {"buyer": {"id": "buyer1", "name": "B"}, "supplier": {"id": "supplier1", "name": "S"}}
        async with aiohttp.ClientSession() as s:
            async with s.put(f"{proc.base}/api/v1/orders/J-1", json=people, headers=api) as r:
                assert r.status == 201
            bearer = {"Authorization": f"Bearer {token('buyer1', 'buyer')}"}
            async with s.get(f"{proc.base}/api/v1/orders/J-1/messages", headers=bearer) as r:
                assert r.status == 200
            async with s.get(f"{proc.base}/api/v1/orders/J-2", headers=bearer) as r:
                assert r.status == 403  # GET /orders/{order} is for the api key and staff
        c = await Client.open(proc.ws_url, token("buyer1", "buyer"))
        await c.join("J-1")
        await c.close()
    finally:
        proc.stop()
    lines = [json.loads(line) for line in proc.log().splitlines() if line.strip()]  # every line is JSON
    assert all({"ts", "level", "logger", "msg"} <= set(x) for x in lines)
    requests = [x for x in lines if x["logger"] == "chatd.access"]

    def line(method: str, path: str) -> dict:
        (found,) = [x for x in requests if x["method"] == method and x["path"] == path]
        return found

    put = line("PUT", "/api/v1/orders/J-1")
    assert (put["status"], put["order"], put["user"]) == (201, "J-1", "api_key")
    get = line("GET", "/api/v1/orders/J-1/messages")
    assert (get["status"], get["order"], get["user"]) == (200, "J-1", "buyer1")
    refused = line("GET", "/api/v1/orders/J-2")
    assert (refused["status"], refused["order"], refused["user"]) == (403, "J-2", "buyer1")
    ws = line("GET", "/ws")
    assert (ws["status"], ws["user"]) == (101, "buyer1") and ws["remote"] == "127.0.0.1"
    assert isinstance(ws["duration_ms"], float)
    assert any("listening on" in x["msg"] for x in lines)


@pytest.mark.parametrize("request_bytes", [b"X-Probe: \x00\r\n", b"Bad Header\r\n"], ids=["nul", "no-colon"])
async def test_a_request_aiohttp_cannot_parse_is_one_info_line(tmp_path, request_bytes):
    """aiohttp answers it 400 and logged it as an ERROR with its parser's traceback:
    any client could fill the log with them."""
    proc = ServerProc(tmp_path)
    await proc.astart()
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", proc.port)
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + request_bytes + b"\r\n")
        status = await asyncio.wait_for(reader.readline(), 10)
        writer.close()
        assert status.split(b" ")[1] == b"400", status
    finally:
        proc.stop()
    log = proc.log()
    assert "Traceback" not in log and " ERROR " not in log, log
    (line,) = [x for x in log.splitlines() if "Error handling request" in x]
    assert " INFO aiohttp.server: " in line and "answered 400" in line, line
