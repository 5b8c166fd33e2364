"""The staff attention queue over real sockets and REST (issue 13): help requests,
disputes and SLA breaches reaching every staff member live, one read state per
order shared by staff, follows of one's own, marking many threads read or unread,
search by participant names, e-mails and order ids, and what buyers and suppliers
never see of it.

Absence is checked behind a witness: a later frame from the same publisher, which
the relay delivers in order, so "not received" means "not sent".
"""

from __future__ import annotations

import uuid

import pytest

from tests.support.client import request, settled, token
from tests.support.clock import inject

BACKENDS = ("single", "cluster")  # each test also runs over two instances and Redis


async def staff_inbox(server, sub: str):
    """A staff connection that asked for its inbox (so it gets `notify`)."""
    c = await server.client(sub, "staff")
    page = await request(c, {"type": "inbox"}, "inbox")
    assert page["type"] == "inbox", page
    return c


async def notified(client, order: str, seq: int) -> dict:
    """The `notify` of message `seq` (earlier ones of the order are passed over)."""
    while True:
        n = await client.expect("notify", order=order)
        if n["message"]["seq"] >= seq:
            assert n["message"]["seq"] == seq, n
            return n


async def ask_help(client, order: str, text: str | None = None, client_id: str | None = None) -> dict:
    frame = {"type": "help", "order": order, "client_id": client_id or str(uuid.uuid4())}
    if text is not None:
        frame["text"] = text
    return await request(client, frame, "ack")


async def dispute(client, order: str, action: str = "open") -> dict:
    frame = {"type": "dispute", "order": order, "action": action, "client_id": str(uuid.uuid4())}
    return await request(client, frame, "ack")


def before(client, first: dict, then: dict) -> bool:
    """`first` came before `then` on this connection (the very frames: equal ones may repeat)."""
    at = {id(f): i for i, f in enumerate(client.frames)}
    return at[id(first)] < at[id(then)]


async def queue(server, auth=None) -> dict:
    kw = {"auth": auth} if auth else {}
    st, page = await server.api("GET", "/api/v1/threads?attention=true&has_messages=any", **kw)
    assert st == 200, page
    return {t["order"]: (t["reasons"], t["staff_unread"]) for t in page["threads"]}


async def test_a_help_request_reaches_every_staff_member_until_staff_answer(server):
    for o in ("H-1", "H-2"):
        await server.order(o)
    s1, s2 = await staff_inbox(server, "staff1"), await staff_inbox(server, "staff2")
    buyer = await server.client("buyer1", "buyer")
    supplier = await server.client("supplier1", "supplier")
    for o in ("H-1", "H-2"):
        await buyer.join(o)
    await supplier.join("H-1")
    # the buyer asks openly: a system message the supplier side sees too
    ack = await ask_help(buyer, "H-1", "The parcel never came")
    assert (ack["type"], ack["seq"], ack["duplicate"]) == ("ack", 1, False)
    for c in (buyer, supplier):
        m = await c.expect("message", order="H-1", seq=1)
        assert (m["kind"], m["text"], m["sender"]["id"]) == (
            "system",
            "Help requested: The parcel never came",
            "buyer1",
        )
    for s in (s1, s2):
        u = await s.expect("unread", order="H-1", reasons=["help"])
        assert (u["count"], u["total"]) == (1, 1)
        assert (await s.expect("notify", order="H-1"))["message"]["seq"] == 1
    # the supplier side asks privately: a note the buyer never gets
    note = await ask_help(supplier, "H-2", client_id="h2")
    assert note["seq"] == 1
    for s in (s1, s2):
        n = await s.expect("notify", order="H-2")
        assert (n["message"]["kind"], n["message"]["text"]) == ("note", "Help requested")
    after = await supplier.post("H-2", "We have an update")
    await buyer.expect("message", order="H-2", seq=after["seq"])
    assert [m["seq"] for m in buyer.of_type("message", order="H-2")] == [after["seq"]]
    for s in (s1, s2):
        u = await s.expect("unread", order="H-2", count=2)
        assert (u["reasons"], u["total"]) == (["help"], 3)
    page = await request(s2, {"type": "inbox"}, "inbox")
    assert {e["order"]: (e["reasons"], e["unread"]) for e in page["orders"]} == {
        "H-1": (["help"], 1),
        "H-2": (["help"], 2),
    }
    assert page["total_unread"] == 3
    assert await queue(server) == {"H-1": (["help"], 1), "H-2": (["help"], 2)}
    # asking again while it is open posts again (nobody learns whether another request is open)
    again = await ask_help(buyer, "H-1", "Still nothing", client_id="h1b")
    repeat = await ask_help(buyer, "H-1", "Still nothing", client_id="h1b")
    assert repeat["duplicate"] and repeat["seq"] == again["seq"] == 2
    await s2.expect("unread", order="H-1", count=2, reasons=["help"])
    # a staff reply in the chat answers it, and reads the order for every staff member
    reply = await s1.post("H-1", "Staff here: we are tracing it")
    for s in (s1, s2):
        u = await s.expect("unread", order="H-1", reasons=[])
        assert (u["count"], u["total"]) == (0, 2)
    await settled(s1)
    assert reply["seq"] not in [n["message"]["seq"] for n in s1.of_type("notify", order="H-1")]  # not one's own
    # staff may also resolve one without a message; once
    await s2.send({"type": "resolve", "order": "H-2"})
    for s in (s1, s2):
        u = await s.expect("unread", order="H-2", reasons=[])
        assert (u["count"], u["total"]) == (2, 0)
    err = await request(s2, {"type": "resolve", "order": "H-2"})
    assert (err["type"], err["code"], err["ref"]) == ("error", "conflict", "H-2")
    assert await queue(server) == {}
    # buyers and suppliers see none of it: no reasons, no queue
    await settled(buyer)
    page = await request(buyer, {"type": "inbox"}, "inbox")
    assert page["orders"] and all("reasons" not in e for e in page["orders"])
    assert buyer.of_type("unread") and all("reasons" not in u for u in buyer.of_type("unread"))
    assert all("reasons" not in u for u in supplier.of_type("unread"))


