"""Offline and lost frames: a message typed during an outage arrives exactly once, a
read lost with its socket is sent again, and a resume takes the server's word."""

from __future__ import annotations

import asyncio
import json
import re
from urllib.parse import urlencode

import pytest
from playwright.async_api import expect

from tests.browser.conftest import ChatPage, api, put_order
from tests.browser.test_chat import BEA, RITA, SAM
from tests.support.procs import ServerProc
from tests.support.wait import wait_for

RESTART_WAIT_MS = 30_000  # reconnect backoff (with jitter) tops out at 15 s


@pytest.fixture
async def chatd_proc(tmp_path):
    """chatd as a child process: killed and restarted on the same port and SQLite file."""
    proc = ServerProc(tmp_path)
    await proc.astart()
    yield proc
    await asyncio.to_thread(proc.stop)


async def stored_texts(base: str, order: str) -> list[str]:
    status, data = await api(base, "GET", f"/api/v1/orders/{order}/messages")
    assert status == 200, data
    return [m["text"] for m in data["messages"]]


async def test_message_sent_while_server_is_down_is_delivered_exactly_once(chatd_proc, open_chat):
    base = chatd_proc.base
    await put_order(base, "o-offline")
    buyer = await open_chat(base, "o-offline", BEA)
    supplier = await open_chat(base, "o-offline", SAM)
    await buyer.say("Before the outage")
    await expect(supplier.message("Before the outage")).to_be_visible()

    await chatd_proc.akill()  # kill -9: sockets torn down, nothing said
    for page in (buyer, supplier):
        await expect(page.conn).to_have_text("Reconnecting…")
    await buyer.say("Sent while offline")
    pending = buyer.pending.filter(has_text="Sent while offline")
    await expect(pending).to_have_count(1)
    await expect(pending).to_contain_text("Waiting for connection…")
    await buyer.screenshot("buyer-offline.png")

    await chatd_proc.astart()  # same port, same database file
    await expect(supplier.message("Sent while offline")).to_be_visible(timeout=RESTART_WAIT_MS)
    await expect(buyer.pending).to_have_count(0, timeout=RESTART_WAIT_MS)
    await expect(buyer.message("Sent while offline")).to_have_attribute("data-seq", "2")
    for page in (buyer, supplier):
        await expect(page.conn).to_be_hidden(timeout=RESTART_WAIT_MS)

    await supplier.say("Got it, thanks")  # live again, both ways
    await expect(buyer.message("Got it, thanks")).to_be_visible()
    want = ["Before the outage", "Sent while offline", "Got it, thanks"]
    for page in (buyer, supplier):
        assert await page.texts() == want
    assert await stored_texts(base, "o-offline") == want


async def test_lost_ack_is_retried_with_the_same_client_id_and_not_doubled(server, open_chat):
    await put_order(server.base, "o-lost-ack")
    supplier = await open_chat(server.base, "o-lost-ack", SAM)
    sends: list[dict] = []
    acks: list[dict] = []
    lost = {"pending": True}

    def route(ws):
        """Between the buyer's page and chatd: drop the first ack (and the echo
        of that message), then cut the connection, as a flaky network would."""
        upstream = ws.connect_to_server()
        cut = {"done": False}

        def to_server(raw):
            frame = json.loads(raw)
            if frame.get("type") == "send":
                sends.append(frame)
            upstream.send(raw)

        def to_page(raw):
            if cut["done"]:
                return
            frame = json.loads(raw)
            if lost["pending"] and frame.get("type") == "message" and frame.get("text") == "Is the ack lost?":
                return
            if lost["pending"] and frame.get("type") == "ack":
                lost["pending"] = False
                cut["done"] = True
                asyncio.ensure_future(ws.close(code=4000, reason="network hiccup"))
                asyncio.ensure_future(upstream.close())
                return
            if frame.get("type") == "ack":
                acks.append(frame)
            ws.send(raw)

        ws.on_message(to_server)
        upstream.on_message(to_page)

    async def setup(ctx):
        await ctx.route_web_socket(re.compile(r"/ws$"), route)

    buyer = await open_chat(server.base, "o-lost-ack", BEA, setup=setup)
    await buyer.say("Is the ack lost?")

    await expect(supplier.message("Is the ack lost?")).to_be_visible()
    await expect(buyer.pending).to_have_count(0, timeout=RESTART_WAIT_MS)
    await expect(buyer.message("Is the ack lost?")).to_have_count(1)
    await supplier.say("No double here")
    await expect(buyer.message("No double here")).to_be_visible()

    assert [f["text"] for f in sends] == ["Is the ack lost?", "Is the ack lost?"]
    assert sends[0]["client_id"] == sends[1]["client_id"]  # the retry is the same message
    assert [(a["client_id"], a["duplicate"]) for a in acks] == [(sends[0]["client_id"], True)]
    for page in (buyer, supplier):
        assert await page.texts() == ["Is the ack lost?", "No double here"]
    assert await stored_texts(server.base, "o-lost-ack") == ["Is the ack lost?", "No double here"]


