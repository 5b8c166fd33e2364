"""The order workflow built in (issue 12, first half): status pipelines and the chat lifecycle.

The two seed pipelines end to end over real sockets, every refused transition by
every role, REST status changes posting to the chat (and the api key forcing one),
`next_statuses` per role, closing after the grace period (injected clock) and a
dispute reopening the chat, staff and bots posting on a closed order.
"""

from __future__ import annotations

import uuid

import pytest

from tests.support.client import request, settled

BACKENDS = ("single", "cluster")  # each test also runs over two instances and Redis

ROLES = ("buyer", "supplier", "sales_rep", "staff", "bot")
USERS = {"buyer": "buyer1", "supplier": "supplier1", "sales_rep": "rep1", "staff": "staff1", "bot": "bot1"}
SIDE = {"supplier", "sales_rep", "staff", "bot"}
MAKER = {"supplier", "staff", "bot"}
# (from, to) -> roles, written out here from the help pages, not read from chatd.workflow
RETAIL = {
    ("pending", "in_progress"): SIDE,
    ("pending", "cancelled"): SIDE,
    ("in_progress", "shipped"): SIDE,
    ("in_progress", "cancelled"): SIDE,
    ("shipped", "completed"): SIDE,
}
RETAIL_STATUSES = ["pending", "in_progress", "shipped", "completed", "cancelled"]
FACTORY = {
    ("confirmed", "in_production"): MAKER,
    ("in_production", "quality_check"): MAKER,
    ("quality_check", "shipped"): MAKER,
    ("shipped", "delivered"): {"buyer", "staff"},
    ("delivered", "completed"): {"staff", "bot"},
}
FACTORY_STATUSES = ["confirmed", "in_production", "quality_check", "shipped", "delivered", "completed"]
LABELS = {
    "pending": ("Pending", "neutral"),
    "in_progress": ("In Progress", "info"),
    "shipped": ("Shipped", "progress"),
    "completed": ("Completed", "success"),
    "cancelled": ("Cancelled", "danger"),
    "confirmed": ("Confirmed", "neutral"),
    "in_production": ("In Production", "info"),
    "quality_check": ("Quality Check", "info"),
    "delivered": ("Delivered", "success"),
}


async def register(server, order: str, workflow: str | None = None, **extra) -> dict:
    body = {
        "buyer": {"id": "buyer1", "name": "Bea"},
        "supplier": {"id": "supplier1", "name": "Sam"},
        "sales_rep": {"id": "rep1", "name": "Rita"},
        **extra,
    }
    if workflow:
        body["workflow"] = workflow
    st, o = await server.api("PUT", f"/api/v1/orders/{order}", body)
    assert st == 201, o
    return o


async def everyone(server, order: str) -> dict:
    """A joined client per role, and their `joined` frames."""
    clients = {}
    for role in ROLES:
        kw = {"orders": [order]} if role == "bot" else {}
        c = await server.client(USERS[role], role, **kw)
        c.joined = await c.join(order)
        clients[role] = c
    return clients


async def set_status(client, order: str, status: str) -> dict:
    cid = str(uuid.uuid4())
    return await request(client, {"type": "set_status", "order": order, "status": status, "client_id": cid}, "ack")


async def say(client, order: str, text: str) -> dict:
    return await client.post(order, text)


def next_of(pipeline: dict, statuses: list[str], current: str, role: str) -> list[dict]:
    return [
        {"status": s, "label": LABELS[s][0], "tone": LABELS[s][1]}
        for s in statuses
        if role in pipeline.get((current, s), set())
    ]


def check_state(frame: dict, pipeline: dict, statuses: list[str], status: str, role: str, closed: bool = False):
    assert frame["status"] == status and (frame["status_label"], frame["status_tone"]) == LABELS[status]
    assert frame["next_statuses"] == next_of(pipeline, statuses, status, role), (role, status)
    # the whole pipeline, to every role: how a past status of the history shows after a reload
    assert frame["statuses"] == [{"status": s, "label": LABELS[s][0], "tone": LABELS[s][1]} for s in statuses]
    assert frame["closed"] is closed and frame["closed_reason"] == (status if closed else None)