async def test_staff_share_one_read_state_per_order(server):
    await server.order("S-1")
    s1, s1b, s2 = [await staff_inbox(server, u) for u in ("staff1", "staff1", "staff2")]
    buyer = await server.client("buyer1", "buyer")
    supplier = await server.client("supplier1", "supplier")
    opened = await dispute(buyer, "S-1")
    assert opened["type"] == "ack"
    for s in (s1, s1b, s2):
        u = await s.expect("unread", order="S-1", reasons=["dispute"])
        assert (u["count"], u["total"]) == (1, 1)
        assert (await s.expect("notify", order="S-1"))["message"]["kind"] == "dispute"
    for i in range(2):
        await supplier.post("S-1", f"reply {i}")
    for s in (s1, s1b, s2):
        await s.expect("unread", order="S-1", count=3, total=3)
    # one staff member reads: the order is read for all of them, on every connection
    await s1.send({"type": "read", "order": "S-1", "seq": 2})
    for s in (s1, s1b, s2):
        await s.expect("unread", order="S-1", count=1, total=1, reasons=["dispute"])
    await s2.send({"type": "read", "order": "S-1", "seq": 1})  # never backward by `read`
    await s2.send({"type": "read", "order": "S-1", "seq": 3})
    for s in (s1, s1b, s2):
        await s.expect("unread", order="S-1", count=0, total=0)
    assert [u["count"] for u in s1.of_type("unread", order="S-1")] == [1, 2, 3, 1, 0]
    j = await s2.join("S-1")  # joining follows it: s2's own reasons, to s2 alone
    assert (j["read_seq"], j["unread"], j["last_seq"]) == (3, 0, 3)
    await s2.expect("unread", order="S-1", reasons=["dispute", "followed"], count=0)
    # a participant's message counts for every staff member; a staff member's reads it
    posted = await buyer.post("S-1", "Any news?")
    for s in (s1, s1b, s2):
        await s.expect("unread", order="S-1", count=1, total=1)
    for s in (s1, s1b):
        await notified(s, "S-1", posted["seq"])
    await s2.expect("message", order="S-1", seq=posted["seq"])  # joined: the message, not a notify
    await s2.post("S-1", "Yes: a replacement ships today")
    for s in (s1, s1b, s2):
        await s.expect("unread", order="S-1", count=0, total=0)
    later = await staff_inbox(server, "staff3")
    page = await request(later, {"type": "inbox"}, "inbox")
    assert [(e["order"], e["unread"], e["reasons"]) for e in page["orders"]] == [("S-1", 0, ["dispute"])]
    # there is no per-user staff marker to set over REST any more
    st, err = await server.api("POST", "/api/v1/orders/S-1/read", {"user": "staff1", "seq": 0})
    assert st == 404 and err["error"]["code"] == "not_found"


