"""GET /api/v1/threads (issue 5, point 1): listing, every filter, stable pagination,
full-text search with notes visibility; POST /read pushes mark-unread live."""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest

from tests.support.client import API_KEY, settled, token
from tests.support.clock import inject

BACKENDS = ("single", "cluster")  # each test also runs over two instances and Redis


async def _tick() -> None:
    """Let the wall clock move to the next millisecond, so activity times differ."""
    start = int(time.time() * 1000)
    deadline = time.monotonic() + 1.0
    while int(time.time() * 1000) <= start and time.monotonic() < deadline:  # noqa: ASYNC110 - polls the clock
        await asyncio.sleep(0.001)


async def post(server, order: str, text: str, kind: str = "text") -> dict:
    st, ack = await server.api(
        "POST", f"/api/v1/orders/{order}/messages", {"client_id": str(uuid.uuid4()), "text": text, "kind": kind}
    )
    assert st == 201, ack
    return ack


async def threads(server, auth=API_KEY, **params) -> tuple[int, dict]:
    query = "&".join(f"{k}={v}" for k, v in params.items())
    return await server.api("GET", "/api/v1/threads" + (f"?{query}" if query else ""), auth=auth)


def ids(body: dict) -> list[str]:
    return [t["order"] for t in body["threads"]]


async def test_threads_newest_first_with_every_filter(server):
    for o in ("T-A", "T-B", "T-C", "T-D"):
        await server.order(o)
    supplier = await server.client("supplier1", "supplier")
    buyer = await server.client("buyer1", "buyer")
    assert (await supplier.post("T-A", "hello from A"))["type"] == "ack"
    await _tick()
    assert (await supplier.post("T-B", "hello from B"))["type"] == "ack"
    await _tick()
    assert (await buyer.post("T-C", "buyer writes C"))["type"] == "ack"
    await _tick()
    await buyer.send({"type": "dispute", "order": "T-B", "action": "open", "client_id": "d1", "reason": "broken"})
    await buyer.expect("ack", client_id="d1")

    st, body = await threads(server)
    assert st == 200, body
    assert ids(body) == ["T-B", "T-C", "T-A"]  # T-D has no messages
    assert body["next_cursor"] is None
    b = body["threads"][0]
    assert b["status"] == "open" and b["dispute_open"] is True and b["dispute"]["reason"] == "broken"
    assert b["message_count"] == 2
    assert b["last_message"]["kind"] == "dispute" and b["last_message"]["sender"]["id"] == "buyer1"
    assert b["activity_ts"] == b["last_message"]["ts"]
    assert {p["id"] for p in b["participants"]} == {"buyer1", "supplier1", "rep1"}
    c = body["threads"][1]
    assert c["last_message"]["text"] == "buyer writes C" and c["dispute_open"] is False

    st, body = await threads(server, dispute="open")
    assert ids(body) == ["T-B"]
    st, body = await threads(server, unread_for="buyer1")
    assert ids(body) == ["T-A"] and body["threads"][0]["unread"] == 1  # B: the buyer wrote last
    st, body = await threads(server, unread_for="supplier1")
    assert ids(body) == ["T-B", "T-C"] and [t["unread"] for t in body["threads"]] == [1, 1]
    st, body = await threads(server, has_messages="false")
    assert ids(body) == ["T-D"] and body["threads"][0]["last_message"] is None
    st, body = await threads(server, has_messages="any")
    assert ids(body) == ["T-B", "T-C", "T-A", "T-D"]  # T-D's activity is its creation, before any message
    st, body = await threads(server, has_messages="true", dispute="none")
    assert ids(body) == ["T-C", "T-A"]

    # closing: dispute=closed
    staff = await server.client("boss", "staff")
    await staff.send({"type": "dispute", "order": "T-B", "action": "close", "client_id": "d2"})
    await staff.expect("ack", client_id="d2")
    st, body = await threads(server, dispute="closed")
    assert ids(body) == ["T-B"]
    st, body = await threads(server, dispute="open")
    assert ids(body) == []

    # who may ask: api key, staff; supplier side for their own orders; not buyers or bots
    st, body = await threads(server, auth=token("boss", "staff"))
    assert st == 200 and len(body["threads"]) == 3
    st, body = await threads(server, auth=token("buyer1", "buyer"))
    assert st == 403 and body["error"]["code"] == "forbidden"
    st, body = await threads(server, auth=token("bot1", "bot", orders="*"))
    assert st == 403
    st, body = await threads(server, auth=None)
    assert st == 401
    for bad in (
        {"dispute": "maybe"},
        {"has_messages": "perhaps"},
        {"limit": "0"},
        {"limit": "x"},
        {"cursor": "garbage"},
    ):
        st, body = await threads(server, **bad)
        assert st == 400 and body["error"]["code"] == "bad_request", bad