async def refused_everywhere(clients: dict, order: str, pipeline: dict, statuses: list[str], current: str):
    """Every transition from `current` by every role that the pipeline does not allow:
    `conflict` when no role may make it from here, `forbidden` when another role may."""
    for role, c in clients.items():
        for target in [*statuses, "nonsense"]:
            allowed = pipeline.get((current, target))
            if allowed and role in allowed:
                continue
            r = await set_status(c, order, target)
            want = "forbidden" if allowed else "conflict"
            assert r["type"] == "error" and r["code"] == want, (role, current, target, r)


async def walk(server, order: str, pipeline: dict, statuses: list[str], path: list[tuple[str, str]]):
    """Register with the pipeline, then move along `path` ((role, status) steps), checking at
    each status every refusal and what each role's `order` frame offers next."""
    clients = await everyone(server, order)
    current = statuses[0]
    for role, c in clients.items():
        check_state(c.joined, pipeline, statuses, current, role)
    seqs = []
    for mover, target in path:
        await refused_everywhere(clients, order, pipeline, statuses, current)
        ack = await set_status(clients[mover], order, target)
        assert ack["type"] == "ack", (mover, target, ack)
        seqs.append(ack["seq"])
        current = target
        terminal = target in ("completed", "cancelled")
        for role, c in clients.items():
            m = await c.expect("message", order=order, seq=ack["seq"])
            assert m["kind"] == "status" and m["status"] == target and "forced" not in m
            assert m["text"] == f"Status changed to {LABELS[target][0]}"  # no text given: the label says it
            check_state(
                await c.expect("order", order=order, status=target), pipeline, statuses, target, role, closed=terminal
            )
    await refused_everywhere(clients, order, pipeline, statuses, current)
    # nothing refused was stored: the history is the moves, in order
    st, page = await server.api("GET", f"/api/v1/orders/{order}/messages")
    assert [(m["seq"], m["status"]) for m in page["messages"]] == list(zip(seqs, [t for _, t in path], strict=True))
    return clients


async def test_retail_pipeline_end_to_end(server):
    o = await register(server, "R-1", "retail")
    assert (o["workflow"], o["status"], o["closed"], o["closes_at"]) == ("retail", "pending", False, None)
    clients = await walk(
        server,
        "R-1",
        RETAIL,
        RETAIL_STATUSES,
        [("supplier", "in_progress"), ("sales_rep", "shipped"), ("bot", "completed")],
    )
    # completed is terminal and the grace period 0: closed to participants at once
    for role in ("buyer", "supplier", "sales_rep"):
        r = await say(clients[role], "R-1", "one more thing")
        assert r["type"] == "error" and r["code"] == "forbidden" and "completed" in r["message"], (role, r)
    for role in ("staff", "bot"):
        assert (await say(clients[role], "R-1", f"{role} still here"))["type"] == "ack"
    # participants still read everything
    page = await request(clients["buyer"], {"type": "history", "order": "R-1"}, "history")
    assert [m["text"] for m in page["messages"]][-2:] == ["staff still here", "bot still here"]
    await register(server, "R-2", "retail")
    await walk(server, "R-2", RETAIL, RETAIL_STATUSES, [("staff", "in_progress"), ("supplier", "cancelled")])
    st, o = await server.api("GET", "/api/v1/orders/R-2")
    assert (o["status"], o["closed"]) == ("cancelled", True) and o["closes_at"] is not None


async def test_factory_pipeline_end_to_end_the_buyer_confirms_receipt(server):
    await register(server, "F-1", "factory")
    clients = await walk(
        server,
        "F-1",
        FACTORY,
        FACTORY_STATUSES,
        [
            ("supplier", "in_production"),
            ("bot", "quality_check"),
            ("supplier", "shipped"),
            ("buyer", "delivered"),
            ("staff", "completed"),
        ],
    )
    r = await say(clients["buyer"], "F-1", "thanks")
    assert r["type"] == "error" and r["code"] == "forbidden"