async def test_following_is_each_staff_members_own(server):
    for o in ("F-1", "F-2", "W-1"):
        await server.order(o)
    buyer = await server.client("buyer1", "buyer")
    supplier = await server.client("supplier1", "supplier")
    await supplier.post("F-1", "a first message")
    await dispute(buyer, "W-1")  # the witness: in every staff member's queue
    s1, s2 = await staff_inbox(server, "staff1"), await staff_inbox(server, "staff2")
    await s1.send({"type": "follow", "order": "F-1"})
    u = await s1.expect("unread", order="F-1")
    assert (u["count"], u["reasons"], u["total"]) == (1, ["followed"], 2)
    await s1.send({"type": "read", "order": "W-1", "seq": 1})  # after the follow, from the same instance
    for s in (s1, s2):
        await s.expect("unread", order="W-1", count=0)
    assert not s2.of_type("unread", order="F-1")
    # news on a followed order reach its follower only
    await supplier.post("F-1", "news for the follower")
    await supplier.post("W-1", "news for every staff member")
    u = await s1.expect("unread", order="F-1", count=2)
    assert (await notified(s1, "F-1", 2))["message"]["text"] == "news for the follower"
    await s2.expect("notify", order="W-1")
    assert not s2.of_type("notify", order="F-1") and not s2.of_type("unread", order="F-1")
    # joining as staff follows too
    await s1.join("F-2")
    await s1.expect("unread", order="F-2", reasons=["followed"], count=0)
    page = await request(s1, {"type": "inbox"}, "inbox")
    assert {e["order"]: e["reasons"] for e in page["orders"]} == {
        "F-1": ["followed"],
        "F-2": ["followed"],
        "W-1": ["dispute"],
    }
    page = await request(s2, {"type": "inbox"}, "inbox")
    assert [e["order"] for e in page["orders"]] == ["W-1"]
    st, page = await server.api("GET", "/api/v1/threads?attention=true", auth=token("staff1", "staff"))
    assert {t["order"]: t["reasons"] for t in page["threads"]} == {"F-1": ["followed"], "W-1": ["dispute"]}
    assert {t["order"] for t in (await server.api("GET", "/api/v1/threads?attention=true"))[1]["threads"]} == {"W-1"}
    await s1.send({"type": "unfollow", "order": "F-1"})
    await s1.expect("unread", order="F-1", reasons=[], count=2)
    page = await request(s1, {"type": "inbox"}, "inbox")
    assert [e["order"] for e in page["orders"]] == ["W-1", "F-2"] and page["total_unread"] == 1
    # only staff follow: a participant is refused, an outsider does not learn the order exists
    for c, code in ((buyer, "forbidden"), (await server.client("supplier9", "supplier"), "not_found")):
        for kind in ("follow", "unfollow", "resolve"):
            err = await request(c, {"type": kind, "order": "F-1"})  # errors only: unread frames wait
            assert (err["type"], err["code"], err["ref"]) == ("error", code, "F-1"), (kind, err)


