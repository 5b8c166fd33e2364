"""Response times over real sockets (issue 12): the reply clock the supplier side,
staff and bots see (`reply_state`, `awaiting_reply`) and buyers never do, the
`no_reply_needed` mark, the escalation after `[sla] reply_within_s` (a note, the
`sla.breached` webhook, the threads filters) with injected clocks, and the
response-times report against figures worked out by hand.
"""

from __future__ import annotations

import uuid

import pytest

from tests.support.client import request, settled, token
from tests.support.clock import inject
from tests.support.receiver import WEBHOOK_SECRET

BACKENDS = ("single", "cluster")  # each test also runs over two instances and Redis

ROLES = ("buyer", "supplier", "sales_rep", "staff", "bot")
USERS = {"buyer": "buyer1", "supplier": "supplier1", "sales_rep": "rep1", "staff": "staff1", "bot": "bot1"}
SIDE = ("supplier", "sales_rep", "staff", "bot")  # who sees the clock
H = 3600.0


@pytest.fixture
def sections(receiver):
    return {"webhooks": {"url": receiver.url, "secret": WEBHOOK_SECRET, "backoff_initial_s": 0.05, "timeout_s": 2.0}}


async def register(server, order: str, supplier: str = "supplier1", rep: str = "rep1") -> None:
    body = {
        "buyer": {"id": "buyer1", "name": "Bea"},
        "supplier": {"id": supplier, "name": supplier.title()},
        "sales_rep": {"id": rep, "name": rep.title()},
    }
    st, o = await server.api("PUT", f"/api/v1/orders/{order}", body)
    assert st == 201, o


async def everyone(server, order: str) -> dict:
    clients = {}
    for role in ROLES:
        c = await server.client(USERS[role], role, **({"orders": [order]} if role == "bot" else {}))
        c.joined = await c.join(order)
        clients[role] = c
    return clients


async def say(client, order: str, text: str) -> dict:
    frame = {"type": "send", "order": order, "client_id": str(uuid.uuid4()), "text": text}
    return await request(client, frame, "ack")


async def no_reply(client, order: str, seq: int) -> dict:
    return await request(client, {"type": "no_reply_needed", "order": order, "seq": seq}, "reply_state")


def states(client, order: str) -> list:
    return [f["awaiting_reply"] for f in client.of_type("reply_state", order=order)]


async def test_the_supplier_side_sees_the_reply_clock_and_the_buyer_never_does(server):
    await register(server, "R-1")
    c = await everyone(server, "R-1")
    buyer, supplier = c["buyer"], c["supplier"]
    assert all(c[r].joined["awaiting_reply"] is None for r in ROLES)
    assert (await say(buyer, "R-1", "Thanks!"))["seq"] == 1  # an acknowledgement: no clock
    asked = await say(buyer, "R-1", "Can you deliver before noon?")
    for role in SIDE:
        got = (await c[role].expect("reply_state", order="R-1"))["awaiting_reply"]
        assert (got["seq"], got["since"], got["overdue"]) == (2, asked["ts"], False), role
        assert got["due_at"] == asked["ts"] + 86_400_000
        assert states(c[role], "R-1") == [got]  # the first question only, not the "thanks"
    again = await server.client("supplier1", "supplier")
    assert (await again.join("R-1"))["awaiting_reply"]["seq"] == 2
    late_buyer = await server.client("buyer1", "buyer")
    assert (await late_buyer.join("R-1"))["awaiting_reply"] is None
    for who, seen in ((again, 2), (late_buyer, None)):  # the inbox carries it too, never to a buyer
        (entry,) = (await request(who, {"type": "inbox"}, "inbox"))["orders"]
        assert (entry.get("awaiting_reply") or {}).get("seq") == seen
    await say(buyer, "R-1", "And the gate code is 4411?")  # still the same wait
    note = {"type": "send", "order": "R-1", "client_id": "n1", "text": "ask the depot", "kind": "note"}
    assert (await request(c["sales_rep"], note, "ack"))["type"] == "ack"  # a note answers nobody
    await say(c["staff"], "R-1", "Staff: looking into it")  # staff are not the supplier side
    # the buyer may not mark, a supplier's message cannot be marked, nor an order not joined
    r = await request(buyer, {"type": "no_reply_needed", "order": "R-1", "seq": 2}, "reply_state")
    assert (r["type"], r["code"]) == ("error", "forbidden")
    r = await request(supplier, {"type": "no_reply_needed", "order": "R-1", "seq": 5}, "reply_state")
    assert (r["type"], r["code"]) == ("error", "bad_request")
    outsider = await server.client("supplier1", "supplier")
    r = await request(outsider, {"type": "no_reply_needed", "order": "R-1", "seq": 2}, "reply_state")
    assert (r["type"], r["code"]) == ("error", "bad_request")
    # a no-reply mark on the latest question ends the wait for every member
    assert (await no_reply(supplier, "R-1", 3))["awaiting_reply"] is None
    for role in SIDE[1:]:
        assert (await c[role].expect("reply_state", order="R-1"))["awaiting_reply"] is None, role
    assert (await no_reply(c["staff"], "R-1", 3))["awaiting_reply"] is None  # nothing waits: answered alike
    asked = await say(buyer, "R-1", "One more: invoice?")
    for role in SIDE:
        assert (await c[role].expect("reply_state", order="R-1"))["awaiting_reply"]["seq"] == asked["seq"], role
    await say(c["sales_rep"], "R-1", "Invoice attached tomorrow")  # the rep answers
    for role in SIDE:
        assert (await c[role].expect("reply_state", order="R-1"))["awaiting_reply"] is None, role
    last = await say(c["staff"], "R-1", "Closing the loop")  # published after every reply_state above
    for b in (buyer, late_buyer):
        await b.expect("message", order="R-1", seq=last["seq"])
        assert not b.of_type("reply_state")