async def test_an_unreachable_server_is_said_plainly_not_connecting_for_ever(server, open_chat):
    async def refuse(ctx) -> None:  # every WebSocket to chatd fails at once, as to a server that is down
        await ctx.route_web_socket(re.compile(r"/ws"), lambda ws: asyncio.ensure_future(ws.close(code=1006)))

    await put_order(server.base, "o-down")
    chat = await open_chat(server.base, "o-down", BEA, wait_online=False, setup=refuse)
    await expect(chat.page.locator(".chatd-conn")).to_have_text("Cannot reach the chat server. Retrying…")
    await expect(chat.page.locator(".chatd-empty")).to_have_text("The chat server cannot be reached right now.")
    await expect(chat.page.locator(".chatd[data-unreachable]")).to_have_count(1)


async def test_a_read_lost_with_its_socket_is_sent_again_after_the_resume(server, open_chat):
    """The supplier comes back to the tab: the widget writes its `read`, and the
    connection dies before the server gets it. After the resume the server still
    counts the messages unread; the widget reads again what is on screen."""
    await put_order(server.base, "o-lost-read")
    buyer = await open_chat(server.base, "o-lost-read", BEA)
    cut = {"armed": False, "done": False}

    def route(ws):
        upstream = ws.connect_to_server()

        def to_server(raw):
            if cut["armed"] and not cut["done"] and json.loads(raw).get("type") == "read":
                cut["done"] = True  # swallowed: the network goes with it
                asyncio.ensure_future(ws.close(code=4000, reason="network hiccup"))
                asyncio.ensure_future(upstream.close())
                return
            upstream.send(raw)

        ws.on_message(to_server)

    async def setup(ctx):
        await ctx.route_web_socket(re.compile(r"/ws$"), route)

    supplier = await open_chat(server.base, "o-lost-read", SAM, setup=setup)
    await supplier.set_hidden(True)  # a background tab: nothing is seen
    await buyer.say("Unseen 1")
    await buyer.say("Unseen 2")
    await expect(supplier.message("Unseen 2")).to_be_attached()
    await expect(supplier.badge).to_have_text("2")

    cut["armed"] = True
    await supplier.set_hidden(False)  # on screen: read, but the frame is lost
    await wait_for(lambda: cut["done"], what="the read to be written and lost")
    await expect(supplier.badge).to_be_hidden(timeout=RESTART_WAIT_MS)
    await supplier.online()
    c = await server.client("sam", "supplier", name="Sam Supplier")
    joined = await c.join("o-lost-read")
    assert joined["unread"] == 0 and joined["read_seq"] == 2


async def test_a_passing_error_answering_join_is_retried_not_the_end_of_the_chat(server, open_chat):
    """The store cannot serve the first joins (`unavailable`, then `rate_limited`):
    the widget keeps trying with its backoff instead of closing the chat for good."""
    await put_order(server.base, "o-join-retry")
    buyer = await open_chat(server.base, "o-join-retry", BEA)
    await buyer.say("Still here?")
    refusals = ["unavailable", "rate_limited"]
    joins: list[dict] = []

    def route(ws):
        upstream = ws.connect_to_server()

        def to_server(raw):
            frame = json.loads(raw)
            if frame.get("type") == "join":
                joins.append(frame)
                if refusals:
                    code = refusals.pop(0)
                    ws.send(
                        json.dumps(
                            {"type": "error", "code": code, "message": f"{code}: try later", "ref": frame["order"]}
                        )
                    )
                    return
            upstream.send(raw)

        ws.on_message(to_server)

    async def setup(ctx):
        await ctx.route_web_socket(re.compile(r"/ws$"), route)

    supplier = await open_chat(server.base, "o-join-retry", SAM, wait_online=False, setup=setup)
    await expect(supplier.message("Still here?")).to_be_visible(timeout=RESTART_WAIT_MS)
    await supplier.online()
    await expect(supplier.page.get_by_role("alert")).to_have_count(0)  # no "not available"
    assert len(joins) == 3 and not refusals
    await buyer.say("Yes")
    await expect(supplier.message("Yes")).to_be_visible()