async def test_supplier_side_sees_only_its_orders(server):
    await server.order("S-1", buyer="b1", supplier="sup1", rep="rep1")
    await server.order("S-2", buyer="b2", supplier="sup2", rep="rep1")
    await server.order("S-3", buyer="b3", supplier="sup2", rep=None)
    for o in ("S-1", "S-2", "S-3"):
        await post(server, o, f"first in {o}")
        await _tick()
    st, body = await threads(server, auth=token("sup2", "supplier"))
    assert st == 200 and ids(body) == ["S-3", "S-2"]
    st, body = await threads(server, auth=token("rep1", "sales_rep"))
    assert ids(body) == ["S-2", "S-1"]
    st, body = await threads(server, auth=token("stranger", "supplier"))
    assert st == 200 and ids(body) == []


@pytest.mark.parametrize("q", ["", "opening"])
async def test_pagination_is_stable_while_messages_arrive(server, q, monkeypatch):
    """Every thread that existed at the first page is listed exactly once, even though
    threads further down get new messages (and move to the top) between pages. With a
    search too: the in-process store made to walk the threads three at a time, as it
    does for a common word (chatd.store.*.search), never reading the matches whole."""
    if q:
        from chatd.store.postgres import search as pg_search
        from chatd.store.sqlite import search

        for module in (search, pg_search):
            for name, value in (("READ_WHOLE", -1), ("SCAN", 3), ("ASK", 2), ("SCANS", 1000)):
                monkeypatch.setattr(module, name, value)
    orders = [f"P-{i:02d}" for i in range(30)]
    for o in orders:
        await server.order(o)
        await post(server, o, f"opening {o}")
        await _tick()
    # newest first: P-29 ... P-00
    seen: list[str] = []
    activities: list[int] = []
    stop = asyncio.Event()
    posted_during: set[str] = set()

    async def background_poster():
        i = 0
        while not stop.is_set():
            o = orders[(i * 7) % len(orders)]
            await post(server, o, f"noise {i}")
            posted_during.add(o)
            i += 1
            await asyncio.sleep(0)

    poster = asyncio.create_task(background_poster())
    try:
        cursor = None
        pages = 0
        while True:
            params = {"limit": 4, **({"q": q} if q else {})}
            if cursor:
                params["cursor"] = cursor
            st, body = await threads(server, **params)
            assert st == 200, body
            pages += 1
            page = ids(body)
            seen += page
            activities += [t["activity_ts"] for t in body["threads"]]
            # between pages: the next threads down (not listed yet) and one already
            # listed get news, and a brand new thread appears
            remaining = [o for o in orders if o not in seen]
            for o in remaining[-2:] + remaining[:1] + page[:1]:
                await post(server, o, "news between pages")
            new = f"N-{pages}"
            await server.order(new)
            await post(server, new, "a new thread")
            cursor = body["next_cursor"]
            if cursor is None:
                break
    finally:
        stop.set()
        await poster
    assert len(seen) == len(set(seen)), "a thread was listed twice"
    assert sorted(seen) == sorted(orders), "a thread was skipped (or a new one slipped in)"
    assert activities == sorted(activities, reverse=True)
    assert pages == 8
    assert posted_during  # the background poster really ran meanwhile

    if q:  # the threads created meanwhile do not match
        return
    # starting again shows the threads created meanwhile too, by their current activity
    st, body = await threads(server, limit=200)
    assert sorted(ids(body)) == sorted(orders + [f"N-{i}" for i in range(1, pages + 1)])
    assert [t["activity_ts"] for t in body["threads"]] == sorted(
        (t["activity_ts"] for t in body["threads"]), reverse=True
    )


async def test_pagination_with_filters_and_exact_page_ends(server):
    for i in range(6):
        await server.order(f"F-{i}")
        await post(server, f"F-{i}", "x")
        await _tick()
    st, body = await threads(server, limit=3)
    assert ids(body) == ["F-5", "F-4", "F-3"] and body["next_cursor"]
    st, body2 = await threads(server, limit=3, cursor=body["next_cursor"])
    assert ids(body2) == ["F-2", "F-1", "F-0"] and body2["next_cursor"] is None
    st, body = await threads(server, limit=200000)  # capped, not refused
    assert st == 200 and len(body["threads"]) == 6