@pytest.mark.single_only("the clocks are injected into the in-process server")
async def test_a_buyer_waiting_too_long_is_escalated_once(server, receiver):
    from chatd.edge.keys import SLA

    clock = inject(server)
    sla = server.app[SLA]
    await register(server, "E-1")
    await register(server, "E-2")
    c = await everyone(server, "E-1")
    asked = await say(c["buyer"], "E-1", "Where is my pallet?")
    await say(c["supplier"], "E-2", "Your order is being packed")  # nobody waits on E-2
    clock.t += 24 * H
    assert await sla.sweep() == 0  # exactly 24 h: not longer yet
    clock.t += 1
    assert await sla.sweep() == 1
    assert await sla.sweep() == 0  # once per waiting period
    for role in SIDE:
        note = await c[role].expect("message", order="E-1", kind="note")
        assert note["sender"]["id"] == "system" and note["text"].startswith("Reply overdue"), role
        started = (await c[role].expect("reply_state", order="E-1"))["awaiting_reply"]
        state = (await c[role].expect("reply_state", order="E-1"))["awaiting_reply"]
        assert (started["overdue"], state["seq"], state["overdue"]) == (False, asked["seq"], True)
    await settled(c["buyer"])
    assert not c["buyer"].of_type("message", kind="note") and not c["buyer"].of_type("reply_state")
    got = await receiver.wait_for(lambda rs: any(r["json"]["type"] == "sla.breached" for r in rs))
    (breach,) = [r["json"] for r in got if r["json"]["type"] == "sla.breached"]
    assert (breach["order"], breach["waiting_seq"], breach["waiting_since"]) == ("E-1", asked["seq"], asked["ts"])
    assert breach["waited_s"] == 24 * H + 1 and breach["supplier"]["id"] == "supplier1"
    # everyone is joined and read the note live: no message.created announces it (written before the breach)
    assert not [r for r in got if r["json"]["type"] == "message.created" and r["json"]["message"]["kind"] == "note"]
    # the threads list: who waits, who is overdue, by status; unknown filters are refused
    for query, ids in (
        ("awaiting_reply=true", ["E-1"]),
        ("awaiting_reply=false", ["E-2"]),
        ("overdue=true", ["E-1"]),
        ("status=open&awaiting_reply=true", ["E-1"]),
        ("status=shipped", []),
    ):
        st, page = await server.api("GET", f"/api/v1/threads?{query}")
        assert st == 200 and [t["order"] for t in page["threads"]] == ids, query
    st, page = await server.api("GET", "/api/v1/threads?overdue=true")
    assert page["threads"][0]["awaiting_reply"]["overdue"] is True
    for query in ("awaitng_reply=true", "overdue=false", "awaiting_reply=maybe"):
        st, err = await server.api("GET", f"/api/v1/threads?{query}")
        assert st == 400 and err["error"]["code"] == "bad_request", query
    # an answer ends it; the next question is a new period, escalated again only when it is overdue
    await say(c["supplier"], "E-1", "Tomorrow morning, sorry for the wait")
    assert (await c["supplier"].expect("reply_state", order="E-1"))["awaiting_reply"] is None
    st, page = await server.api("GET", "/api/v1/threads?overdue=true")
    assert page["threads"] == []
    await say(c["buyer"], "E-1", "Which carrier?")
    clock.t += 23 * H
    assert await sla.sweep() == 0