async def test_rest_status_changes_post_to_the_chat_and_the_api_key_may_force(server):
    await register(server, "R-3", "retail")
    buyer = await server.client("buyer1", "buyer")
    await buyer.join("R-3")
    st, body = await server.api("PUT", "/api/v1/orders/R-3", {"status": "shipped"})
    assert st == 409 and body["error"]["code"] == "conflict"
    st, o = await server.api("PUT", "/api/v1/orders/R-3", {"status": "in_progress"})
    assert st == 200 and o["status"] == "in_progress" and o["last_seq"] == 1
    m = await buyer.expect("message", order="R-3", seq=1)
    assert (m["kind"], m["status"], m["sender"]["id"], m["text"]) == (
        "status",
        "in_progress",
        "system",
        "Status changed to In Progress",  # the workflow's label, not the id
    )
    assert "forced" not in m
    state = await buyer.expect("order", order="R-3", status="in_progress")
    assert state["status_label"] == "In Progress" and state["next_statuses"] == []
    # back to pending is outside the workflow: only with force, and the message says so
    st, body = await server.api("PUT", "/api/v1/orders/R-3", {"status": "pending"})
    assert st == 409
    for unknown in ({"status": "lost", "force": True}, {"status": "lost"}):  # not a status of the workflow
        st, body = await server.api("PUT", "/api/v1/orders/R-3", unknown)
        assert st == 400 and body["error"]["code"] == "bad_request" and "no status lost" in body["error"]["message"]
    st, o = await server.api("PUT", "/api/v1/orders/R-3", {"status": "pending", "force": True})
    assert st == 200 and o["status"] == "pending" and o["last_seq"] == 2
    m = await buyer.expect("message", order="R-3", seq=2)
    assert m["status"] == "pending" and m["forced"] is True
    st, o = await server.api("PUT", "/api/v1/orders/R-3", {"status": "completed", "force": True})
    assert st == 200 and o["closed"] is True
    r = await say(buyer, "R-3", "hello?")
    assert r["type"] == "error" and r["code"] == "forbidden"
    # the same status again changes nothing and posts nothing
    st, o = await server.api("PUT", "/api/v1/orders/R-3", {"status": "completed"})
    assert st == 200 and o["last_seq"] == 3
    # workflows: unknown names, a change the current status is not in both of
    st, body = await server.api("PUT", "/api/v1/orders/R-3", {"workflow": "nope"})
    assert st == 400
    st, o = await server.api("PUT", "/api/v1/orders/R-3", {"workflow": "factory"})  # completed is in both
    assert st == 200 and o["workflow"] == "factory"
    await register(server, "R-4", "retail")
    st, body = await server.api("PUT", "/api/v1/orders/R-4", {"workflow": "factory"})  # pending is not
    assert st == 409 and body["error"]["code"] == "conflict"
    st, body = await server.api(
        "PUT",
        "/api/v1/orders/R-5",
        {
            "buyer": {"id": "buyer1", "name": "Bea"},
            "supplier": {"id": "supplier1", "name": "Sam"},
            "workflow": "factory",
            "status": "pending",
        },
    )
    assert st == 400
    st, o = await server.api(
        "PUT",
        "/api/v1/orders/R-5",
        {
            "buyer": {"id": "buyer1", "name": "Bea"},
            "supplier": {"id": "supplier1", "name": "Sam"},
            "workflow": "factory",
            "status": "shipped",
        },
    )
    assert st == 201 and o["status"] == "shipped" and o["last_seq"] == 0  # registering posts nothing


async def test_free_is_the_default_and_behaves_as_before(server):
    await server.order("X-1")
    buyer = await server.client("buyer1", "buyer")
    j = await buyer.join("X-1")
    assert (j["workflow"], j["status"], j["status_label"], j["status_tone"], j["next_statuses"], j["closed"]) == (
        "free",
        "open",
        "open",
        "neutral",
        [],
        False,
    )
    supplier = await server.client("supplier1", "supplier")
    assert (await set_status(buyer, "X-1", "paid"))["code"] == "forbidden"
    for status in ("completed", "whatever", "cancelled"):
        assert (await set_status(supplier, "X-1", status))["type"] == "ack"
    assert (await say(buyer, "X-1", "still open"))["type"] == "ack"


