"""Access is decided from the connection's current identity and the order's current
participants, on every path (issue 9, point 1; point 7: expiry and receipts), also
while an answer is still streaming (an export).

Read markers outlive the identity that made them: an id that read an order as
staff or as a bot keeps its marker. Whatever token that id presents later,
inbox, notify, unread totals, the room, history, REST, threads and attachment
downloads must show it only what that token gives it on the order now.
"""

from __future__ import annotations

import asyncio
import io
import json
import time
import uuid

import aiohttp
import pytest

from chatd.edge.keys import CHAT
from tests.support.client import TIMEOUT, Client, request, settled, short_token, token
from tests.support.hold import hold_export

BACKENDS = ("single", "cluster")  # each test also runs over two instances and Redis


async def _open(server, url: str, sub: str, role: str, **kw) -> Client:
    c = await Client.open(url, token(sub, role, **kw))
    server.clients.append(c)
    return c


async def _read(c: Client, order: str, seq: int) -> None:
    await c.send({"type": "read", "order": order, "seq": seq})
    await settled(c)


async def _upload(server, order: str, auth: str) -> str:
    form = aiohttp.FormData()
    form.add_field("file", io.BytesIO(b"plain words\n"), filename="a.txt", content_type="text/plain")
    async with aiohttp.ClientSession() as s:
        async with s.post(
            f"{server.base}/api/v1/orders/{order}/attachments", data=form, headers={"Authorization": f"Bearer {auth}"}
        ) as r:
            assert r.status == 201, await r.text()
            return (await r.json())["id"]


async def _send(c: Client, order: str, text: str, kind: str = "text", attachments=None) -> dict:
    cid = str(uuid.uuid4())
    await c.send(
        {"type": "send", "order": order, "client_id": cid, "text": text, "kind": kind, "attachments": attachments or []}
    )
    while True:
        f = await c._next_of(("ack", "error"))
        if f.get("client_id") == cid or f.get("ref") == cid:
            assert f["type"] == "ack", f
            return f


async def _setup(server):
    """m1: b1 / s1 / r1 with a text (seq 1) and a note (seq 2). m3: buyer x, supplier s1."""
    await server.order("m1", buyer="b1", supplier="s1", rep="r1")
    await server.order("m2", buyer="b2", supplier="s2", rep="r2")
    await server.order("m3", buyer="x", supplier="s1", rep=None)
    supplier = await server.client("s1", "supplier")
    assert (await supplier.post("m1", "hello"))["seq"] == 1
    assert (await supplier.post("m1", "internal plan", kind="note"))["seq"] == 2
    return supplier


# --- (a), (b): markers of an earlier identity ------------------------------------------------


@pytest.mark.parametrize(
    "before, after",
    [
        (("staff", None), ("buyer", None)),
        (("bot", ["m1"]), ("bot", ["m2"])),
        (("bot", "*"), ("supplier", None)),
    ],
    ids=["staff-then-buyer", "bot-claim-narrowed", "bot-then-supplier"],
)
async def test_read_state_of_an_earlier_identity_shows_nothing(server, before, after):
    supplier = await _setup(server)
    assert (await supplier.post("m3", "for x"))["seq"] == 1
    first = await server.client("x", before[0], orders=before[1])
    await _read(first, "m1", 1)  # x now holds a marker on m1, the note unread
    await first.close()

    me = await server.client("x", after[0], orders=after[1])
    page = await request(me, {"type": "inbox"}, "inbox")
    assert [e["order"] for e in page["orders"]] == ["m3"], page
    assert page["total_unread"] == 1, page  # m3's text only, not m1's note
    assert (await request(me, {"type": "join", "order": "m1"}, "joined"))["code"] == "not_found"
    # live: a note and a text on m1, then a text on m3 (same sender: delivered in this order)
    await supplier.post("m1", "another plan", kind="note")
    await supplier.post("m1", "shipped")
    await supplier.post("m3", "for x again")
    notify = await me.expect("notify", order="m3")
    assert notify["message"]["text"] == "for x again"
    unread = me.of_type("unread", order="m3")[-1]
    assert (unread["count"], unread["total"]) == (2, 2), unread
    assert not me.of_type("notify", order="m1") and not me.of_type("unread", order="m1")


