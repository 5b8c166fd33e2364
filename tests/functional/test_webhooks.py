"""Webhooks (issue 5, point 4): events to a real local receiver, signed, addressed to
participants without a live connection, retried with backoff, delivered after a restart."""

from __future__ import annotations

import asyncio
import collections
import logging
import time

import aiohttp
import pytest
from aiohttp import web
from prometheus_client.parser import text_string_to_metric_families
from standardwebhooks import WebhookVerificationError

from chatd.webhooks import sign, verify
from tests.support.client import API_KEY, request
from tests.support.receiver import WEBHOOK_SECRET, Receiver, get, verifier
from tests.support.wait import seconds, wait_for

BACKENDS = ("single", "cluster")  # each test also runs over two instances and Redis, both delivering the outbox

SECRET = WEBHOOK_SECRET


@pytest.fixture
def webhooks_extra():
    """More `[webhooks]` keys for `sections` (parametrize it in a test)."""
    return {}


@pytest.fixture
def sections(receiver, webhooks_extra):
    return {
        "webhooks": {
            "url": receiver.url,
            "secret": SECRET,
            "backoff_initial_s": 0.05,
            "backoff_max_s": 0.2,
            "timeout_s": 2.0,
            **webhooks_extra,
        }
    }


def check_signature(req: dict, secret: str = SECRET) -> None:
    """The Standard Webhooks headers, checked with the standardwebhooks library (as a receiver
    does), then the deprecated X-Chatd-* ones (on by default in this release)."""
    h = req["headers"]
    assert h["webhook-id"] == req["json"]["id"]
    assert h["webhook-signature"].startswith("v1,")
    assert verifier(secret).verify(req["body"], h) == req["json"]
    for bad in (
        {"secret": "whsec_" + "QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUE="},
        {"body": req["body"] + b" "},
        {"headers": {**h, "webhook-id": h["webhook-id"] + "x"}},  # the id is signed too
        {"headers": {**h, "webhook-timestamp": str(int(h["webhook-timestamp"]) - 3600)}},  # a replay much later
    ):
        with pytest.raises(WebhookVerificationError):
            verifier(bad.get("secret", secret)).verify(bad.get("body", req["body"]), bad.get("headers", h))
    check_legacy_signature(req, secret)


def check_legacy_signature(req: dict, secret: str = SECRET) -> None:
    h = req["headers"]
    assert h["X-Chatd-Signature"] == sign(secret, h["X-Chatd-Timestamp"], req["body"])
    assert h["X-Chatd-Timestamp"] == h["webhook-timestamp"]
    assert verify(secret, h["X-Chatd-Timestamp"], req["body"], h["X-Chatd-Signature"], time.time())
    assert not verify("wrong secret", h["X-Chatd-Timestamp"], req["body"], h["X-Chatd-Signature"], time.time())
    assert not verify(secret, h["X-Chatd-Timestamp"], req["body"] + b" ", h["X-Chatd-Signature"], time.time())
    # a replay much later is refused by its timestamp
    assert not verify(secret, h["X-Chatd-Timestamp"], req["body"], h["X-Chatd-Signature"], time.time() + 3600)
    assert h["X-Chatd-Event-Id"] == req["json"]["id"] and h["X-Chatd-Event"] == req["json"]["type"]


def events(receiver: Receiver, kind: str | None = None) -> list[dict]:
    return [r["json"] for r in receiver.requests if kind is None or r["json"]["type"] == kind]


async def settle(server, receiver: Receiver) -> None:
    """Wait (bounded) until the outbox is empty: every event so far has been delivered."""
    deadline = time.monotonic() + 10
    while (await server.outbox_counts())[0]:
        assert time.monotonic() < deadline, "webhook outbox did not drain"
        await asyncio.sleep(0.01)


async def scrape(server) -> list[dict]:
    """The metric families of every instance (one, or each of a cluster's)."""
    out = []
    async with aiohttp.ClientSession() as s:
        for base in server.bases:
            async with s.get(base + "/metrics") as r:
                out.append({f.name: f for f in text_string_to_metric_families(await r.text())})
    return out


def deliveries(instances: list[dict]) -> dict[str, float]:
    """chatd_webhook_deliveries_total by result, added up over the instances."""
    out: dict[str, float] = {}
    for fams in instances:
        for s in fams["chatd_webhook_deliveries"].samples:
            if s.name.endswith("_total"):
                out[s.labels["result"]] = out.get(s.labels["result"], 0) + s.value
    return out