async def test_notes_held_from_before_a_role_change_are_not_shown_to_the_buyer(server, open_chat):
    """Rita (sales rep) sees a note; while her page is offline the platform makes her the
    order's buyer. Her widget resumes (join with since) as the buyer: the notes it still
    holds go, a buyer's page never shows one."""
    await put_order(server.base, "o-role")
    sam = await server.client("sam", "supplier", name="Sam Supplier")
    await sam.post("o-role", "NOTE-SECRET: our margin is 40%", kind="note")
    await sam.post("o-role", "Public: ships Friday")

    net = {"up": True}
    links: list = []

    def route(ws):
        if not net["up"]:  # the network is down: every attempt fails at once
            asyncio.ensure_future(ws.close(code=1006))
            return
        upstream = ws.connect_to_server()
        links.append((ws, upstream))

    async def setup(ctx):
        await ctx.route_web_socket(re.compile(r"/ws$"), route)

    rita = await open_chat(server.base, "o-role", RITA, setup=setup)
    await expect(rita.message("NOTE-SECRET")).to_be_visible()
    await expect(rita.message("Public: ships Friday")).to_be_visible()

    net["up"] = False  # the connection drops (no `left` can reach the page)
    for ws, upstream in links:
        await upstream.close()
        await ws.close(code=4000, reason="network gone")
    await expect(rita.conn).to_be_visible()

    body = {
        "buyer": {"id": "rita", "name": "Rita Rep"},  # Rita is the buyer now
        "supplier": {"id": "sam", "name": "Sam Supplier"},
        "sales_rep": {"id": "ron", "name": "Ron Rep"},
    }
    status, data = await api(server.base, "PUT", "/api/v1/orders/o-role", body)
    assert status in (200, 201), data

    net["up"] = True
    await rita.online()  # resumed as the buyer
    await expect(rita.conn).to_be_hidden(timeout=RESTART_WAIT_MS)
    await expect(rita.note_toggle).to_have_count(0)
    await expect(rita.message("Public: ships Friday")).to_be_visible()
    await expect(rita.page.locator(".chatd-msg--note")).to_have_count(0)
    await expect(rita.root).not_to_contain_text("NOTE-SECRET")
    assert await rita.texts() == ["Public: ships Friday"]


async def test_a_resume_in_a_background_tab_brings_new_messages_not_read_ones(server, open_chat):
    """The buyer's tab is in the background when the connection drops; 30 messages come
    meanwhile. The resume's replay is new as if it had come live: the divider before the
    first, "30 new", one summary for screen readers, the view kept on the first one; back
    on the tab, only what is on screen is read."""
    order = "o-resume-new"
    await put_order(server.base, order)
    bot = await server.client("bot1", "bot", name="Delivery Bot", orders="*")
    for i in range(1, 21):
        assert (await bot.post(order, f"Before {i:02d}"))["type"] == "ack"
    status, data = await api(server.base, "POST", f"/api/v1/orders/{order}/read", {"user": "bea", "seq": 20})
    assert status == 200, data

    net = {"up": True}
    links: list = []

    def route(ws):
        if not net["up"]:
            asyncio.ensure_future(ws.close(code=1006))
            return
        links.append((ws, ws.connect_to_server()))

    async def setup(ctx):
        await ctx.route_web_socket(re.compile(r"/ws$"), route)

    buyer = await open_chat(server.base, order, BEA, height=520, setup=setup)
    await expect(buyer.message("Before 20")).to_be_in_viewport()
    await expect(buyer.badge).to_be_hidden()
    await buyer.set_hidden(True)  # a background tab
    net["up"] = False
    for ws, upstream in links:
        await upstream.close()
        await ws.close(code=4000, reason="network gone")
    await expect(buyer.conn).to_be_visible()
    for i in range(1, 31):
        assert (await bot.post(order, f"Away {i:02d}"))["type"] == "ack"

    net["up"] = True
    await expect(buyer.message("Away 30")).to_be_attached(timeout=RESTART_WAIT_MS)
    await buyer.online()
    await expect(buyer.badge).to_have_text("30")
    await expect(buyer.page.locator(".chatd-divider + [role=listitem]")).to_contain_text("Away 01")
    jump = buyer.page.locator(".chatd-jump")
    await expect(jump).to_have_text("30 new")
    await expect(buyer.page.locator(".chatd-sr[aria-live]")).to_contain_text("30 new messages. Delivery Bot: Away 30")
    await expect(buyer.message("Away 01")).to_be_in_viewport()
    await expect(buyer.message("Away 30")).not_to_be_in_viewport()

    await buyer.set_hidden(False)  # back to the tab: what is on screen is read, the rest is not
    await expect(buyer.badge).not_to_have_text("30")
    await expect(buyer.message("Away 30")).not_to_be_in_viewport()
    unread = int(await buyer.badge.inner_text())
    assert 0 < unread < 30
    await expect(jump).to_have_text(f"{unread} new")
    c = await server.client("bea", "buyer", name="Bea Buyer")
    joined = await c.join(order)
    assert joined["unread"] == unread and joined["read_seq"] == 50 - unread