async def test_a_help_request_reports_a_total_without_the_askers_side_markers(server):
    """s1 read m2 as a bot: a side marker there, 3 unread, which s1's supplier token
    does not count. Asking for help on m3 reads m3 for s1; its `unread` says so with
    the total that token sees (0), as the inbox does."""
    await _setup(server)
    other = await server.client("s2", "supplier")
    for i in range(3):
        await other.post("m2", f"m2 update {i}")
    as_bot = await server.client("s1", "bot", orders=["m2"])
    await _read(as_bot, "m2", 0)  # a side marker at 0: 3 unread there
    buyer = await server.client("x", "buyer")
    await buyer.post("m3", "where is my order?")
    me = await server.client("s1", "supplier")
    assert (await request(me, {"type": "inbox"}, "inbox"))["total_unread"] == 1  # m3's question
    ack = await request(me, {"type": "help", "order": "m3", "client_id": "h1", "text": "the buyer is upset"}, "ack")
    assert ack["type"] == "ack", ack
    unread = await me.expect("unread", order="m3")
    assert (unread["count"], unread["total"]) == (0, 0), unread
    assert (await request(me, {"type": "inbox"}, "inbox"))["total_unread"] == 0


# --- (c): a staff member becomes the buyer ---------------------------------------------------


async def test_staff_registered_as_buyer_stops_receiving_notes(server):
    supplier = await _setup(server)
    staff = await server.client("x", "staff")
    j = await staff.join("m1")
    assert j["last_seq"] == 2
    assert [m["kind"] for m in staff.of_type("message", order="m1")] == ["text", "note"]
    await server.order("m1", buyer="x", supplier="s1", rep="r1")
    assert (await staff.expect("left", order="m1"))["reason"] == "removed"
    await supplier.post("m1", "after: note", kind="note")
    await supplier.post("m1", "after: text")
    j = await staff.join("m1")  # back in, now as the buyer
    assert j["last_seq"] == 4 and j["unread"] == 2  # text 1 and text 4
    replayed = [m for m in staff.of_type("message", order="m1") if m["seq"] > 2]
    assert [m["text"] for m in replayed] == ["after: text"]
    await supplier.post("m1", "live note", kind="note")
    await supplier.post("m1", "live text")
    await staff.expect("message", text="live text")
    assert not staff.of_type("message", text="live note")
    page = await request(staff, {"type": "history", "order": "m1"}, "history")
    assert "note" not in {m["kind"] for m in page["messages"]}


# --- (d): a staff token carrying a buyer's id -----------------------------------------------


async def test_threads_follow_the_role_on_each_order(server):
    await _setup(server)
    st, body = await server.api("GET", "/api/v1/threads?has_messages=any", auth=token("b1", "staff"))
    assert st == 200, body
    listed = {t["order"]: t for t in body["threads"]}
    assert "m1" not in listed and {"m2", "m3"} <= set(listed), listed  # b1 is m1's buyer
    st, body = await server.api("GET", "/api/v1/threads?q=internal", auth=token("b1", "staff"))
    assert st == 200 and body["threads"] == [], body
    # a plain staff member sees the note
    st, body = await server.api("GET", "/api/v1/threads?q=internal", auth=token("boss", "staff"))
    assert [t["order"] for t in body["threads"]] == ["m1"]