async def gauges(server, name: str, want: float) -> list[float]:
    """`name` on every instance, once each reads `want` (bounded): an instance's gauge is
    as of its own last delivery round, which may be before another instance's (up to 1 s)."""
    deadline = time.monotonic() + 10
    while True:
        values = [v for fams in await scrape(server) for v in (s.value for s in fams[name].samples)]
        if all(v == want for v in values) or time.monotonic() > deadline:
            return values
        await asyncio.sleep(0.05)


async def test_events_are_signed_and_addressed_to_offline_participants(server, receiver):
    await server.order("W-1")
    supplier = await server.client("supplier1", "supplier")
    await supplier.join("W-1")

    # supplier online (joined), buyer and rep offline: both get message.created
    ack = await supplier.post("W-1", "your parcel is ready")
    await receiver.wait_for(lambda rs: len(rs) >= 2)
    await settle(server, receiver)
    created = events(receiver, "message.created")
    assert sorted(e["recipient"]["id"] for e in created) == ["buyer1", "rep1"]
    for e in created:
        assert e["order"] == "W-1" and e["message"]["seq"] == ack["seq"]
        assert e["message"]["text"] == "your parcel is ready" and e["message"]["sender"]["id"] == "supplier1"
    assert {e["recipient"]["role"] for e in created} == {"buyer", "sales_rep"}
    for r in receiver.requests:
        check_signature(r)
    assert len({e["id"] for e in events(receiver)}) == len(receiver.requests)  # one id per event

    # a note never goes to the buyer
    receiver.requests.clear()
    await supplier.post("W-1", "internal margin talk", kind="note")
    await receiver.wait_for(lambda rs: len(rs) >= 1)
    await settle(server, receiver)
    assert [e["recipient"]["id"] for e in events(receiver, "message.created")] == ["rep1"]

    # the buyer connects but does not join: still no live connection *on the order*
    receiver.requests.clear()
    buyer = await server.client("buyer1", "buyer")
    await supplier.post("W-1", "are you there?")
    await receiver.wait_for(lambda rs: len(rs) >= 2)
    # ...then joins: only the rep is notified now (once the supplier's instance knows:
    # with two instances the buyer's presence comes over Redis, like the frame the supplier gets)
    await buyer.join("W-1")
    await supplier.expect("presence", order="W-1", user="buyer1", online=True)
    receiver.requests.clear()
    await supplier.post("W-1", "now you are here")
    await receiver.wait_for(lambda rs: len(rs) >= 1)
    await settle(server, receiver)
    assert [e["recipient"]["id"] for e in events(receiver, "message.created")] == ["rep1"]

    # disputes and status changes
    receiver.requests.clear()
    r = await request(
        buyer, {"type": "dispute", "order": "W-1", "action": "open", "client_id": "d1", "reason": "wrong colour"}, "ack"
    )
    assert r["type"] == "ack"
    await receiver.wait_for(lambda rs: any(x["json"]["type"] == "dispute.opened" for x in rs))
    staff = await server.client("boss", "staff")
    r = await request(staff, {"type": "dispute", "order": "W-1", "action": "close", "client_id": "d2"}, "ack")
    await receiver.wait_for(lambda rs: any(x["json"]["type"] == "dispute.closed" for x in rs))
    r = await request(supplier, {"type": "set_status", "order": "W-1", "status": "shipped", "client_id": "s1"}, "ack")
    await receiver.wait_for(lambda rs: any(x["json"]["type"] == "order.status_changed" for x in rs))
    st, _ = await server.api("PUT", "/api/v1/orders/W-1", {"status": "delivered"})
    await receiver.wait_for(lambda rs: len([x for x in rs if x["json"]["type"] == "order.status_changed"]) == 2)
    await settle(server, receiver)
    opened = events(receiver, "dispute.opened")[0]
    assert opened["dispute"]["open"] is True and opened["dispute"]["reason"] == "wrong colour"
    assert opened["by"]["id"] == "buyer1"
    closed = events(receiver, "dispute.closed")[0]
    assert closed["dispute"]["open"] is False and closed["by"]["id"] == "boss"
    changes = events(receiver, "order.status_changed")
    assert changes[0]["status"] == "shipped" and changes[0]["by"]["id"] == "supplier1"
    assert changes[0]["message"]["kind"] == "status"
    assert changes[1] == {**changes[1], "status": "delivered", "previous_status": "shipped", "by": None}
    for r in receiver.requests:
        check_signature(r)
    # repeating a client_id stores nothing new, so it announces nothing new
    n = len(receiver.requests)
    assert (await supplier.post("W-1", "again", client_id="same"))["duplicate"] is False
    await receiver.wait_for(lambda rs: len(rs) >= n + 1)
    await settle(server, receiver)
    n = len(receiver.requests)
    assert (await supplier.post("W-1", "again", client_id="same"))["duplicate"] is True
    await settle(server, receiver)
    assert len(receiver.requests) == n


