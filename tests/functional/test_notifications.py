"""Notifications (issue 13): debounced, capped, durable notifications of messages to
participants who are not in the chat, as a `notification` webhook and as e-mail
through a real SMTP server that requires STARTTLS (aiosmtpd, a trustme CA), with
injected clocks; across a restart and across two hosts, each sent exactly once.
"""

from __future__ import annotations

import asyncio
import collections

import pytest
import trustme

from chatd.edge.keys import NOTIFIER
from tests.support.client import request, token
from tests.support.clock import Clock, inject
from tests.support.receiver import WEBHOOK_SECRET
from tests.support.smtp import SmtpSink
from tests.support.wait import seconds, wait_for

BACKENDS = ("single", "cluster")
MIN = 60.0


@pytest.fixture(scope="module")
def ca():
    return trustme.CA()


@pytest.fixture
async def smtp(ca, tmp_path):
    path = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    sink = SmtpSink(str(path), ca.issue_cert("127.0.0.1"))
    sink.controller.start()
    yield sink
    sink.open()
    sink.controller.stop()


@pytest.fixture
def sections(receiver, smtp, backend):
    return {
        "webhooks": {"url": receiver.url, "secret": WEBHOOK_SECRET, "backoff_initial_s": 0.05, "timeout_s": 2.0},
        "email": {"smtp_url": smtp.url, "tls_ca_file": smtp.ca_file, "from_address": "orders@shop.example"},
        "notify": {
            "delay_s": 300.0 if backend == "single" else 0.0,
            "poll_s": 3600.0 if backend == "single" else 0.05,  # single: the test drives delivery
            "link_template": "https://shop.example/orders/{order}",
            "staff_email": "help@shop.example",
            "max_per_order_per_day": 2,  # (single's caps test)
            "max_per_day": 3 if backend == "single" else 20,
        },
    }


ORDER = {
    "buyer": {"id": "buyer1", "name": "Bea", "email": "bea@buyer.example", "phone": "+49 30 1234", "locale": "de-DE"},
    "supplier": {"id": "supplier1", "name": "Sam", "email": "sam@supplier.example", "locale": "en-US"},
    "sales_rep": {"id": "rep1", "name": "Rita"},  # no e-mail: webhook only
}


async def say(client, order: str, text: str, kind: str = "text") -> dict:
    frame = {"type": "send", "order": order, "client_id": f"{order}-{text}", "text": text, "kind": kind}
    ack = await request(client, frame, "ack")
    assert ack["type"] == "ack", ack
    return ack


async def supplier_in(server, order: str, supplier=None):
    """`order` made (ORDER's people) and the supplier joined to it: their connection."""
    st, _ = await server.api("PUT", f"/api/v1/orders/{order}", ORDER)
    assert st == 201
    supplier = supplier or await server.client("supplier1", "supplier")
    await supplier.join(order)
    return supplier


def notifications(receiver, user: str | None = "buyer1") -> list[dict]:
    out = [r["json"] for r in receiver.requests if r["json"]["type"] == "notification"]
    return [n for n in out if n["recipient"]["id"] == user] if user != "*" else out


async def settle(server) -> None:
    """Every webhook event written so far has been delivered."""

    async def drained() -> bool:
        return (await server.outbox_counts())[0] == 0

    await wait_for(drained, what="the outbox to drain")


async def delivered(server, receiver, count: int) -> list[dict]:
    await receiver.wait_for(lambda rs: len([r for r in rs if r["json"]["type"] == "notification"]) >= count)
    return notifications(receiver, "*")