async def test_an_order_leaves_the_queue_of_a_staff_member_put_in_its_slot_and_comes_back(server):
    for o in ("P-F", "P-D"):
        await server.order(o, rep=None)
    buyer = await server.client("buyer1", "buyer")
    for i in range(3):
        await buyer.post("P-F", f"question {i}")
    await dispute(buyer, "P-D")  # in every staff member's queue
    s1 = await staff_inbox(server, "staff1")
    await s1.send({"type": "follow", "order": "P-F"})
    await s1.expect("unread", order="P-F", reasons=["followed"], count=3, total=4)
    s2 = await staff_inbox(server, "staff1")  # another connection, another instance in a cluster
    # a slot on each: their staff connections hear both orders left the queue, then their counts there
    for s in (s1, s2):
        s.skip()
    for order in ("P-F", "P-D"):
        st, body = await server.api("PUT", f"/api/v1/orders/{order}", {"supplier": {"id": "staff1", "name": "S"}})
        assert st == 200, body
    for s in (s1, s2):
        for order, count in (("P-F", 3), ("P-D", 1)):
            gone = await s.expect("unread", order=order, reasons=[])
            mine = await s.expect("unread", order=order, count=count)
            assert "reasons" not in mine and before(s, gone, mine), (order, s.frames)
        assert mine["total"] == 4
    page = await request(s1, {"type": "inbox"}, "inbox")
    assert {e["order"]: e.get("reasons") for e in page["orders"]} == {"P-F": None, "P-D": None}
    # out of the slots again: back in their queue, for the follower and for everyone's dispute
    for s in (s1, s2):
        s.skip()
    for order in ("P-F", "P-D"):
        st, body = await server.api("PUT", f"/api/v1/orders/{order}", {"supplier": {"id": "supplier1", "name": "S"}})
        assert st == 200, body
    for s in (s1, s2):
        for order, reasons in (("P-F", ["followed"]), ("P-D", ["dispute"])):
            mine = await s.expect("unread", order=order, count=0)
            back = await s.expect("unread", order=order, reasons=reasons)
            assert before(s, mine, back), (order, s.frames)
        assert back["total"] == 4
    page = await request(s2, {"type": "inbox"}, "inbox")
    assert {e["order"]: e.get("reasons") for e in page["orders"]} == {"P-F": ["followed"], "P-D": ["dispute"]}


@pytest.mark.single_only("the clocks are injected into the in-process server")
async def test_the_queue_is_fed_by_a_dispute_an_sla_breach_and_a_help_request(server):
    from chatd.edge.keys import SLA

    clock = inject(server)
    for o in ("Q-D", "Q-S", "Q-H", "Q-0"):
        await server.order(o)
    staff = await staff_inbox(server, "staff1")
    buyer = await server.client("buyer1", "buyer")
    supplier = await server.client("supplier1", "supplier")
    await buyer.post("Q-0", "Can I change the colour?")  # waits, but not long enough
    await buyer.post("Q-S", "Where is my pallet?")
    clock.t += 12 * 3600
    await supplier.post("Q-0", "Yes")
    clock.t += 12 * 3600 + 1
    assert await server.app[SLA].sweep() == 1
    n = await staff.expect("notify", order="Q-S")
    assert (n["message"]["kind"], n["message"]["sender"]["id"]) == ("note", "system")
    u = await staff.expect("unread", order="Q-S")
    assert (u["reasons"], u["count"], u["total"]) == (["sla"], 2, 2)
    clock.t += 1
    await dispute(buyer, "Q-D")
    assert (await staff.expect("notify", order="Q-D"))["message"]["kind"] == "dispute"
    await staff.expect("unread", order="Q-D", reasons=["dispute"], total=3)
    clock.t += 1
    await ask_help(supplier, "Q-H", "The buyer asks for my phone number")
    assert (await staff.expect("notify", order="Q-H"))["message"]["kind"] == "note"
    await staff.expect("unread", order="Q-H", reasons=["help"], total=4)
    page = await request(staff, {"type": "inbox"}, "inbox")
    assert [(e["order"], e["reasons"], e["unread"]) for e in page["orders"]] == [
        ("Q-H", ["help"], 1),
        ("Q-D", ["dispute"], 1),
        ("Q-S", ["sla"], 2),
    ]
    assert page["total_unread"] == 4
    assert await queue(server, token("staff2", "staff")) == {
        "Q-H": (["help"], 1),
        "Q-D": (["dispute"], 1),
        "Q-S": (["sla"], 2),
    }
    st, page = await server.api("GET", "/api/v1/threads?attention=true&overdue=true")
    assert [t["order"] for t in page["threads"]] == ["Q-S"]
    # each leaves the queue as it is dealt with
    await supplier.post("Q-S", "It left the depot this morning")
    await staff.expect("unread", order="Q-S", reasons=[], count=3, total=2)
    await dispute(staff, "Q-D", "close")
    await staff.expect("unread", order="Q-D", reasons=[], count=0, total=1)
    await staff.post("Q-H", "We never share numbers; keep the chat here", kind="note")
    await staff.expect("unread", order="Q-H", reasons=[], count=0, total=0)
    assert await queue(server) == {}