async def test_failed_deliveries_are_retried_with_backoff(server, receiver):
    await server.order("W-2")
    receiver.fail_next = 3
    st, ack = await server.api("POST", "/api/v1/orders/W-2/messages", {"client_id": "c1", "text": "hello"})
    assert st == 201
    got = await receiver.wait_for(lambda rs: len(rs) >= 3)  # buyer, supplier, rep: the system wrote it
    assert receiver.attempts >= 6  # three refused attempts, then three delivered
    await settle(server, receiver)
    assert sorted(e["recipient"]["id"] for e in events(receiver)) == ["buyer1", "rep1", "supplier1"]
    retried = [r for r in got if int(r["headers"]["X-Chatd-Attempt"]) > 1]
    assert retried, "no event needed a second attempt"
    # a retry is the same event: same id (the receiver's idempotency key)
    assert {r["json"]["id"] for r in retried} <= set(receiver.refused)
    assert len({r["json"]["id"] for r in got}) == 3
    assert len(receiver.requests) == 3  # each delivered once, whichever instance delivered it
    for r in got:
        check_signature(r)  # re-signed with the attempt's timestamp, same event id and body

    # failures are visible in /metrics (added up over the instances that delivered)
    results = deliveries(await scrape(server))
    assert results["failed"] >= 3 and results["delivered"] >= 3
    assert await gauges(server, "chatd_webhook_backlog", 0.0) == [0.0] * len(server.bases)


async def test_a_rest_message_is_not_addressed_to_who_is_joined_on_another_instance(server, receiver):
    """REST may reach an instance where nobody is joined to the order (on a cluster the
    first, with the buyer joined on the second): the buyer is online all the same, and
    gets no message.created (the first instance used to count only its own rooms)."""
    await server.order("W-5")
    await server.client("boss", "staff")  # the first instance: joined to nothing
    buyer = await server.client("buyer1", "buyer")  # the second instance
    await buyer.join("W-5")

    async def buyer_online():  # the buyer's join reaches Redis a moment after the `joined` frame
        st, o = await server.api("GET", "/api/v1/orders/W-5")
        return {p["id"]: p["online"] for p in o["participants"]}["buyer1"]

    await wait_for(buyer_online, timeout=5, what="the buyer online in GET /orders/W-5")
    st, ack = await server.api("POST", "/api/v1/orders/W-5/messages", {"client_id": "c1", "text": "shipped"})
    assert st == 201
    await buyer.expect("message", order="W-5", seq=ack["seq"])
    await receiver.wait_for(lambda rs: len(rs) >= 2)
    await settle(server, receiver)
    assert sorted(e["recipient"]["id"] for e in events(receiver, "message.created")) == ["rep1", "supplier1"]


@pytest.mark.parametrize(
    "sections",
    [{"webhooks": {"url": "http://127.0.0.1:9/hook", "secret": "s", "max_attempts": 2, "backoff_initial_s": 0.01}}],
    ids=["unreachable"],
)
async def test_events_are_given_up_after_max_attempts(server):
    await server.order("W-3")
    await server.api("POST", "/api/v1/orders/W-3/messages", {"client_id": "c1", "text": "hello"})
    deadline = time.monotonic() + 10
    while await server.outbox_counts() != (0, 3):
        assert time.monotonic() < deadline, await server.outbox_counts()
        await asyncio.sleep(0.02)
    assert await gauges(server, "chatd_webhook_dead", 3.0) == [3.0] * len(server.bases)