@pytest.mark.single_only("the clocks are injected into the in-process server")
async def test_one_notification_for_a_burst_by_webhook_and_by_email(server, receiver, smtp):
    clock = inject(server)
    notifier = server.app[NOTIFIER]
    supplier = await supplier_in(server, "N-1")
    await say(supplier, "N-1", "Your pallet is packed")
    clock.t += 2 * MIN
    await say(supplier, "N-1", "It ships tomorrow <b>8:00</b>")
    await say(supplier, "N-1", "internal: carrier booked", "note")
    clock.t += 4 * MIN  # four minutes after the latest: not yet (five after it)
    assert await notifier.deliver_due() == 0
    clock.t += 1 * MIN
    assert await notifier.deliver_due() == 2  # the buyer and the rep, one each for all three messages
    sent = await delivered(server, receiver, 2)
    (b,) = [n for n in sent if n["recipient"]["id"] == "buyer1"]
    assert b["recipient"] == {
        "id": "buyer1",
        "name": "Bea",
        "role": "buyer",
        "email": "bea@buyer.example",
        "phone": "+49 30 1234",
        "locale": "de-DE",
    }
    assert [m["seq"] for m in b["messages"]] == [1, 2]  # not the note
    assert b["reply_to"] is None  # reply by e-mail is off here
    assert (b["order"], b["status"], b["reason"], b["link"]) == (
        "N-1",
        "open",
        "messages",
        "https://shop.example/orders/N-1",
    )
    (r,) = [n for n in sent if n["recipient"]["id"] == "rep1"]
    assert [m["seq"] for m in r["messages"]] == [1, 2, 3] and r["recipient"]["email"] is None
    (mail,) = await smtp.wait_for(1)  # the rep has no address: only the buyer's e-mail
    assert smtp.envelopes[0] == ("orders@shop.example", ["bea@buyer.example"])
    assert mail["Subject"] == "2 new messages on order N-1"
    assert mail["Message-ID"] == f"<{b['notification_id']}@shop.example>"
    plain = mail.get_body(("plain",)).get_content()
    rich = mail.get_body(("html",)).get_content()
    assert "Your pallet is packed" in plain and "https://shop.example/orders/N-1" in plain
    assert "carrier booked" not in plain + rich  # notes never reach a buyer
    assert "&lt;b&gt;8:00&lt;/b&gt;" in rich and "<b>8:00</b>" not in rich  # texts are text in HTML too
    assert "sam@supplier.example" not in mail.as_string()  # never the other side's contact details
    assert "(15.01.2027, 08:00:00 UTC)" in plain  # the buyer's locale (de-DE) writes the time
    assert await notifier.deliver_due() == 0  # sent once


@pytest.mark.single_only("the clocks are injected into the in-process server")
async def test_reading_cancels_caps_hold_back_and_urgent_events_go_at_once(server, receiver, smtp):
    clock = inject(server)
    notifier = server.app[NOTIFIER]
    await server.api("PUT", "/api/v1/orders/N-2", ORDER)
    await server.api("PUT", "/api/v1/orders/N-3", ORDER)
    supplier = await server.client("supplier1", "supplier")
    buyer = await server.client("buyer1", "buyer")
    for order in ("N-2", "N-3"):
        await supplier.join(order)
    await say(supplier, "N-2", "first")
    await buyer.send({"type": "read", "order": "N-2", "seq": 1})  # read on some device, never joined
    await buyer.expect("unread", order="N-2", count=0)
    clock.t += 10 * MIN
    assert await notifier.deliver_due() == 1  # the rep's only: the buyer read it
    await settle(server)
    assert notifications(receiver) == []
    # caps: two per order per day, three per day; over them the messages wait for the next one allowed
    for i in range(4):
        await say(supplier, "N-2", f"update {i}")
        clock.t += 10 * MIN
        await notifier.deliver_due()
    await settle(server)
    buyer_sent = notifications(receiver)
    assert len(buyer_sent) == 2  # the order's cap
    await say(supplier, "N-3", "on the other order")
    clock.t += 10 * MIN
    await notifier.deliver_due()
    await settle(server)
    assert len(notifications(receiver)) == 3  # the day's cap reached
    await say(supplier, "N-3", "more on the other order")
    clock.t += 10 * MIN
    await notifier.deliver_due()
    await settle(server)
    assert len(notifications(receiver)) == 3
    clock.t += 24 * 3600  # a day on, both caps allow again: the held-back messages come, one per order
    await notifier.deliver_due()
    await settle(server)
    later = notifications(receiver)[3:]
    assert {n["order"]: [m["seq"] for m in n["messages"]] for n in later} == {"N-2": [4, 5], "N-3": [2]}
    # a status change reaches the buyer at once, a dispute everyone and staff
    st, _ = await server.api("PUT", "/api/v1/orders/N-3", {"status": "shipped"})
    await notifier.deliver_due()
    await settle(server)
    assert notifications(receiver)[-1]["reason"] == "status"
    clock.t += 24 * 3600
    r = await request(
        buyer, {"type": "dispute", "order": "N-3", "action": "open", "client_id": "d1", "reason": "broken"}, "ack"
    )
    assert r["type"] == "ack"
    await notifier.deliver_due()
    await settle(server)
    staff = notifications(receiver, None)
    assert [(n["reason"], n["recipient"]["role"], n["recipient"]["email"]) for n in staff] == [
        ("dispute", "staff", "help@shop.example")
    ]
    await settle(server)
    disputes = {n["recipient"]["id"] for n in notifications(receiver, "*") if n["reason"] == "dispute"}
    assert disputes == {"rep1", None}  # not the buyer who opened it, nor the supplier watching the chat
    mails = await smtp.wait_for(1)
    assert any(m["To"] == "help@shop.example" and "dispute" in m["Subject"] for m in mails)