async def test_full_text_search_words_prefixes_and_notes(server):
    await server.order("Q-1", buyer="buyer1", supplier="supplier1", rep="rep1")
    await server.order("Q-2", buyer="buyer2", supplier="supplier2", rep=None)
    buyer = await server.client("buyer1", "buyer")
    supplier = await server.client("supplier1", "supplier")
    supplier2 = await server.client("supplier2", "supplier")
    assert (await buyer.post("Q-1", "The invoice for the pallets arrived, thanks"))["seq"] == 1
    assert (await supplier.post("Q-1", "internal: our margin on pallets is thin", kind="note"))["seq"] == 2
    assert (await supplier.post("Q-1", "Café crème delivered"))["seq"] == 3
    assert (await supplier2.post("Q-2", "Pallets shipped today"))["seq"] == 1

    st, body = await threads(server, q="pallet")  # a prefix of "pallets"
    assert st == 200 and sorted(ids(body)) == ["Q-1", "Q-2"]
    q1 = next(t for t in body["threads"] if t["order"] == "Q-1")
    assert q1["match_count"] == 2
    assert [(m["order"], m["seq"], m["kind"]) for m in q1["matches"]] == [("Q-1", 2, "note"), ("Q-1", 1, "text")]

    st, body = await threads(server, q="invoice arrived")  # every word must match
    assert ids(body) == ["Q-1"] and [m["seq"] for m in body["threads"][0]["matches"]] == [1]
    st, body = await threads(server, q="invoice shipped")
    assert ids(body) == []
    st, body = await threads(server, q="marg")  # a prefix, in a note: api key sees notes
    assert ids(body) == ["Q-1"] and body["threads"][0]["matches"][0]["kind"] == "note"
    st, body = await threads(server, q="cafe creme")  # diacritics folded
    assert [m["seq"] for m in body["threads"][0]["matches"]] == [3]

    # notes: staff and the supplier side find them, only on their own orders
    st, body = await threads(server, q="margin", auth=token("boss", "staff"))
    assert ids(body) == ["Q-1"]
    st, body = await threads(server, q="margin", auth=token("supplier1", "supplier"))
    assert ids(body) == ["Q-1"] and body["threads"][0]["matches"][0]["text"].startswith("internal")
    st, body = await threads(server, q="margin", auth=token("rep1", "sales_rep"))
    assert ids(body) == ["Q-1"]
    st, body = await threads(server, q="margin", auth=token("supplier2", "supplier"))
    assert ids(body) == []
    st, body = await threads(server, q="pallets", auth=token("supplier2", "supplier"))
    assert ids(body) == ["Q-2"]
    # buyers cannot search here at all (their inbox is the WebSocket `inbox`)
    st, body = await threads(server, q="pallets", auth=token("buyer1", "buyer"))
    assert st == 403
    # search combines with the other filters
    st, body = await threads(server, q="pallets", unread_for="buyer1")
    assert ids(body) == ["Q-1"]
    st, body = await threads(server, q="pallets", dispute="open")
    assert ids(body) == []
    st, body = await threads(server, q="%21%21%21")  # "!!!": no word
    assert st == 400
    st, body = await threads(server, q="%22pallets%22%20OR%20x*")  # FTS syntax is not passed through
    assert st == 200


async def test_search_index_survives_restart_and_backfills(tmp_path):
    """The index is kept by a trigger in the message's transaction: what is stored is searchable."""
    from chatd.store.records import Person
    from chatd.store.rows import Actor
    from chatd.store.sqlite import SqliteStore
    from chatd.threads import ThreadQuery, Threads

    path = str(tmp_path / "s.sqlite3")
    store = SqliteStore(path)
    await store.open()
    await store.put_order("R-1", None, Person("b", "B"), Person("s", "S"))
    await store.post(Actor("s", "S", "supplier"), "R-1", "durable words here", "c1")
    await store.aclose()
    store = SqliteStore(path)
    await store.open()
    threads = Threads(store)
    try:
        page = await threads.apage(ThreadQuery(q="durab"))
        assert [t["order"] for t in page["threads"]] == ["R-1"]
    finally:
        threads.close()
        await store.aclose()


async def test_mark_unread_is_pushed_live(server):
    await server.order("M-1")
    buyer_tab1 = await server.client("buyer1", "buyer")
    buyer_tab2 = await server.client("buyer1", "buyer")
    supplier = await server.client("supplier1", "supplier")
    for i in range(3):
        await supplier.post("M-1", f"m{i}")
    for tab in (buyer_tab1, buyer_tab2):
        await tab.expect("unread", order="M-1", count=3)
    await buyer_tab1.send({"type": "read", "order": "M-1", "seq": 3})
    for tab in (buyer_tab1, buyer_tab2):
        await tab.expect("unread", order="M-1", count=0)
    st, body = await threads(server, unread_for="buyer1")
    assert ids(body) == []

    # staff marks the thread unread again from seq 1: pushed to every tab at once
    st, body = await server.api(
        "POST", "/api/v1/orders/M-1/read", {"user": "buyer1", "seq": 1}, auth=token("boss", "staff")
    )
    assert st == 200 and (body["read_seq"], body["unread"], body["total"]) == (1, 2, 2)
    for tab in (buyer_tab1, buyer_tab2):
        u = await tab.expect("unread", order="M-1", count=2)
        assert u["total"] == 2
    st, body = await threads(server, unread_for="buyer1")
    assert ids(body) == ["M-1"] and body["threads"][0]["unread"] == 2
    # and read again (forward) with the api key
    st, body = await server.api("POST", "/api/v1/orders/M-1/read", {"user": "buyer1", "seq": 3})
    assert st == 200
    await buyer_tab2.expect("unread", order="M-1", count=0)
    await settled(buyer_tab1)