async def test_a_staff_token_holding_a_slot_is_no_operator_of_that_order(server):
    """GET an order and POST a marker are operator routes: their figures count notes.
    A staff token whose id is the order's buyer is the buyer there, as on every path."""
    await _setup(server)  # m1: a text (seq 1) and a note (seq 2); b1 is its buyer
    as_buyer = token("b1", "staff")
    st, body = await server.api("GET", "/api/v1/orders/m1", auth=as_buyer)
    assert (st, body["error"]["code"], body["error"]["ref"]) == (403, "forbidden", "m1"), body
    st, body = await server.api("POST", "/api/v1/orders/m1/read", {"user": "r1", "seq": 2}, auth=as_buyer)
    assert (st, body["error"]["code"]) == (403, "forbidden"), body
    st, body = await server.api("GET", "/api/v1/orders/m1/messages", auth=as_buyer)
    assert st == 200 and [m["seq"] for m in body["messages"]] == [1]  # what the buyer sees
    boss = token("boss", "staff")  # staff with no slot there: an operator
    st, body = await server.api("GET", "/api/v1/orders/m1", auth=boss)
    assert st == 200 and body["last_seq"] == 2
    st, body = await server.api("POST", "/api/v1/orders/m1/read", {"user": "r1", "seq": 2}, auth=boss)
    assert st == 200 and body["read_seq"] == 2
    st, body = await server.api("GET", "/api/v1/orders/m3", auth=as_buyer)  # b1 holds no slot on m3
    assert st == 200


# --- (e): a bot's refreshed token no longer covers a joined order ------------------------------


async def test_bot_refresh_narrowing_its_orders_leaves_the_room(server):
    supplier = await _setup(server)
    url = server.next_ws_url()
    bot = await _open(server, url, "bot1", "bot", orders=["m1", "m2"])
    witness = await _open(server, url, "b1", "buyer")  # same instance as the bot
    await bot.join("m1")
    await bot.join("m2")
    await witness.join("m1")
    await bot.send({"type": "auth", "token": token("bot1", "bot", orders=["m2"])})
    await bot.expect("ready")
    assert (await bot.expect("left", order="m1"))["reason"] == "removed"
    await supplier.post("m1", "after the refresh")
    await witness.expect("message", text="after the refresh")
    await settled(bot)
    assert not bot.of_type("message", text="after the refresh")
    assert not bot.of_type("left", order="m2")
    r = await request(bot, {"type": "history", "order": "m1"}, "history")
    assert r["code"] == "not_found"


# --- (f): expiry on an open connection ---------------------------------------------------------


async def test_open_connection_is_closed_4401_at_exp(server):
    await server.order("m1", buyer="b1", supplier="s1", rep="r1")
    tok, exp = short_token("b1", "buyer", 1.0)
    c = await Client.open(server.next_ws_url(), tok)
    server.clients.append(c)
    await c.join("m1")
    assert await c.closed(timeout=10) == 4401
    assert time.time() >= exp - 0.05  # not before exp (the server's timer, not ours)
    err = c.of_type("error")[-1]
    assert err["code"] == "unauthorized" and "expired" in err["message"]


async def test_refreshed_token_moves_the_deadline(server):
    tok, exp = short_token("b1", "buyer", 1.0)
    c = await Client.open(server.next_ws_url(), tok)
    server.clients.append(c)
    tok2, exp2 = short_token("b1", "buyer", 2.5)
    await c.send({"type": "auth", "token": tok2})
    await c.expect("ready")
    assert await c.closed(timeout=10) == 4401
    assert time.time() >= exp2 - 0.05, "closed at the first token's exp"


# --- (g): receipts and markers never carry a note's seq to a buyer -----------------------------


async def test_receipt_to_a_buyer_is_clamped_below_notes(server):
    supplier = await _setup(server)
    buyer = await server.client("b1", "buyer")
    rep = await server.client("r1", "sales_rep")
    await buyer.join("m1")
    await supplier.join("m1")
    await _read(rep, "m1", 1)
    assert (await buyer.expect("receipt", user="r1"))["seq"] == 1
    await _read(rep, "m1", 2)  # the note
    assert await supplier.expect("receipt", user="r1", seq=2)
    assert (await supplier.post("m1", "third"))["seq"] == 3
    await _read(rep, "m1", 3)
    assert (await buyer.expect("receipt", user="r1"))["seq"] == 3
    assert [f["seq"] for f in buyer.of_type("receipt", user="r1")] == [1, 3]