@pytest.mark.single_only("the clocks are injected into the in-process server")
async def test_preferences_and_a_failing_mail_server(server, receiver, smtp):
    clock = inject(server)
    notifier = server.app[NOTIFIER]
    await server.api("PUT", "/api/v1/orders/N-4", ORDER)
    await server.api("PUT", "/api/v1/orders/N-5", ORDER)
    supplier = await server.client("supplier1", "supplier")
    st, prefs = await server.api("GET", "/api/v1/users/buyer1/notifications", auth=token("buyer1", "buyer"))
    assert (st, prefs) == (200, {"user": "buyer1", "email": True, "muted_orders": []})
    st, _ = await server.api("GET", "/api/v1/users/buyer1/notifications", auth=token("buyer2", "buyer"))
    assert st == 403
    st, prefs = await server.api(
        "PUT",
        "/api/v1/users/buyer1/notifications",
        {"email": False, "muted_orders": ["N-5"]},
        auth=token("buyer1", "buyer"),
    )
    assert st == 200 and prefs["muted_orders"] == ["N-5"]
    for order in ("N-4", "N-5"):
        await supplier.join(order)
        await say(supplier, order, "news")
    clock.t += 10 * MIN
    await notifier.deliver_due()
    await settle(server)
    assert [n["order"] for n in notifications(receiver)] == ["N-4"]  # N-5 muted; e-mail off: webhook only
    assert smtp.mails == []
    for bad in ({"email": "yes"}, {"muted_orders": ["x" * 201]}, {"sms": True}):
        st, err = await server.api("PUT", "/api/v1/users/buyer1/notifications", bad)
        assert st == 400 and err["error"]["code"] == "bad_request", bad
    # the supplier wants e-mail; the mail server fails once: retried, then sent once
    await supplier.send({"type": "leave", "order": "N-4"})
    await supplier.expect("left", order="N-4")
    buyer = await server.client("buyer1", "buyer")
    await buyer.join("N-4")
    await say(buyer, "N-4", "When?")
    smtp.fail_next = 1
    clock.t += 10 * MIN
    assert await notifier.deliver_due() == 1  # the rep's (no e-mail); the supplier's e-mail failed
    await settle(server)
    await settle(server)
    assert not notifications(receiver, "supplier1")
    clock.t += 1 * MIN
    assert await notifier.deliver_due() == 1
    (mail,) = await smtp.wait_for(1)
    assert mail["To"] == "sam@supplier.example"
    await delivered(server, receiver, 2)
    await settle(server)
    assert len(notifications(receiver, "supplier1")) == 1


@pytest.mark.single_only("a restart of the in-process server over the same database")
async def test_a_pending_notification_survives_a_restart_and_goes_once(server, receiver, smtp, aiohttp_server):
    from chatd.app import create_app

    clock = inject(server)
    supplier = await supplier_in(server, "N-6")
    await say(supplier, "N-6", "before the restart")
    await server.srv.close()  # the first instance goes away with the notification pending
    again = await aiohttp_server(create_app(server.cfg))
    notifier = again.app[NOTIFIER]
    notifier.clock = Clock(clock.t + 10 * MIN)
    assert await notifier.deliver_due() == 2  # buyer and rep, once each
    assert await notifier.deliver_due() == 0
    await delivered(server, receiver, 2)
    assert [n["messages"][0]["text"] for n in notifications(receiver)] == ["before the restart"]