async def test_two_tabs_offline_keep_both_queued_messages_and_send_each_once(server, browser, host_site):
    """Bea has one order open in two tabs when the network goes; she types in each. The
    tabs share one stored queue: tab A closed while offline leaves its message to tab B,
    which sends both when back; a tab opened later sends nothing again."""
    order = "o-two-tabs"
    await put_order(server.base, order)
    net = {"up": True}
    links: list = []

    def route(ws):
        if not net["up"]:
            asyncio.ensure_future(ws.close(code=1006))
            return
        links.append((ws, ws.connect_to_server()))

    ctx = await browser.new_context()
    try:
        await ctx.route_web_socket(re.compile(r"/ws$"), route)
        url = f"{host_site}/host?{urlencode({'chatd': server.base, 'order': order, 'token': BEA})}"
        errors: list[str] = []

        async def tab() -> ChatPage:
            page = await ctx.new_page()
            page.on("pageerror", lambda e: errors.append(str(e)))
            await page.goto(url)
            chat = ChatPage(ctx, page)
            await chat.online()
            return chat

        a, b = await tab(), await tab()
        net["up"] = False
        for ws, upstream in links:
            await upstream.close()
            await ws.close(code=4000, reason="network gone")
        for chat in (a, b):
            await expect(chat.conn).to_be_visible()
        await a.say("Typed in tab A")
        await expect(a.pending).to_have_count(1)
        await b.say("Typed in tab B")
        await expect(b.pending).to_have_count(1)
        await a.page.close()  # before the network is back

        net["up"] = True
        await b.page.evaluate("() => window.dispatchEvent(new Event('online'))")
        await expect(b.message("Typed in tab A")).to_have_attribute("data-seq", "1", timeout=RESTART_WAIT_MS)
        await expect(b.message("Typed in tab B")).to_have_attribute("data-seq", "2")
        await expect(b.pending).to_have_count(0)
        assert await stored_texts(server.base, order) == ["Typed in tab A", "Typed in tab B"]

        later = await tab()  # nothing left queued: nothing sent twice
        await expect(later.messages).to_have_count(2)
        await expect(later.pending).to_have_count(0)
        queued = await later.page.evaluate("() => Object.keys(localStorage).filter(k => k.startsWith('chatd:'))")
        assert queued == []
        assert await stored_texts(server.base, order) == ["Typed in tab A", "Typed in tab B"]
        assert not errors, errors
    finally:
        await ctx.close()


async def test_a_message_typed_while_an_older_one_waits_for_its_retry_goes_after_it(server, open_chat):
    """chatd refuses a send for a passing reason (rate_limited: more than its burst): that
    message is sent again 3 s later, and one typed meanwhile waits behind it, so the chat
    keeps the order they were typed in."""
    await put_order(server.base, "o-burst")
    refused = asyncio.Event()

    def route(ws):
        upstream = ws.connect_to_server()

        def to_server(raw):
            frame = json.loads(raw)
            if frame.get("type") == "send" and frame.get("text") == "Third" and not refused.is_set():
                refused.set()  # as past the send burst
                error = {"type": "error", "code": "rate_limited", "message": "slow down", "ref": frame["client_id"]}
                ws.send(json.dumps(error))
                return
            upstream.send(raw)

        ws.on_message(to_server)

    async def setup(ctx):
        await ctx.clock.install()
        await ctx.route_web_socket(re.compile(r"/ws$"), route)

    buyer = await open_chat(server.base, "o-burst", BEA, setup=setup)
    await buyer.page.evaluate("() => ['First', 'Second', 'Third'].forEach(t => window.widget.send(t))")
    await asyncio.wait_for(refused.wait(), 10)
    await expect(buyer.messages).to_have_count(2)
    await buyer.say("Fourth")
    await expect(buyer.pending).to_have_count(2)
    await buyer.context.clock.fast_forward(3_000)  # the retry
    await expect(buyer.messages).to_have_count(4)
    await expect(buyer.pending).to_have_count(0)
    want = ["First", "Second", "Third", "Fourth"]
    assert await buyer.texts() == want
    assert await stored_texts(server.base, "o-burst") == want