@pytest.mark.parametrize("sections", [{"workflow": {"close_after_s": 3600.0}}], ids=["1h-grace"])
@pytest.mark.single_only("the lifecycle clock is injected into the in-process server")
async def test_closing_after_the_grace_period_and_a_dispute_reopening(server):
    from chatd.edge.keys import CHAT

    now = [1_800_000_000.0]
    server.app[CHAT].close_clock = lambda: now[0]
    await register(server, "G-1", "retail")
    clients = await everyone(server, "G-1")
    buyer, supplier = clients["buyer"], clients["supplier"]
    for status in ("in_progress", "shipped", "completed"):
        assert (await set_status(supplier, "G-1", status))["type"] == "ack"
    state = await buyer.expect("order", order="G-1", status="completed")
    assert state["closed"] is False and state["closes_at"] == int((now[0] + 3600) * 1000)
    assert (await say(buyer, "G-1", "a late question"))["type"] == "ack"  # within the grace period
    now[0] += 3599
    assert (await say(supplier, "G-1", "an answer"))["type"] == "ack"
    now[0] += 1
    for role in ("buyer", "supplier", "sales_rep"):
        r = await say(clients[role], "G-1", "too late")
        assert (r["code"], r["message"]) == ("forbidden", "the chat is closed: the order is completed"), r
    r = await request(buyer, {"type": "typing", "order": "G-1", "active": True}, "typing")
    assert r["type"] == "error" and r["code"] == "forbidden"
    await buyer.send({"type": "typing", "order": "G-1", "active": False})  # stopping is always fine
    import io

    import aiohttp

    from tests.support.client import token

    form = aiohttp.FormData()
    form.add_field("file", io.BytesIO(b"packing list\n"), filename="list.txt", content_type="text/plain")
    async with aiohttp.ClientSession() as s:
        async with s.post(
            f"{server.base}/api/v1/orders/G-1/attachments",
            data=form,
            headers={"Authorization": f"Bearer {token('buyer1', 'buyer')}"},
        ) as resp:
            assert resp.status == 403 and (await resp.json())["error"]["code"] == "forbidden"
    for role in ("staff", "bot"):
        assert (await say(clients[role], "G-1", f"{role} may"))["type"] == "ack"
    j = await buyer.join("G-1")
    assert (j["closed"], j["closed_reason"]) == (True, "completed")
    st, o = await server.api("GET", "/api/v1/orders/G-1")
    assert o["closed"] is True
    # the buyer can always complain: a dispute reopens posting until it closes
    r = await request(
        buyer,
        {"type": "dispute", "order": "G-1", "action": "open", "client_id": "d1", "reason": "one is broken"},
        "ack",
    )
    assert r["type"] == "ack"
    state = await buyer.expect("order", order="G-1", status="completed", closed=False)
    assert state["dispute"]["open"] is True
    assert (await say(buyer, "G-1", "photo attached"))["type"] == "ack"
    assert (await say(supplier, "G-1", "sorry, replacing it"))["type"] == "ack"
    r = await request(
        clients["staff"], {"type": "dispute", "order": "G-1", "action": "close", "client_id": "d2"}, "ack"
    )
    assert r["type"] == "ack"
    await buyer.expect("order", order="G-1", closed=True)
    assert (await say(buyer, "G-1", "and another"))["code"] == "forbidden"
    await settled(buyer)


async def test_the_close_holds_on_every_instance_and_across_restarts_of_the_view(server):
    """The close time is stored with the order: a participant on another instance (or
    one joining later) is closed out too; the frames say why."""
    await register(server, "C-1", "retail")
    staff = await server.client("staff1", "staff")
    await staff.join("C-1")
    assert (await set_status(staff, "C-1", "cancelled"))["type"] == "ack"
    for role in ("buyer", "supplier", "sales_rep"):
        c = await server.client(USERS[role], role)
        j = await c.join("C-1")
        assert (j["closed"], j["closed_reason"], j["status_label"], j["status_tone"]) == (
            True,
            "cancelled",
            "Cancelled",
            "danger",
        )
        assert j["next_statuses"] == []
        r = await say(c, "C-1", "why?")
        assert r["type"] == "error" and r["code"] == "forbidden" and "cancelled" in r["message"]
    assert (await say(staff, "C-1", "refund on its way"))["type"] == "ack"