async def test_joined_carries_the_others_receipts_clamped_below_notes(server):
    """`joined.receipts`: the other participants' markers, so "Seen by" survives a reload;
    a buyer never learns a note's seq there either, and staff's markers are not receipts."""
    supplier = await _setup(server)
    rep = await server.client("r1", "sales_rep")
    staff = await server.client("st", "staff")
    await _read(rep, "m1", 2)  # up to the note
    await _read(staff, "m1", 2)
    buyer = await server.client("b1", "buyer")
    # s1's marker is at the note it sent (sending moves the sender's marker)
    assert (await buyer.join("m1"))["receipts"] == [{"user": "r1", "seq": 1}, {"user": "s1", "seq": 1}]
    assert (await supplier.join("m1"))["receipts"] == [{"user": "r1", "seq": 2}]  # not one's own
    assert (await rep.join("m1"))["receipts"] == [{"user": "s1", "seq": 2}]  # b1 read nothing: left out


async def test_a_buyer_reading_past_the_end_never_gets_a_notes_seq_back(server):
    """`read` past the newest message stops at the newest one the reader may see: for a
    buyer, never a note, so neither `joined.read_seq` nor the receipt shows one."""
    supplier = await _setup(server)  # seq 1 text, seq 2 note
    for i in range(2):
        assert (await supplier.post("m1", f"internal {i}", kind="note"))["type"] == "ack"  # seqs 3, 4
    await supplier.join("m1")
    buyer = await server.client("b1", "buyer")
    assert (await buyer.join("m1"))["last_seq"] == 1
    await _read(buyer, "m1", 1_000_000)  # "read everything"
    assert (await supplier.expect("receipt", user="b1"))["seq"] == 1  # where the marker is: the text
    again = await buyer.join("m1")
    assert (again["read_seq"], again["last_seq"], again["unread"]) == (1, 1, 0), again
    other = await server.client("b1", "buyer")  # another tab, maybe on another instance
    assert (await other.join("m1"))["read_seq"] == 1
    # a reader of notes reads up to the newest message, notes included
    rep = await server.client("r1", "sales_rep")
    await _read(rep, "m1", 1_000_000)
    assert (await rep.join("m1"))["read_seq"] == 4


# --- (h): an export streams only while its reader has access -------------------------------------


async def _export_across(server, auth: str, held: tuple[asyncio.Event, asyncio.Event], change) -> list[list[dict]]:
    """The lines of m1's export as `auth`: [the first chunk, the rest], with `change()`
    run between them. The stream must end cleanly (aiohttp raises on a cut one)."""
    paused, go_on = held
    async with asyncio.timeout(TIMEOUT), aiohttp.ClientSession() as s:
        async with s.get(
            server.base + "/api/v1/orders/m1/messages?format=ndjson", headers={"Authorization": f"Bearer {auth}"}
        ) as r:
            assert r.status == 200
            await paused.wait()  # the first chunk went out; the next is not read yet
            first = [json.loads(await r.content.readline()) for _ in range(2)]
            await change()
            go_on.set()
            rest = [json.loads(line) for line in (await r.read()).splitlines() if line]
    return [first, rest]


@pytest.mark.single_only("the in-process server's store is held between export chunks")
async def test_an_export_ends_once_its_reader_is_replaced(server, monkeypatch):
    supplier = await _setup(server)  # seq 1 text, seq 2 note
    for i in range(3, 7):
        assert (await supplier.post("m1", f"text {i}"))["seq"] == i
    held = hold_export(server.app[CHAT].store, monkeypatch)
    tok = token("s1", "supplier")

    async def replace():  # from now on s1 may see nothing of m1
        await server.order("m1", buyer="b1", supplier="s2", rep="r1")
        assert (await _get(server, "/api/v1/orders/m1/messages", tok))[0] == 404
        st, _ = await server.api("POST", "/api/v1/orders/m1/messages", {"client_id": "late", "text": "SECRET"})
        assert st == 201

    first, rest = await _export_across(server, tok, held, replace)
    assert [m["seq"] for m in first] == [1, 2]
    assert rest == []  # nothing after the chunk already sent: not the history, not what came later