async def test_two_hosts_send_each_notification_once(server, receiver, smtp, backend):
    if backend != "cluster":
        pytest.skip("the real-time variant of the two-instance race")
    orders = [f"H-{i}" for i in range(6)]
    for order in orders:
        st, _ = await server.api("PUT", f"/api/v1/orders/{order}", ORDER)
        assert st == 201
    supplier = await server.client("supplier1", "supplier")
    for order in orders:
        await supplier.join(order)
        await say(supplier, order, "news")
    # both instances deliver every 50 ms; each order's buyer and rep are told once: 12 webhooks, 6 e-mails
    await delivered(server, receiver, 12)
    await smtp.wait_for(6)
    await settle(server)
    sent = notifications(receiver, "*")
    ids = [n["notification_id"] for n in sent]
    assert len(ids) == len(set(ids))
    assert sorted((n["order"], n["recipient"]["id"]) for n in sent) == sorted(
        (o, u) for o in orders for u in ("buyer1", "rep1")
    )
    assert len({m["Message-ID"] for m in smtp.mails}) == len(smtp.mails) == 6


@pytest.mark.single_only("the clocks are injected into the in-process server")
async def test_staff_hear_at_once_of_a_help_request_and_an_sla_breach(server, receiver, smtp):
    from chatd.edge.keys import SLA

    clock = inject(server)
    server.app[SLA].clock = clock
    notifier = server.app[NOTIFIER]
    await server.api("PUT", "/api/v1/orders/N-7", ORDER)
    await server.api("PUT", "/api/v1/orders/N-8", ORDER)
    buyer = await server.client("buyer1", "buyer")
    await buyer.join("N-7")
    r = await request(buyer, {"type": "help", "order": "N-7", "client_id": "h1", "text": "nobody answers"}, "ack")
    assert r["type"] == "ack", r
    await say(buyer, "N-8", "Where is my order?")  # starts the reply clock
    assert await notifier.deliver_due() == 1  # staff, at once; the others after the delay
    clock.t += 24 * 3600 + 1
    assert await server.app[SLA].sweep() == 1
    await notifier.deliver_due()
    await settle(server)
    staff = notifications(receiver, None)
    assert [(n["order"], n["reason"]) for n in staff][:2] == [("N-7", "help"), ("N-8", "sla")]
    mails = await smtp.wait_for(2)
    subjects = [m["Subject"] for m in mails if m["To"] == "help@shop.example"]
    assert "Help was requested on order N-7" in subjects
    assert "A buyer waits too long for a reply on order N-8" in subjects


@pytest.mark.single_only("the clocks are injected into the in-process server")
async def test_a_staff_answer_takes_the_staff_notification_a_staff_dispute_keeps_its_own(server, receiver, smtp):
    """A staff member writing in the order has seen it for staff as a whole, as a staff
    read: the pending staff notification of the buyer's dispute goes. A dispute staff open
    themselves still tells staff as a whole."""
    inject(server)
    notifier = server.app[NOTIFIER]
    await server.api("PUT", "/api/v1/orders/N-9", ORDER)
    await server.api("PUT", "/api/v1/orders/N-10", ORDER)
    buyer, stella = await server.client("buyer1", "buyer"), await server.client("stella", "staff")
    r = await request(
        buyer, {"type": "dispute", "order": "N-9", "action": "open", "client_id": "d1", "reason": "broken"}, "ack"
    )
    assert r["type"] == "ack", r
    await say(stella, "N-9", "We are on it, sorry about that.")  # before the notifier's round
    r = await request(
        stella,
        {"type": "dispute", "order": "N-10", "action": "open", "client_id": "d2", "reason": "fraud check"},
        "ack",
    )
    assert r["type"] == "ack", r
    await notifier.deliver_due()
    await settle(server)
    assert [(n["order"], n["reason"]) for n in notifications(receiver, None)] == [("N-10", "dispute")]