@pytest.mark.single_only("the clocks are injected into the in-process server")
@pytest.mark.parametrize("webhooks_extra", [{"concurrency": 2, "timeout_s": 10.0}], ids=["c2"])
async def test_a_slow_receiver_gets_each_event_once_from_two_instances(server, receiver):
    """Two instances on one store, a receiver that takes its time (each request well
    within `timeout_s`): no event waits claimed longer than its lease, so the other
    instance never claims (and sends) it again. A round used to claim 100 events and
    send them `concurrency` at a time, the later ones long after their lease ran out."""
    from chatd.edge.keys import WEBHOOKS
    from chatd.webhooks import Webhooks
    from tests.support.clock import Clock

    one = server.app[WEBHOOKS]
    clock = one.clock = Clock(time.time() - 3600)  # nothing is due before the test says so
    other = Webhooks(one.store, one.cfg, clock=Clock(clock.t))  # another instance: its own clock
    await other.start()
    try:
        await server.order("W-6")
        for text in ("packed", "shipped"):  # six events: buyer, supplier and rep for each
            st, _ = await server.api("POST", "/api/v1/orders/W-6/messages", {"client_id": text, "text": text})
            assert st == 201
        receiver.hold()
        clock.t = time.time() + 1
        one.wake()
        await receiver.wait_held(2)  # `concurrency` in flight
        clock.t += 9  # they took 9 s of their 10
        receiver.release()
        await receiver.wait_held(2)  # the next two
        clock.t += 9
        other.clock.t = clock.t
        other.wake()  # the other instance looks now
        await receiver.wait_held(4)  # ...and sends what it claimed
        receiver.open()
        await settle(server, receiver)
    finally:
        await other.aclose()
    ids = collections.Counter(r["headers"]["webhook-id"] for r in receiver.requests)
    assert len(ids) == 6
    assert {i: n for i, n in ids.items() if n > 1} == {}, "sent twice"
    assert receiver.attempts == 6


class StallFirst(Receiver):
    """A receiver that leaves the first request it gets unanswered until `go` is set
    (well within `timeout_s`) and answers every other one at once."""

    def __init__(self) -> None:
        super().__init__()
        self.stalled = asyncio.Event()  # the first request is being held
        self.go = asyncio.Event()

    async def _handle(self, request: web.Request) -> web.Response:
        if not self.stalled.is_set():
            self.stalled.set()
            await self.go.wait()
        return await super()._handle(request)


@pytest.mark.single_only("the clocks are injected into the in-process server")
@pytest.mark.parametrize("webhooks_extra", [{"concurrency": 2, "timeout_s": 60.0}], ids=["c2"])
async def test_a_stalled_request_holds_up_its_own_slot_only(server, receiver):
    """Each slot takes the next event as soon as its attempt ends: while one request
    hangs (up to `timeout_s`), the other slot delivers every other event due."""
    import msgspec

    from chatd.edge.keys import WEBHOOKS
    from chatd.webhooks import Webhooks
    from tests.support.clock import Clock

    one = server.app[WEBHOOKS]
    one.clock = Clock(time.time() - 3600)  # the app's own delivery finds nothing due: this test's instance sends
    stalling = await StallFirst().start()
    mine = Webhooks(one.store, msgspec.structs.replace(one.cfg, url=stalling.url))
    await mine.start()
    try:
        await server.order("W-7")
        for text in ("packed", "shipped"):  # six events: buyer, supplier and rep for each
            st, _ = await server.api("POST", "/api/v1/orders/W-7/messages", {"client_id": text, "text": text})
            assert st == 201
        mine.wake()
        await asyncio.wait_for(stalling.stalled.wait(), seconds(10))
        await stalling.wait_for(lambda rs: len(rs) == 5, timeout=seconds(10))  # all but the stalled one
        assert stalling.attempts == 5  # the stalled one is counted once it is answered
        stalling.go.set()
        await settle(server, receiver)
    finally:
        stalling.go.set()  # nothing left hanging on the receiver's shutdown
        await mine.aclose()
        await stalling.stop()
    ids = collections.Counter(r["headers"]["webhook-id"] for r in stalling.requests)
    assert len(ids) == 6 and stalling.attempts == 6, ids
    assert stalling.unverified == []