@pytest.mark.single_only("the in-process server's store is held between export chunks")
async def test_an_export_drops_notes_once_the_rep_is_made_the_buyer(server, monkeypatch):
    supplier = await _setup(server)  # seq 1 text, seq 2 note
    for i, kind in ((3, "note"), (4, "text"), (5, "note"), (6, "text")):
        assert (await supplier.post("m1", f"{kind} {i}", kind=kind))["seq"] == i
    held = hold_export(server.app[CHAT].store, monkeypatch)

    async def rep_becomes_buyer():  # r1's token still says sales_rep: the slot decides
        await server.order("m1", buyer="r1", supplier="s1", rep="r9")
        assert (await supplier.post("m1", "after the export began"))["seq"] == 7

    first, rest = await _export_across(server, token("r1", "sales_rep"), held, rep_becomes_buyer)
    assert [(m["seq"], m["kind"]) for m in first] == [(1, "text"), (2, "note")]
    # no note from the change on; and the export is the history as it began (seq 7 is not in it)
    assert [(m["seq"], m["kind"]) for m in rest] == [(4, "text"), (6, "text")]


# --- (i): a join racing a change of the order's participants -----------------------------------


async def test_a_removal_that_also_changes_the_status_cuts_off_first(server):
    """One PUT removes the rep and moves the status: the status message is written
    after the removal, so the rep's open socket gets `left`, never that message."""
    await _setup(server)
    rep = await server.client("r1", "sales_rep")
    await rep.join("m1")
    buyer = await server.client("b1", "buyer")
    await buyer.join("m1")
    st, body = await server.api("PUT", "/api/v1/orders/m1", {"status": "shipped", "sales_rep": None})
    assert st == 200, body
    assert (await rep.expect("left", order="m1"))["reason"] == "removed"
    status = await buyer.expect("message", kind="status")  # the room got it
    await settled(rep)
    assert not rep.of_type("message", seq=status["seq"])


def _hold_first_order_read(server, monkeypatch, order: str) -> tuple[asyncio.Event, asyncio.Event]:
    """The in-process store's next read of `order` held after it read until `go on` is
    set: (read, go on). A join whose read of the order suspends (PostgreSQL's pool),
    made deterministic: the test changes the order between that read and the join's
    subscription to the room, when the change's `left` cannot reach the joiner."""
    store = server.app[CHAT].store
    real = store.get_order
    read, go_on = asyncio.Event(), asyncio.Event()

    async def held(order_id):
        got = await real(order_id)
        if order_id == order and not read.is_set():
            read.set()
            await go_on.wait()
        return got

    monkeypatch.setattr(store, "get_order", held)
    return read, go_on


@pytest.mark.single_only("the in-process server's store is held between a join's read and its subscription")
@pytest.mark.parametrize("change", ["removed", "made_buyer"])
async def test_a_join_racing_a_change_of_participants_joins_as_what_it_is_now(server, monkeypatch, change):
    supplier = await _setup(server)  # seq 1 text, seq 2 note
    rep = await server.client("r1", "sales_rep")
    read, go_on = _hold_first_order_read(server, monkeypatch, "m1")
    await rep.send({"type": "join", "order": "m1"})
    await read.wait()  # the join read r1 as m1's sales rep
    if change == "removed":
        await server.order("m1", buyer="b1", supplier="s1", rep=None)
    else:  # r1's token still says sales_rep: the slot decides
        await server.order("m1", buyer="r1", supplier="s1", rep=None)
    go_on.set()
    if change == "removed":
        err = await rep.expect("error", ref="m1")
        assert err["code"] == "not_found"
        assert not rep.of_type("joined") and not rep.of_type("message")
    else:
        joined = await rep.expect("joined", order="m1")
        assert joined["last_seq"] == 1 and [m["kind"] for m in rep.of_type("message")] == ["text"]
    await supplier.post("m1", "after the change: note", kind="note")
    await supplier.post("m1", "after the change: text")
    await settled(rep)  # the posts were broadcast before their acks: r1 has had them by its pong
    assert not rep.of_type("message", kind="note")  # no note from the change on, live or replayed
    texts = [m["text"] for m in rep.of_type("message")]
    assert texts == ([] if change == "removed" else ["hello", "after the change: text"])