@pytest.mark.single_only("the store's clock is injected into the in-process server")
async def test_the_response_times_report_matches_a_hand_computed_fixture(server):
    clock = inject(server)
    await register(server, "P-1")
    await register(server, "P-2")
    await register(server, "P-3", supplier="supplier2", rep="rep2")
    buyer = await server.client("buyer1", "buyer")
    s1 = await server.client("supplier1", "supplier")
    rep = await server.client("rep1", "sales_rep")
    s2 = await server.client("supplier2", "supplier")
    start = clock.t
    # supplier1's orders: answered after 1 h, 3 h and 30 h (late); one question left waiting 50 h
    for order, answerer, wait_h in (("P-1", s1, 1), ("P-1", rep, 3), ("P-2", s1, 30)):
        await say(buyer, order, "A question")
        clock.t += wait_h * H
        await say(answerer, order, "An answer")
        clock.t += H
    await say(buyer, "P-1", "ok thanks")  # no clock
    await say(buyer, "P-1", "Unanswered question")
    # supplier2's order: one answer after 2 h
    await say(buyer, "P-3", "A question")
    clock.t += 2 * H
    await say(s2, "P-3", "An answer")
    clock.t = start + 100 * H
    st, r = await server.api("GET", "/api/v1/reports/response-times?supplier=supplier1&days=7")
    assert st == 200, r
    assert (r["supplier"], r["days"], r["asked"], r["answered"], r["waiting"], r["overdue"]) == (
        "supplier1",
        7,
        4,
        3,
        1,
        1,
    )
    assert (r["median_s"], r["p90_s"], r["late"], r["late_rate"]) == (3 * H, 30 * H, 2, 0.5)
    st, r = await server.api("GET", "/api/v1/reports/response-times?sales_rep=rep2&days=30")
    assert (r["asked"], r["answered"], r["median_s"], r["late_rate"]) == (1, 1, 2 * H, 0.0)
    st, r = await server.api("GET", "/api/v1/reports/response-times", auth=token("staff1", "staff"))
    assert st == 200 and (r["days"], r["asked"], r["answered"]) == (30, 5, 4)
    clock.t = start + 9 * 24 * H  # nine days on, the 7-day window is empty; the 90-day one is not
    st, r = await server.api("GET", "/api/v1/reports/response-times?supplier=supplier1&days=7")
    assert (r["asked"], r["median_s"], r["late_rate"]) == (0, None, None)
    st, r = await server.api("GET", "/api/v1/reports/response-times?supplier=supplier1&days=90")
    assert r["asked"] == 4
    for auth in (token("buyer1", "buyer"), token("supplier1", "supplier")):
        st, err = await server.api("GET", "/api/v1/reports/response-times", auth=auth)
        assert st == 403 and err["error"]["code"] == "forbidden"
    for query in ("days=5", "days=x", "suplier=s1"):
        st, err = await server.api("GET", f"/api/v1/reports/response-times?{query}")
        assert st == 400 and err["error"]["code"] == "bad_request", query


@pytest.mark.single_only("a query parameter, checked by the instance asked")
@pytest.mark.parametrize("days", ["0", "-0", "000"])
async def test_a_report_of_zero_days_is_refused_not_the_default(server, days):
    st, err = await server.api("GET", f"/api/v1/reports/response-times?days={days}")
    assert st == 400 and err["error"]["code"] == "bad_request" and "days" in err["error"]["message"], (st, err)
    st, r = await server.api("GET", "/api/v1/reports/response-times")
    assert st == 200 and r["days"] == 30  # absent: the default