async def test_delivered_after_a_restart(tmp_path):
    """The event is queued while the receiver is down, the server is killed (-9), the
    receiver comes up, the server restarts: the event arrives, signed, exactly as queued."""
    from tests.support.procs import ServerProc, free_port

    port = free_port()
    proc = ServerProc(
        tmp_path,
        {
            "webhooks": {
                "url": f"http://127.0.0.1:{port}/hook",
                "secret": SECRET,
                "backoff_initial_s": 0.05,
                "backoff_max_s": 0.2,
                "timeout_s": 1.0,
            }
        },
    )
    await proc.astart()
    receiver = Receiver()
    try:
        headers = {"Authorization": f"Bearer {API_KEY}"}
        async with aiohttp.ClientSession() as s:
            async with s.put(
                f"{proc.base}/api/v1/orders/R-1",
                headers=headers,
                json={"buyer": {"id": "buyer1", "name": "B"}, "supplier": {"id": "supplier1", "name": "S"}},
            ) as r:
                assert r.status == 201
            async with s.post(
                f"{proc.base}/api/v1/orders/R-1/messages",
                headers=headers,
                json={"client_id": "c1", "text": "parcel left the warehouse"},
            ) as r:
                ack = await r.json()
                assert r.status == 201
            # wait until a delivery attempt has failed (nobody listens on the port yet)
            deadline = time.monotonic() + 10
            while True:
                async with s.get(f"{proc.base}/metrics") as r:
                    fams = {f.name: f for f in text_string_to_metric_families(await r.text())}
                failed = sum(
                    x.value
                    for x in fams["chatd_webhook_deliveries"].samples
                    if x.name.endswith("_total") and x.labels["result"] == "failed"
                )
                backlog = fams["chatd_webhook_backlog"].samples[0].value
                if failed >= 1:
                    break
                assert time.monotonic() < deadline, "no failed attempt seen"
                await asyncio.sleep(0.05)
            assert backlog == 2
        await proc.akill()
        await receiver.start(port)
        await proc.astart()
        got = await receiver.wait_for(lambda rs: len(rs) >= 2, timeout=15)
        assert sorted(r["json"]["recipient"]["id"] for r in got) == ["buyer1", "supplier1"]
        for r in got:
            check_signature(r)
            assert r["json"]["message"]["seq"] == ack["seq"]
            assert r["json"]["message"]["text"] == "parcel left the warehouse"
            assert int(r["headers"]["X-Chatd-Attempt"]) >= 2
    finally:
        proc.stop()
        await receiver.stop()
    receiver.assert_verified()


async def test_outbox_and_links_with_synchronous_full(tmp_path, aiohttp_server, receiver):
    """With [store] synchronous = "full" the batches (and the hooks) run on the writer thread."""
    from chatd.app import create_app
    from tests.conftest import Server, make_config, with_sections
    from tests.functional.test_attachments import send, upload
    from tests.support.client import token
    from tests.support.samples import png

    cfg = with_sections(
        make_config(tmp_path),
        {
            "store": {"synchronous": "full"},
            "webhooks": {"url": receiver.url, "secret": SECRET, "backoff_initial_s": 0.05},
        },
    )
    server = Server(await aiohttp_server(create_app(cfg)), cfg)
    await server.order("FS-1")
    buyer = await server.client("buyer1", "buyer")
    try:
        st, att = await upload(server.base, "FS-1", png(), "p.png", token("buyer1", "buyer"))
        assert st == 201
        ack = await send(buyer, "FS-1", "photo", [att["id"]])
        assert ack["type"] == "ack"
        got = await receiver.wait_for(lambda rs: len(rs) >= 2)
        assert sorted(r["json"]["recipient"]["id"] for r in got) == ["rep1", "supplier1"]
        assert got[0]["json"]["message"]["attachments"] == [att]
        st, headers, body = await get(f"{server.base}/api/v1/attachments/{att['id']}", token("rep1", "sales_rep"))
        assert st == 200 and body == png()
    finally:
        for c in server.clients:
            await c.close()


async def test_legacy_headers_off_sends_only_standard_webhooks(tmp_path):
    """[webhooks] legacy_headers = false: no X-Chatd-* header, the Standard Webhooks ones verify.
    A plain (non-whsec_) secret signs with its bytes, which the library takes as bytes."""
    from tests.support.procs import ServerProc

    plain = "a-plain-secret-of-an-older-config"
    for secret, legacy in ((SECRET, False), (plain, True)):
        receiver = await Receiver(secret).start()
        (tmp_path / str(legacy)).mkdir()
        proc = ServerProc(
            tmp_path / str(legacy),
            {"webhooks": {"url": receiver.url, "secret": secret, "legacy_headers": legacy, "backoff_initial_s": 0.05}},
        )
        await proc.astart()
        try:
            headers = {"Authorization": f"Bearer {API_KEY}"}
            async with aiohttp.ClientSession() as s:
                async with s.put(
                    f"{proc.base}/api/v1/orders/L-1",
                    headers=headers,
                    json={"buyer": {"id": "buyer1", "name": "B"}, "supplier": {"id": "supplier1", "name": "S"}},
                ) as r:
                    assert r.status == 201
                async with s.post(
                    f"{proc.base}/api/v1/orders/L-1/messages", headers=headers, json={"client_id": "c1", "text": "hi"}
                ) as r:
                    assert r.status == 201
            got = await receiver.wait_for(lambda rs: len(rs) >= 2)
            for r in got:
                assert verifier(secret).verify(r["body"], r["headers"]) == r["json"]
                chatd_headers = sorted(k for k in r["headers"] if k.lower().startswith("x-chatd-"))
                if legacy:
                    check_legacy_signature(r, secret)
                else:
                    assert chatd_headers == []
        finally:
            proc.stop()
            await receiver.stop()
        receiver.assert_verified()