async def test_threads_routes_answer_other_origins(server):
    """The staff console embedded on a platform's admin pages lists threads and marks them
    read cross-origin, with the staff token as Bearer: those two routes (errors included)
    allow any origin, as the attachment routes do."""
    import aiohttp

    await server.order("T-CORS")
    staff = {"Authorization": f"Bearer {token('boss', 'staff')}", "Origin": "https://admin.shop.example"}
    async with aiohttp.ClientSession() as s:
        for path, method in (("/api/v1/threads", "GET"), ("/api/v1/threads/read", "POST")):
            preflight = {
                "Origin": "https://admin.shop.example",
                "Access-Control-Request-Method": method,
                "Access-Control-Request-Headers": "authorization, content-type",
            }
            async with s.options(server.base + path, headers=preflight) as r:
                assert r.status == 204
                assert r.headers["Access-Control-Allow-Origin"] == "*"
                assert "Authorization" in r.headers["Access-Control-Allow-Headers"]
                assert method in r.headers["Access-Control-Allow-Methods"]
        async with s.get(server.base + "/api/v1/threads?attention=true", headers=staff) as r:
            assert r.status == 200 and r.headers["Access-Control-Allow-Origin"] == "*"
        async with s.post(server.base + "/api/v1/threads/read", json={"orders": ["T-CORS"]}, headers=staff) as r:
            assert r.status == 200 and r.headers["Access-Control-Allow-Origin"] == "*"
        async with s.get(server.base + "/api/v1/threads?nope=1", headers=staff) as r:
            assert r.status == 400 and r.headers["Access-Control-Allow-Origin"] == "*"  # errors too
        async with s.get(server.base + "/api/v1/orders/T-CORS", headers=staff) as r:
            assert "Access-Control-Allow-Origin" not in r.headers  # not the rest of the API


async def _asks(server, order: str) -> dict:
    await server.order(order)
    buyer = await server.client("buyer1", "buyer")
    return await buyer.post(order, "When will it ship?")


@pytest.mark.single_only("the clocks are injected into the in-process server")
async def test_overdue_lists_an_order_once_it_is_escalated_not_before(server):
    from chatd.edge.keys import SLA

    clock = inject(server)
    asked = await _asks(server, "O-1")
    clock.t += 24 * 3600 + 1  # due, but no instance has looked yet
    st, body = await threads(server, overdue="true")
    assert (st, ids(body)) == (200, [])
    st, body = await threads(server, awaiting_reply="true")
    assert body["threads"][0]["awaiting_reply"]["overdue"] is False
    assert await server.app[SLA].sweep() == 1
    st, body = await threads(server, overdue="true")
    assert ids(body) == ["O-1"]
    got = body["threads"][0]["awaiting_reply"]
    assert (got["overdue"], got["since"], got["due_at"]) == (True, asked["ts"], asked["ts"] + 86_400_000)
    st, body = await threads(server, attention="true", overdue="true")  # the queue's SLA breaches
    assert ids(body) == ["O-1"] and body["threads"][0]["reasons"] == ["sla"]


@pytest.mark.single_only("the clocks are injected into the in-process server")
@pytest.mark.parametrize("sections", [{"sla": {"reply_within_s": 0.0}}])
async def test_without_an_sla_nothing_is_overdue(server):
    from chatd.edge.keys import SLA

    clock = inject(server)
    await _asks(server, "O-0")
    clock.t += 7 * 24 * 3600
    assert await server.app[SLA].sweep() == 0  # 0: never escalates
    st, body = await threads(server, overdue="true")
    assert (st, ids(body)) == (200, [])
    st, body = await threads(server, awaiting_reply="true")
    waiting = body["threads"][0]["awaiting_reply"]
    assert ids(body) == ["O-0"] and (waiting["overdue"], waiting["due_at"]) == (False, None)  # nothing is ever due
    st, body = await threads(server, attention="true")
    assert ids(body) == []