async def test_many_threads_are_marked_read_or_unread_at_once(server):
    for o in ("B-1", "B-2", "B-3"):
        await server.order(o)
    buyer = await server.client("buyer1", "buyer")
    supplier = await server.client("supplier1", "supplier")
    for o in ("B-1", "B-2", "B-3"):
        await dispute(buyer, o)
        await supplier.post(o, "We are on it")
    watcher = await staff_inbox(server, "staff1")
    staff2 = token("staff2", "staff")
    st, body = await server.api("POST", "/api/v1/threads/read", {"orders": ["B-1", "B-2", "B-1"]}, auth=staff2)
    assert st == 200, body
    assert body == {
        "orders": [{"order": "B-1", "read_seq": 2, "unread": 0}, {"order": "B-2", "read_seq": 2, "unread": 0}],
        "changed": ["B-1", "B-2"],
        "total": 2,
    }
    for o in ("B-1", "B-2"):
        await watcher.expect("unread", order=o, count=0, reasons=["dispute"])
    # unread: back to just before the newest message not from staff; up to a seq; the api key too
    st, body = await server.api("POST", "/api/v1/threads/read", {"orders": ["B-1"], "unread": True})
    assert (st, body) == (200, {"orders": [{"order": "B-1", "read_seq": 1, "unread": 1}], "changed": ["B-1"]})
    await watcher.expect("unread", order="B-1", count=1)
    st, body = await server.api("POST", "/api/v1/threads/read", {"orders": ["B-3"], "seq": 1}, auth=staff2)
    assert st == 200 and body["orders"] == [{"order": "B-3", "read_seq": 1, "unread": 1}] and body["total"] == 2
    await watcher.expect("unread", order="B-3", count=1, total=2)
    st, body = await server.api("POST", "/api/v1/threads/read", {"orders": ["B-3"], "seq": 0})
    assert body["changed"] == []  # read never goes backward; unread does
    assert await queue(server) == {"B-1": (["dispute"], 1), "B-2": (["dispute"], 0), "B-3": (["dispute"], 1)}
    # bad input never writes: 400, and a missing order 404 for the whole list
    bad = [
        {"orders": []},
        {"orders": [f"X-{i}" for i in range(201)]},
        {"orders": ["B-2"], "seq": 1, "unread": True},
        {"orders": ["B-2"], "seq": -1},
        {"orders": ["B-2"], "seq": "1"},
        {"orders": ["B-2"], "unread": "yes"},
        {"orders": ["B-2"], "also": 1},
        {"orders": ["x" * 201]},
        {"orders": [""]},
        {"orders": "B-2"},
        {},
        [],
    ]
    for b in bad:
        st, err = await server.api("POST", "/api/v1/threads/read", b)
        assert st == 400 and err["error"]["code"] == "bad_request", (b, st, err)
    st, err = await server.api("POST", "/api/v1/threads/read", data=b"{not json")
    assert st == 400
    st, err = await server.api("POST", "/api/v1/threads/read", {"orders": ["B-2", "nope"], "unread": True})
    assert st == 404 and err["error"]["code"] == "not_found" and err["error"]["ref"] == "nope"  # named
    # a staff token whose id is a participant of one of them is that participant there
    st, err = await server.api(
        "POST", "/api/v1/threads/read", {"orders": ["B-2"], "unread": True}, auth=token("buyer1", "staff")
    )
    assert st == 403 and err["error"]["code"] == "forbidden"
    for auth in (token("buyer1", "buyer"), token("supplier1", "supplier"), token("bot1", "bot", orders="*")):
        st, err = await server.api("POST", "/api/v1/threads/read", {"orders": ["B-2"], "unread": True}, auth=auth)
        assert st == 403, auth
    st, _ = await server.api("POST", "/api/v1/threads/read", {"orders": ["B-2"]}, auth=None)
    assert st == 401
    assert (await queue(server))["B-2"] == (["dispute"], 0)  # none of that wrote