class Recorder:
    """A real HTTP server on 127.0.0.1 that records every request (any method, any path)
    and answers `status`, with `Location: location` when one is given."""

    def __init__(self, status: int, location: str | None, new: asyncio.Event) -> None:
        self.status = status
        self.location = location
        self.requests: list[dict] = []
        self._new = new  # set on every request (one event for several recorders)
        self.runner: web.AppRunner | None = None
        self.url = ""

    async def _handle(self, request: web.Request) -> web.Response:
        self.requests.append({"method": request.method, "headers": dict(request.headers), "body": await request.read()})
        self._new.set()
        headers = {"Location": self.location} if self.location else {}
        return web.Response(status=self.status, headers=headers)

    async def start(self) -> Recorder:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", 0).start()
        self.url = f"http://127.0.0.1:{self.runner.addresses[0][1]}/hook"
        return self

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()


@pytest.mark.parametrize("status", [302, 307, 308])
async def test_a_redirect_is_a_failed_attempt_and_is_not_followed(tmp_path, aiohttp_server, caplog, status):
    """A 3xx is not a delivery: followed, a 307/308 re-sent the signed body to the
    Location's host, and a 302 became a GET whose 200 deleted the event."""
    from chatd.app import create_app
    from tests.conftest import Server, make_config, with_sections

    caplog.set_level(logging.INFO, "chatd.webhooks")
    new = asyncio.Event()
    elsewhere = await Recorder(200, None, new).start()  # where the Location points: another host
    hook = await Recorder(status, elsewhere.url, new).start()
    cfg = with_sections(
        make_config(tmp_path),
        {"webhooks": {"url": hook.url, "secret": SECRET, "backoff_initial_s": 0.05, "backoff_max_s": 0.05}},
    )
    server = Server(await aiohttp_server(create_app(cfg)), cfg)
    try:
        await server.order("RD-1", rep=None)
        st, _ = await server.api("POST", "/api/v1/orders/RD-1/messages", {"client_id": "c1", "text": "signed"})
        assert st == 201

        def attempts() -> dict[str, list[str]]:
            out: dict[str, list[str]] = {}
            for r in hook.requests:
                out.setdefault(r["headers"]["webhook-id"], []).append(r["headers"]["X-Chatd-Attempt"])
            return out

        def settled() -> bool:  # both events (buyer, supplier) tried twice, or a redirect followed
            return bool(elsewhere.requests) or (len(attempts()) == 2 and all(len(a) >= 2 for a in attempts().values()))

        async with asyncio.timeout(seconds(10)):
            while not settled():
                new.clear()
                await new.wait()
        assert elsewhere.requests == [], "a redirect was followed"
        assert all(r["method"] == "POST" for r in hook.requests)
        for tried in attempts().values():
            assert tried[:2] == ["1", "2"]  # the first attempt failed and counted: retried, same event
        assert (await server.outbox_counts())[0] == 2  # still waiting, not deleted as delivered
        failures = [r.getMessage() for r in caplog.records if "attempt 1 failed" in r.getMessage()]
        assert len(failures) == 2 and all(f.endswith(f"HTTP {status}") for f in failures), failures
    finally:
        await server.srv.close()
        await hook.stop()
        await elsewhere.stop()


def test_a_whsec_secret_must_be_base64():
    from chatd import config

    with pytest.raises(ValueError, match=r"\[webhooks\] secret: whsec_ must be followed by a base64 key"):
        config.load(None, {"CHATD_WEBHOOK_SECRET": "whsec_not base64!", "CHATD_AUTH_SECRET": "x", "CHATD_API_KEY": "y"})