@pytest.mark.single_only("the clocks are injected into the in-process server")
async def test_a_slow_mail_server_gets_each_notification_once_from_two_instances(server, receiver, smtp):
    """Each e-mail takes 50 s (within SEND_S), SENDS at once: three rounds outlast one
    lease. The other instance must not claim (and e-mail) the one being sent: a
    notification is claimed when a place is free, right before its delivery, not with
    the others before the first e-mails."""
    from chatd.notifier import SENDS, Notifier

    clock = inject(server)
    one = server.app[NOTIFIER]
    other = Notifier(one.store, one.cfg, mailer=one.mailer, webhooks=one.webhooks, clock=clock)  # a second host
    orders = [f"S-{i}" for i in range(2 * SENDS + 1)]
    supplier = await server.client("supplier1", "supplier")
    for i, order in enumerate(orders):  # a buyer each (within the caps), told by e-mail
        buyer = {"id": f"buyer-{i}", "name": "Bea", "email": f"bea{i}@buyer.example"}
        st, _ = await server.api("PUT", f"/api/v1/orders/{order}", {"buyer": buyer, "supplier": ORDER["supplier"]})
        assert st == 201
        await supplier.join(order)
        await say(supplier, order, "news")
    clock.t += 10 * MIN  # all due
    smtp.hold()
    first = asyncio.create_task(one.deliver_due())
    for _ in range(2):
        await smtp.wait_held(SENDS)  # as many at once as there are places
        clock.t += 50
        smtp.release()
    await smtp.wait_held(1)  # the last e-mail, 100 s after the first were claimed
    clock.t += 50
    second = asyncio.create_task(other.deliver_due())
    stalled = asyncio.create_task(smtp.wait_held(2))
    await asyncio.wait([second, stalled], timeout=seconds(10), return_when=asyncio.FIRST_COMPLETED)
    smtp.open()
    stalled.cancel()
    async with asyncio.timeout(seconds(10)):
        sent = await first + await second
    assert sent == len(orders)
    ids = collections.Counter(m["Message-ID"] for m in smtp.mails)
    assert {i: n for i, n in ids.items() if n > 1} == {}, "e-mailed twice"
    assert sorted(m["To"] for m in smtp.mails) == sorted(f"bea{i}@buyer.example" for i in range(len(orders)))
    await delivered(server, receiver, len(orders))
    await settle(server)
    sent_ids = [n["notification_id"] for n in notifications(receiver, "*")]
    assert len(set(sent_ids)) == len(sent_ids) == len(orders)


@pytest.mark.single_only("the clocks are injected into the in-process server")
async def test_a_stalled_mail_server_is_given_up_after_send_s(server, receiver, smtp):
    """The whole SMTP exchange is bounded (SEND_S, below the lease): a server that never
    answers DATA is a failed e-mail, tried again later, not a delivery stuck past its lease.
    (aiosmtplib's own timeout is per command and restarts with each one.)"""
    clock = inject(server)
    notifier = server.app[NOTIFIER]
    notifier.send_s = 0.2  # well below [email] timeout_s (30 s): only the bound of the whole send ends it
    supplier = await supplier_in(server, "S-4")
    await say(supplier, "S-4", "news")
    clock.t += 10 * MIN
    smtp.hold()
    async with asyncio.timeout(seconds(5)):
        assert await notifier.deliver_due() == 1  # the rep's; the buyer's e-mail given up
    assert smtp.held == 1 and smtp.mails == []
    (pending,) = await notifier.store.pending_notifications("buyer1")
    assert pending.attempts == 1 and pending.due_ts == int(clock.t * 1000) + 30_000  # the first retry
    smtp.open()
    notifier.send_s = seconds(5)  # an answering server's whole exchange can pass 0.2 s on a busy machine
    clock.t += 1 * MIN
    assert await notifier.deliver_due() == 1
    (mail,) = await smtp.wait_for(1)
    assert mail["Message-ID"] == f"<{pending.id}@shop.example>"
    assert await notifier.store.pending_notifications("buyer1") == []


@pytest.mark.single_only("the clocks are injected into the in-process server")
async def test_answering_takes_what_was_answered_out_of_the_next_notification(server, receiver, smtp):
    """Sending reads the order: the sender's pending notification goes, so the next one
    tells only of what came after their answer, never of the answer itself."""
    clock = inject(server)
    notifier = server.app[NOTIFIER]
    supplier = await supplier_in(server, "A-1")
    await say(supplier, "A-1", "Pallets are ready")
    clock.t += 10 * MIN
    assert await notifier.deliver_due() == 2  # the buyer's and the rep's
    await say(supplier, "A-1", "Which dock?")
    buyer = await server.client("buyer1", "buyer")  # not joined: a send from anywhere (a reply by e-mail too)
    await say(buyer, "A-1", "Dock four please")
    assert await notifier.store.pending_notifications("buyer1") == []
    await say(supplier, "A-1", "Booked for Monday")
    clock.t += 10 * MIN
    assert await notifier.deliver_due() == 2
    await delivered(server, receiver, 4)
    assert [[m["seq"] for m in n["messages"]] for n in notifications(receiver)] == [[1], [4]]
    assert [[m["seq"] for m in n["messages"]] for n in notifications(receiver, "rep1")] == [[1], [2, 3, 4]]
    mails = await smtp.wait_for(2)
    assert mails[1]["Subject"] == "1 new message on order A-1"
    plain = mails[1].get_body(("plain",)).get_content()
    assert "Booked for Monday" in plain and "Which dock?" not in plain and "Dock four please" not in plain