# --- the matrix: one id across roles and tokens, every path ------------------------------------

NONE, PLAIN, ALL = "none", "plain", "all"

# (what the host platform does first, token role, bot orders, expected view of m1)
PHASES = [
    (None, "staff", None, ALL),
    (None, "buyer", None, NONE),
    (None, "bot", ["m1"], ALL),
    (None, "bot", ["m2"], NONE),
    (None, "bot", "*", ALL),
    (None, "supplier", None, NONE),
    ({"sales_rep": {"id": "u", "name": "U"}}, "buyer", None, ALL),  # the slot wins: a rep here
    (
        {"buyer": {"id": "u", "name": "U"}, "sales_rep": {"id": "r1", "name": "R1"}},
        "staff",
        None,
        PLAIN,
    ),  # the slot wins: a buyer here
    ({"buyer": {"id": "b1", "name": "B1"}}, "staff", None, ALL),
    (None, "buyer", None, NONE),
]


async def _get(server, path: str, auth: str) -> tuple[int, bytes]:
    async with aiohttp.ClientSession() as s:
        async with s.get(server.base + path, headers={"Authorization": f"Bearer {auth}"}) as r:
            return r.status, await r.read()


async def test_one_id_across_roles_and_tokens(server):
    await server.order("m1", buyer="b1", supplier="s1", rep="r1")
    await server.order("m2", buyer="b2", supplier="s2", rep="r2")
    await server.order("mu", buyer="b9", supplier="u", rep=None)  # u's own order: the witness
    s1 = token("s1", "supplier")
    att_text, att_note = await _upload(server, "m1", s1), await _upload(server, "m1", s1)
    supplier = await server.client("s1", "supplier")  # also the reader whose receipts we check
    await _send(supplier, "m1", "hello", attachments=[att_text])  # 1
    await _send(supplier, "m1", "internal plan", kind="note", attachments=[att_note])  # 2
    note_seqs = {2}
    url = server.next_ws_url()
    boss = await _open(server, url, "boss", "staff")  # one sender: its events arrive in order
    for step, (change, role, orders, view) in enumerate(PHASES):
        where = (step, role, orders, view)
        if change:
            st, _ = await server.api("PUT", "/api/v1/orders/m1", change)
            assert st == 200
        tok = token("u", role, orders=orders)
        inbox = await _open(server, server.next_ws_url(), "u", role, orders=orders)
        room = await _open(server, url, "u", role, orders=orders)  # beside boss: live order known
        # join and replay
        j = await request(room, {"type": "join", "order": "m1"}, "joined")
        if view == NONE:
            assert j["type"] == "error" and j["code"] == "not_found", where
        else:
            assert j["type"] == "joined", where
            await settled(room)
            kinds = {m["seq"]: m["kind"] for m in room.of_type("message", order="m1")}
            assert (2 in kinds) == (view == ALL), (where, kinds)
            assert j["last_seq"] == (max(kinds) if kinds else 0), where
        # history over the socket, over REST, and the export
        h = await request(room, {"type": "history", "order": "m1"}, "history")
        st, body = await _get(server, "/api/v1/orders/m1/messages?format=ndjson", tok)
        st2, _ = await _get(server, "/api/v1/orders/m1/messages", tok)
        if view == NONE:
            assert h["code"] == "not_found" and st == 404 and st2 == 404, where
        else:
            assert st == 200 and st2 == 200, where
            assert any(m["kind"] == "note" for m in h["messages"]) == (view == ALL), where
            assert (b'"note"' in body) == (view == ALL), where
        # attachments
        st_text, _ = await _get(server, f"/api/v1/attachments/{att_text}", tok)
        st_note, _ = await _get(server, f"/api/v1/attachments/{att_note}", tok)
        assert (st_text, st_note) == {NONE: (404, 404), PLAIN: (200, 404), ALL: (200, 200)}[view], where
        # threads (an admin list: staff and the supplier side)
        st, body = await _get(server, "/api/v1/threads?has_messages=any", tok)
        if st == 200:
            import json

            threads = {t["order"]: t for t in json.loads(body)["threads"]}
            assert ("m1" in threads) == (view == ALL), (where, list(threads))
        else:
            assert st == 403 and role in ("buyer", "bot"), where
        # inbox: only what this identity may see, totals to match
        page = await request(inbox, {"type": "inbox"}, "inbox")
        entries = {e["order"]: e for e in page["orders"]}
        if view == NONE:
            assert "m1" not in entries, where
        if "m1" in entries and view == PLAIN:
            assert entries["m1"]["last_message"] is None or entries["m1"]["last_message"]["seq"] not in note_seqs
        assert page["total_unread"] == sum(e["unread"] for e in page["orders"]), (where, page)
        # live: a note, a text, then the witness on u's own order, all from one sender
        n = await _send(boss, "m1", f"note {step}", kind="note")
        t = await _send(boss, "m1", f"text {step}")
        note_seqs.add(n["seq"])
        await _send(boss, "mu", f"witness {step}")
        await inbox.expect("notify", order="mu")
        if view != NONE:
            await room.expect("message", order="m1", seq=t["seq"])
        await settled(room)
        live = {m["seq"] for m in room.of_type("message", order="m1")}
        assert (n["seq"] in live) == (view == ALL), where
        notified = {f["message"]["seq"] for f in inbox.of_type("notify", order="m1")}
        assert not notified & note_seqs or view == ALL, where
        if view == NONE:
            assert not notified and not inbox.of_type("unread", order="m1"), where
            # the witness's total counts u's own order only
            last = inbox.of_type("unread", order="mu")[-1]
            assert last["total"] == last["count"], (where, last)
        # receipts: the supplier reads up to the note, then the text
        await _read(supplier, "m1", n["seq"])
        await _read(supplier, "m1", t["seq"])
        if view != NONE:
            await room.expect("receipt", user="s1", seq=t["seq"])
            seen = {f["seq"] for f in room.of_type("receipt", user="s1")}
            assert (n["seq"] in seen) == (view == ALL), (where, seen)
        # u reads as this identity: a marker now, or nothing
        await _read(room, "m1", t["seq"])
        if view == ALL and role in ("staff", "bot"):
            assert any(f["order"] == "m1" for f in room.of_type("unread")), where
        await inbox.close()
        await room.close()


async def test_total_stays_right_when_markers_come_and_go(server):
    """A new marker (a bot's first read, a slot replacing it) adds to the user's total:
    it neither resets the total nor keeps the replaced marker's count. (Staff read the
    shared staff marker instead: tests/functional/test_attention.py.)"""
    supplier = await _setup(server)
    await supplier.post("m3", "for x")  # x (m3's buyer) has 1 unread
    staff = await server.client("x", "bot", orders="*")
    await _read(staff, "m1", 1)  # a marker on m1 with the note unread
    page = await request(staff, {"type": "inbox"}, "inbox")
    assert {e["order"]: e["unread"] for e in page["orders"]} == {"m1": 1, "m3": 1}
    assert page["total_unread"] == 2, page
    await server.order("m1", buyer="b1", supplier="s1", rep="x")  # x becomes the rep
    page = await request(staff, {"type": "inbox"}, "inbox")
    assert {e["order"]: e["unread"] for e in page["orders"]} == {"m1": 2, "m3": 1}
    assert page["total_unread"] == 3, page