async def test_buyers_and_suppliers_never_see_the_queue(server):
    body = {
        "buyer": {"id": "buyer1", "name": "Zoë Müller", "email": "zoe.mueller@example.com"},
        "supplier": {"id": "supplier1", "name": "Berg Tools GmbH", "email": "sales@berg.example"},
    }
    st, _ = await server.api("PUT", "/api/v1/orders/PO-7781", body)
    assert st == 201
    buyer = await server.client("buyer1", "buyer")
    supplier = await server.client("supplier1", "supplier")
    await dispute(buyer, "PO-7781")
    await supplier.post("PO-7781", "Sorry to hear that")
    for who in (token("buyer1", "buyer"), token("supplier1", "supplier"), token("bot1", "bot", orders="*")):
        st, err = await server.api("GET", "/api/v1/threads?attention=true", auth=who)
        assert st == 403 and err["error"]["code"] == "forbidden", who
    st, page = await server.api("GET", "/api/v1/threads", auth=token("supplier1", "supplier"))
    assert [t["order"] for t in page["threads"]] == ["PO-7781"]
    assert "reasons" not in page["threads"][0] and "staff_unread" not in page["threads"][0]
    # search: names and order ids for the supplier side; e-mails for operators only
    for q, staff_finds, supplier_finds in (
        ("zoe", True, True),
        ("PO-7781", True, True),
        ("zoe.mueller@example.com", True, False),
        ("sales@berg.example", True, False),
    ):
        for who, finds in ((token("staff1", "staff"), staff_finds), (token("supplier1", "supplier"), supplier_finds)):
            st, page = await server.api("GET", "/api/v1/threads", auth=who, params={"q": q})
            assert st == 200 and bool(page["threads"]) == finds, (q, who, page)
            assert "@" not in str(page)  # e-mails are never returned
    # a staff token whose id is the supplier here is the supplier here
    boss = await server.client("supplier1", "staff")
    page = await request(boss, {"type": "inbox"}, "inbox")
    assert [(e["order"], "reasons" in e) for e in page["orders"]] == [("PO-7781", False)]
    assert await queue(server, token("supplier1", "staff")) == {}
    await buyer.post("PO-7781", "Thank you")
    u = await boss.expect("unread", order="PO-7781", count=1)
    assert "reasons" not in u
    for kind in ("follow", "resolve"):
        err = await request(boss, {"type": kind, "order": "PO-7781"})
        assert (err["type"], err["code"]) == ("error", "forbidden"), kind
    # staff and bots answer help; they do not ask
    for c in (await server.client("staff1", "staff"), await server.client("bot1", "bot", orders=["PO-7781"])):
        err = await request(c, {"type": "help", "order": "PO-7781", "client_id": "h"})
        assert (err["type"], err["code"], err["ref"]) == ("error", "forbidden", "h")


async def test_bad_help_frames_are_refused_and_change_nothing(server):
    await server.order("X-1")
    st, _ = await server.api(
        "PUT",
        "/api/v1/orders/X-2",
        {
            "buyer": {"id": "buyer1", "name": "B"},
            "supplier": {"id": "supplier1", "name": "S"},
            "workflow": "retail",
            "status": "completed",
        },
    )
    assert st == 201
    buyer = await server.client("buyer1", "buyer")
    outsider = await server.client("buyer9", "buyer")
    cases = [
        (buyer, {"type": "help", "order": "X-1", "client_id": "c1", "text": "x" * 4001}, "too_large", "c1"),
        (buyer, {"type": "help", "order": "X-1", "client_id": "c" * 129}, "bad_request", "X-1"),
        (buyer, {"type": "help", "order": "X-1"}, "bad_request", "X-1"),
        (buyer, {"type": "help", "order": "X-1", "client_id": "c2", "text": 5}, "bad_request", "c2"),
        (buyer, {"type": "help", "order": "", "client_id": "c3"}, "bad_request", "c3"),
        (buyer, {"type": "help", "order": "X-2", "client_id": "c4"}, "forbidden", "c4"),  # a closed chat
        (outsider, {"type": "help", "order": "X-1", "client_id": "c5"}, "not_found", "c5"),
        (buyer, {"type": "help", "order": "nope", "client_id": "c6"}, "not_found", "c6"),
        (buyer, {"type": "follow"}, "bad_request", None),
        (buyer, {"type": "unfollow", "order": 7}, "bad_request", None),
        (buyer, {"type": "resolve", "order": "x" * 201}, "bad_request", None),
    ]
    for c, frame, code, ref in cases:
        err = await request(c, frame)
        assert (err["type"], err["code"], err.get("ref")) == ("error", code, ref), (frame, err)
    st, err = await server.api("GET", "/api/v1/threads?attention=yes")
    assert st == 400 and err["error"]["code"] == "bad_request"
    assert (await server.api("GET", "/api/v1/orders/X-1"))[1]["last_seq"] == 0
    assert await queue(server) == {}