@pytest.mark.single_only("the clocks are injected into the in-process server")
async def test_a_notification_never_carries_the_recipients_own_messages(server, receiver, smtp):
    """A dispute opened by the buyer reads the order for them, as a post does: their
    pending notification goes, and the next one tells neither of their own words nor of
    what came before them."""
    clock = inject(server)
    notifier = server.app[NOTIFIER]
    supplier = await supplier_in(server, "A-2")
    await say(supplier, "A-2", "Pallets are ready")
    buyer = await server.client("buyer1", "buyer")
    r = await request(
        buyer, {"type": "dispute", "order": "A-2", "action": "open", "client_id": "d1", "reason": "broken"}, "ack"
    )
    assert r["type"] == "ack", r
    assert await notifier.store.pending_notifications("buyer1") == []
    await say(supplier, "A-2", "Sorry to hear")
    (pending,) = await notifier.store.pending_notifications("buyer1")
    assert (pending.first_seq, pending.last_seq) == (3, 3)
    clock.t += 10 * MIN
    await notifier.deliver_due()
    await settle(server)
    (b,) = notifications(receiver)
    assert [m["seq"] for m in b["messages"]] == [3]
    mails = await smtp.wait_for(1)
    (mail,) = [m for m in mails if m["To"] == "bea@buyer.example"]
    assert mail["Subject"] == "1 new message on order A-2"
    plain = mail.get_body(("plain",)).get_content()
    assert "broken" not in plain and "Pallets are ready" not in plain


@pytest.mark.single_only("the clocks are injected into the in-process server")
async def test_a_status_change_or_a_help_request_takes_its_senders_pending_notification(server, receiver, smtp):
    """The message a status change or a help request writes reads the order for its
    sender, as a post does: the pending notification of what they had not read goes."""
    clock = inject(server)
    notifier = server.app[NOTIFIER]
    st, _ = await server.api("PUT", "/api/v1/orders/A-3", ORDER)
    assert st == 201
    buyer = await server.client("buyer1", "buyer")
    await buyer.join("A-3")
    await say(buyer, "A-3", "Is it packed?")
    await say(buyer, "A-3", "We need it by Friday")
    (pending,) = await notifier.store.pending_notifications("supplier1")
    assert (pending.first_seq, pending.last_seq) == (1, 2)
    supplier = await server.client("supplier1", "supplier")  # not joined: from the order list, say
    status = {"type": "set_status", "order": "A-3", "status": "shipped", "client_id": "s1"}
    assert (await request(supplier, status, "ack"))["type"] == "ack"
    assert await notifier.store.pending_notifications("supplier1") == []
    await say(buyer, "A-3", "Thanks, which carrier?")
    (pending,) = await notifier.store.pending_notifications("supplier1")
    assert (pending.first_seq, pending.last_seq) == (4, 4)
    assert (await request(supplier, {"type": "help", "order": "A-3", "client_id": "h1"}, "ack"))["type"] == "ack"
    assert await notifier.store.pending_notifications("supplier1") == []
    await say(buyer, "A-3", "Hello?")
    clock.t += 10 * MIN
    await notifier.deliver_due()
    await settle(server)
    (s,) = notifications(receiver, "supplier1")
    assert [m["seq"] for m in s["messages"]] == [6]  # only what came after their help request


@pytest.mark.single_only("the clocks are injected into the in-process server")
async def test_a_stalled_mail_server_holds_up_only_its_own_deliveries(server, receiver, smtp):
    """E-mails go out SENDS at once: one the mail server never answers takes one place
    (until SEND_S ends it), and a notification due after it goes out meanwhile."""
    clock = inject(server)
    notifier = server.app[NOTIFIER]
    supplier = await server.client("supplier1", "supplier")
    for order, buyer in (("W-1", ORDER["buyer"]), ("W-2", {"id": "buyer2", "name": "Ben"})):  # Ben: no e-mail
        st, _ = await server.api("PUT", f"/api/v1/orders/{order}", {"buyer": buyer, "supplier": ORDER["supplier"]})
        assert st == 201
        await supplier.join(order)
        await say(supplier, order, "news")
        clock.t += 1 * MIN  # W-1's buyer is due first
    clock.t += 10 * MIN
    smtp.hold()
    round_ = asyncio.create_task(notifier.deliver_due())
    await smtp.wait_held(1)
    await receiver.wait_for(lambda rs: any(r["json"]["type"] == "notification" for r in rs), timeout=seconds(10))
    assert [n["order"] for n in notifications(receiver, "buyer2")] == ["W-2"] and not round_.done()
    smtp.open()
    async with asyncio.timeout(seconds(10)):
        assert await round_ == 2
    (mail,) = await smtp.wait_for(1)
    assert mail["To"] == "bea@buyer.example"


@pytest.mark.single_only("the clocks are injected into the in-process server")
async def test_the_days_cap_counts_an_e_mail_under_way(server, receiver, smtp):
    """Two of one recipient's notifications due at once may not both pass the day's cap
    (3 here) because neither was sent yet when the other was checked."""
    clock = inject(server)
    notifier = server.app[NOTIFIER]
    supplier = await server.client("supplier1", "supplier")
    for order in ("C-1", "C-2", "C-3", "C-4"):
        await supplier_in(server, order, supplier)
    for order in ("C-1", "C-2"):
        await say(supplier, order, "news")
    clock.t += 10 * MIN
    await notifier.deliver_due()  # two of the buyer's three for the day
    for order in ("C-3", "C-4"):
        await say(supplier, order, "more news")
    clock.t += 10 * MIN
    smtp.hold()
    round_ = asyncio.create_task(notifier.deliver_due())
    await smtp.wait_held(1)

    async def postponed() -> list:
        now = int(clock.t * 1000)
        return [n for n in await notifier.store.pending_notifications("buyer1") if n.due_ts > now]

    (later,) = await wait_for(postponed, what="the other one to wait")
    assert later.due_ts == int(clock.t * 1000) + int(notifier.send_s * 1000)  # until the one under way ended
    assert smtp.held == 1
    smtp.open()
    async with asyncio.timeout(seconds(10)):
        await round_
    assert len(await smtp.wait_for(3)) == 3
    clock.t += 2 * MIN
    assert await notifier.deliver_due() == 0  # now the day's cap holds it back as usual
    (capped,) = await notifier.store.pending_notifications("buyer1")
    assert capped.due_ts > int(clock.t * 1000) + 23 * 3600 * 1000


@pytest.mark.single_only("the clocks are injected into the in-process server")
async def test_a_notification_due_while_an_e_mail_stalls_goes_out_meanwhile(server, receiver, smtp):
    """The background loop keeps claiming into the free places while a delivery is under
    way: one that falls due after a stalled e-mail began does not wait for that e-mail to
    end (up to SEND_S) and poll_s more."""
    import msgspec

    from chatd.notifier import Notifier

    clock = inject(server)
    one = server.app[NOTIFIER]  # polls once an hour: this test's own instance delivers
    cfg = msgspec.structs.replace(one.cfg, poll_s=0.05)
    mine = Notifier(one.store, cfg, mailer=one.mailer, webhooks=one.webhooks, clock=clock)
    supplier = await server.client("supplier1", "supplier")
    for order, buyer in (("L-1", ORDER["buyer"]), ("L-2", {"id": "buyer2", "name": "Ben"})):  # Ben: no e-mail
        st, _ = await server.api("PUT", f"/api/v1/orders/{order}", {"buyer": buyer, "supplier": ORDER["supplier"]})
        assert st == 201
        await supplier.join(order)
    await say(supplier, "L-1", "news")  # due in 5 min
    clock.t += 4 * MIN
    await say(supplier, "L-2", "more news")  # due in 5 min, at 9
    clock.t += 4 * MIN
    smtp.hold()
    await mine.start()
    try:
        await smtp.wait_held(1)  # L-1's e-mail, unanswered
        clock.t += 1 * MIN  # L-2's buyer is due now, after the e-mail began (within its 2 min lease)
        await receiver.wait_for(
            lambda rs: any(r["json"]["type"] == "notification" and r["json"]["order"] == "L-2" for r in rs),
            timeout=seconds(10),
        )
        assert smtp.held == 1 and smtp.mails == []  # still stalled
        smtp.open()
        (mail,) = await smtp.wait_for(1)
        assert mail["To"] == "bea@buyer.example"
        await delivered(server, receiver, 2)
    finally:
        await mine.aclose()
    assert mine.sent == 2
    assert [n["order"] for n in notifications(receiver, "*")] == ["L-2", "L-1"]
