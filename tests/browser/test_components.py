"""The components in Chromium: a badge per order, the bell and the inbox on a host's
orders page, over one WebSocket, kept live by another user's messages.

Screenshots land in artifacts/browser/ (gitignored): look at them.
"""

from __future__ import annotations

import asyncio
import json
import re
from datetime import UTC, datetime, timedelta

from playwright.async_api import expect

from tests.browser.conftest import axe_check, order_id_layout, put_order, socket_route
from tests.support.client import token

BEA = token("bea", "buyer", "Bea Buyer")
SAM = token("sam", "supplier", "Sam Supplier")
STAFF = token("stella", "staff", "Stella Staff")
PHONE = {"width": 390, "height": 844}


def console_errors(*pages) -> list[str]:
    return [m for p in pages for m in p.console if m.startswith("error")]


async def test_badges_and_bell_follow_the_other_side_live(server, open_chat):
    for order in ("o-b1", "o-b2"):
        await put_order(server.base, order)
    orders = await open_chat(server.base, "o-b1,o-b2", BEA, path="/components")
    page = orders.page
    bell = page.get_by_role("button", name=re.compile("^Messages, "))
    await expect(bell).to_have_attribute("aria-label", "Messages, 0 unread")
    card1 = page.locator(".card[data-order=o-b1] button")
    await expect(card1).to_have_attribute("data-unread", "0")

    sam = await open_chat(server.base, "o-b1", SAM)
    await sam.say("Your panels are packed.")
    await sam.say("Pickup is at 3 pm.")
    await expect(card1.locator(".chatd-cbadge")).to_have_text("2")
    await expect(card1).to_have_attribute("data-unread", "2")  # the host turns its button red
    await expect(page.locator(".card[data-order=o-b2] button")).to_have_attribute("data-unread", "0")
    await expect(bell).to_have_attribute("aria-label", "Messages, 2 unread")

    await bell.click()
    items = page.locator(".chatd-bell-item")
    await expect(items).to_have_count(1)
    await expect(items.first).to_contain_text("o-b1")
    await expect(items.first).to_contain_text("Sam Supplier: Pickup is at 3 pm.")
    await orders.screenshot("components-bell-desktop.png")
    await axe_check(page, "bell open")

    # a dispute on the other order: the bell lists it, marked
    staff = await open_chat(server.base, "o-b2", STAFF)
    await staff.page.evaluate("() => window.widget.openDispute('Wrong colour')")
    await expect(items).to_have_count(2)
    await expect(items.first).to_contain_text("o-b2")
    await expect(items.first.locator(".chatd-dispute-mark")).to_have_text("Dispute")
    await items.nth(1).click()
    assert await page.evaluate("() => window.opened") == ["o-b1"]
    await expect(page.locator(".chatd-bell-panel")).to_be_hidden()

    # reading the order elsewhere clears the badge here
    bea = await open_chat(server.base, "o-b1", BEA)
    await expect(bea.message("Pickup is at 3 pm.")).to_be_visible()
    await expect(card1).to_have_attribute("data-unread", "0")
    await expect(card1.locator(".chatd-cbadge")).to_be_hidden()
    assert len(orders.sockets) == 1, orders.sockets  # every component of the page on one WebSocket
    assert not console_errors(orders, sam, staff, bea)


async def test_a_badge_counts_an_order_beyond_the_first_inbox_page(server, open_chat):
    """The feed asks for the inbox's newest 100 orders; an order with older activity is
    not among them, and its badge must still show its unread."""
    await put_order(server.base, "o-old")
    sam = await server.client("sam", "supplier", name="Sam Supplier")
    assert (await sam.post("o-old", "Did the replacement parts arrive?"))["type"] == "ack"
    bot = await server.client("bot1", "bot", name="Delivery Bot", orders="*")
    for i in range(101):  # newer activity in more orders than the first page holds
        await put_order(server.base, f"o-new{i}")
        assert (await bot.post(f"o-new{i}", "Shipped"))["type"] == "ack"
    orders = await open_chat(server.base, "o-old,o-new100", BEA, path="/components")
    card = orders.page.locator(".card[data-order=o-old] button")
    await expect(card).to_have_attribute("data-unread", "1")
    await expect(card.locator(".chatd-cbadge")).to_have_text("1")
    await expect(orders.page.locator(".card[data-order=o-new100] button")).to_have_attribute("data-unread", "1")
    bell = orders.page.get_by_role("button", name=re.compile("^Messages, "))
    # the name says what the badge shows (a speech user says what they see); the count is exact
    await expect(bell).to_have_attribute("aria-label", "Messages, 99+ unread")
    await expect(bell.locator(".chatd-cbadge")).to_have_text("99+")
    await expect(orders.page.locator("#bell")).to_have_attribute("data-unread", "102")
    # and live: another message there counts on
    assert (await sam.post("o-old", "They ship today otherwise."))["type"] == "ack"
    await expect(card).to_have_attribute("data-unread", "2")
    assert not console_errors(orders)


async def test_the_inbox_says_older_orders_are_not_loaded_and_finds_them(server, open_chat):
    """130 orders: the inbox loads the newest 100 and never passes them for all; an order id
    typed in full is asked for directly, "Search older orders" looks through the rest."""
    bot = await server.client("bot1", "bot", name="Delivery Bot", orders="*")
    for i in range(130):
        await put_order(server.base, f"o-m{i:03d}")
        text = f"Old news {i}" if i < 10 else f"Update {i}"
        assert (await bot.post(f"o-m{i:03d}", text))["type"] == "ack"
    orders = await open_chat(server.base, "o-m129", BEA, path="/components", width=1200, height=900)
    page = orders.page
    inbox = page.locator("#inbox")
    rows = inbox.locator(".chatd-inbox-row")
    note = inbox.locator(".chatd-inbox-more-note")
    await expect(rows).to_have_count(100)
    await expect(note).to_have_text("Older orders are not loaded yet.")
    await inbox.get_by_role("button", name="Unread", exact=True).click()
    await expect(note).to_have_text("Only the 100 orders loaded were searched. 30 more unread in older orders.")
    await inbox.get_by_role("button", name="Unread", exact=True).click()

    search = inbox.get_by_label("Search messages")
    await search.fill("o-m005")  # an id in full: asked for with `only`
    await expect(rows).to_have_count(1)
    await expect(rows.first).to_contain_text("Old news 5")
    await search.fill("old news 7")  # only in an older order
    await expect(inbox.locator(".chatd-inbox-empty")).to_have_text("No order matches among the 101 orders loaded.")
    await expect(note).to_have_text("Older orders are not searched yet.")
    await search.fill("old news")
    await expect(rows).to_have_count(1)  # the one asked for by id
    await expect(note).to_have_text("Only the 101 orders loaded were searched.")
    await inbox.get_by_role("button", name="Search older orders").click()
    await expect(rows).to_have_count(10)
    await expect(inbox.locator(".chatd-inbox-more")).to_be_hidden()  # all loaded now
    await search.fill("")
    await expect(rows).to_have_count(130)
    await expect(rows.last).to_have_attribute("data-order", "o-m000")
    await axe_check(page, "inbox with older orders", within=["#inbox > .chatd-host", ".chatd-inbox"])
    assert not console_errors(orders)


async def test_show_older_orders_pages_through_the_inbox(server, open_chat):
    """Without a search, "Show older orders" fetches the next page, until the last; a page
    the server refuses for a passing reason (the read bucket) is asked for again."""
    bot = await server.client("bot1", "bot", name="Delivery Bot", orders="*")
    for i in range(105):
        await put_order(server.base, f"o-p{i:03d}")
        assert (await bot.post(f"o-p{i:03d}", f"Update {i}"))["type"] == "ack"
    pages: list[dict] = []

    def route(ws):
        upstream = ws.connect_to_server()

        def to_server(raw):
            frame = json.loads(raw)
            if frame.get("type") == "inbox" and "cursor" in frame:
                pages.append(frame)
                if len(pages) == 1:  # the first ask is refused, as by an empty read bucket
                    ws.send(json.dumps({"type": "error", "code": "rate_limited", "message": "too many reads"}))
                    return
            upstream.send(raw)

        ws.on_message(to_server)

    async def setup(ctx):
        await ctx.route_web_socket(re.compile(r"/ws$"), route)

    orders = await open_chat(server.base, "o-p104", BEA, path="/components", width=1200, height=900, setup=setup)
    inbox = orders.page.locator("#inbox")
    rows = inbox.locator(".chatd-inbox-row")
    await expect(rows).to_have_count(100)
    await expect(rows.last).to_have_attribute("data-order", "o-p005")
    await inbox.get_by_role("button", name="Show older orders").click()
    await expect(rows).to_have_count(105)
    await expect(rows.last).to_have_attribute("data-order", "o-p000")
    await expect(inbox.locator(".chatd-inbox-more")).to_be_hidden()
    assert len(pages) == 2 and pages[0] == pages[1]
    assert not console_errors(orders)


async def test_bell_and_badges_on_a_phone(server, open_chat):
    await put_order(server.base, "o-p1")
    orders = await open_chat(server.base, "o-p1", BEA, path="/components", **PHONE)
    sam = await open_chat(server.base, "o-p1", SAM)
    await sam.say("The invoice is attached.")
    bell = orders.page.get_by_role("button", name=re.compile("^Messages, "))
    await expect(bell).to_have_attribute("aria-label", "Messages, 1 unread")
    await bell.click()
    panel = orders.page.locator(".chatd-bell-panel")
    await expect(panel).to_be_visible()
    box = await panel.bounding_box()
    assert box and box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"], box  # on screen
    await orders.screenshot("components-bell-phone.png")
    await axe_check(orders.page, "bell, phone")
    await orders.page.keyboard.press("Escape")
    await expect(panel).to_be_hidden()
    assert not console_errors(orders, sam)


async def test_inbox_and_bell_keep_an_order_id_on_one_line_on_a_phone(server, open_chat):
    """Status, dispute and waiting chips share the row with the id: they wrap, the id does not."""
    long_id = "LONG-" + "9" * 120
    ids = ("PO-2024-000123-DE", long_id)
    for order in ids:
        await put_order(server.base, order, status="shipped")
        c = await server.client("bea", "buyer", name="Bea Buyer")
        await c.join(order)
        await c.post(order, "Two boxes arrived damaged")
        await c.send({"type": "dispute", "order": order, "action": "open", "client_id": "d-" + order[:8]})
        await c.expect("ack")
        await c.close()
    orders = await open_chat(server.base, ",".join(ids), SAM, path="/components", **PHONE)
    rows = orders.page.locator(".chatd-inbox-row")
    await expect(rows).to_have_count(2)
    await expect(rows.locator(".chatd-dispute-mark")).to_have_count(2)
    await expect(rows.locator(".chatd-awaiting")).to_have_count(2)
    await orders.page.locator("#inbox").scroll_into_view_if_needed()
    await orders.screenshot("components-inbox-long-ids-phone.png")
    layout = await order_id_layout(rows.locator(".chatd-inbox-order"))
    assert sorted(x["id"] for x in layout) == sorted(ids), layout
    assert all(x["lines"] == 1 and x["inside"] for x in layout), layout
    await orders.page.get_by_role("button", name=re.compile("^Messages, ")).click()
    items = orders.page.locator(".chatd-bell-item")
    await expect(items).to_have_count(2)
    layout = await order_id_layout(items.locator(".chatd-bell-order"))
    assert all(x["lines"] == 1 and x["inside"] for x in layout), layout
    assert not console_errors(orders)


async def test_inbox_lists_searches_filters_and_opens_the_chat(server, open_chat):
    for order in ("o-i1", "o-i2", "o-i3"):
        await put_order(server.base, order)
    sam1 = await open_chat(server.base, "o-i1", SAM)
    await sam1.say("Quote for the LED panels attached.")
    sam2 = await open_chat(server.base, "o-i2", SAM)
    await sam2.say("Shipping on Monday.")
    orders = await open_chat(server.base, "o-i1,o-i2,o-i3", BEA, path="/components", width=1200, height=900)
    page = orders.page
    rows = page.locator(".chatd-inbox-row")
    await expect(rows).to_have_count(3)
    await expect(rows.first).to_have_attribute("data-order", "o-i2")  # newest activity first
    await expect(rows.first).to_contain_text("Shipping on Monday.")
    await expect(rows.first.locator(".chatd-cbadge")).to_have_text("1")
    await expect(rows.first.locator(".chatd-status")).to_have_text("Open")

    # live: a new message moves its order to the top
    await sam1.say("Can you confirm the quantity?")
    await expect(rows.first).to_have_attribute("data-order", "o-i1")
    await expect(rows.first.locator(".chatd-cbadge")).to_have_text("2")

    # search and filters
    search = page.get_by_label("Search messages")
    await search.fill("monday")
    await expect(rows).to_have_count(1)
    await expect(rows.first).to_have_attribute("data-order", "o-i2")
    await search.fill("")
    await page.get_by_role("button", name="Unread", exact=True).click()
    await expect(rows).to_have_count(2)
    await page.get_by_role("button", name="Unread", exact=True).click()
    await expect(rows).to_have_count(3)

    # desktop: the chat opens beside the list, and reading it clears the row
    await rows.filter(has_text="o-i1").click()
    chat = page.locator(".chatd-inbox-chat .chatd-list")
    await expect(chat.locator("[role=listitem]").filter(has_text="confirm the quantity")).to_be_visible()
    await expect(page.locator(".chatd-inbox-list")).to_be_visible()
    await expect(rows.filter(has_text="o-i1").locator(".chatd-cbadge")).to_have_count(0)
    await orders.screenshot("components-inbox-desktop.png")
    await axe_check(page, "inbox, desktop")
    assert not console_errors(orders, sam1, sam2)


async def test_inbox_on_a_phone_opens_the_chat_in_place_of_the_list(server, open_chat):
    await put_order(server.base, "o-ph1")
    await put_order(server.base, "o-ph2")
    orders = await open_chat(server.base, "o-ph1,o-ph2", BEA, path="/components", **PHONE)
    page = orders.page
    sam = await open_chat(server.base, "o-ph2", SAM)
    await sam.say("Delivery slot tomorrow 9-11?")
    rows = page.locator(".chatd-inbox-row")
    await expect(rows.first).to_have_attribute("data-order", "o-ph2")
    await page.locator("#inbox").scroll_into_view_if_needed()
    await orders.screenshot("components-inbox-phone-list.png")
    await rows.first.click()
    await expect(page.locator(".chatd-inbox-list")).to_be_hidden()
    got = page.locator(".chatd-inbox-chat [role=listitem]").filter(has_text="Delivery slot")
    await expect(got).to_be_visible()
    await page.locator(".chatd-inbox-chat").get_by_label("Message", exact=True).fill("Yes, 9-11 works.")
    await page.locator(".chatd-inbox-chat").get_by_label("Message", exact=True).press("Enter")
    await expect(sam.message("9-11 works")).to_be_visible()
    await orders.screenshot("components-inbox-phone-chat.png")
    await axe_check(page, "inbox chat, phone")
    await page.get_by_role("button", name="All orders").click()
    await expect(page.locator(".chatd-inbox-list")).to_be_visible()
    await expect(rows.first).to_contain_text("Yes, 9-11 works.")  # the page's own message, too
    assert not console_errors(orders, sam)


async def test_the_supplier_inbox_filters_orders_awaiting_a_reply(server, open_chat):
    for order in ("o-w1", "o-w2"):
        await put_order(server.base, order)
    bea1 = await open_chat(server.base, "o-w1", BEA)
    await bea1.say("When does the pallet ship?")  # the buyer waits for an answer on o-w1
    bea2 = await open_chat(server.base, "o-w2", BEA)
    await bea2.say("Thanks!")  # an acknowledgement: nobody waits on o-w2
    orders = await open_chat(server.base, "o-w1,o-w2", SAM, path="/components", width=1200, height=900)
    page = orders.page
    rows = page.locator(".chatd-inbox-row")
    await expect(rows).to_have_count(2)
    await expect(rows.filter(has_text="o-w1").locator(".chatd-awaiting")).to_have_text("Awaiting reply")
    await expect(rows.filter(has_text="o-w2").locator(".chatd-awaiting")).to_have_count(0)
    awaiting = page.get_by_role("button", name="Awaiting reply", exact=True)
    await awaiting.click()
    await expect(rows).to_have_count(1)
    await expect(rows.first).to_have_attribute("data-order", "o-w1")
    # the buyer asks on o-w2 too: the filtered list follows (the inbox is asked again)
    await bea2.say("Also, is the invoice ready?")
    await expect(rows).to_have_count(2)
    buyer_view = await open_chat(server.base, "o-w1,o-w2", BEA, path="/components", width=1200, height=900)
    await expect(buyer_view.page.locator(".chatd-inbox-row")).to_have_count(2)
    await expect(buyer_view.page.get_by_role("button", name="Awaiting reply", exact=True)).to_be_hidden()
    await expect(buyer_view.page.locator(".chatd-awaiting")).to_have_count(0)  # buyers never see the clock
    await orders.screenshot("components-inbox-awaiting.png")
    assert not console_errors(orders, bea1, bea2, buyer_view)


async def test_an_expired_token_is_replaced_once_by_the_pages_token_function(server, open_chat):
    """The components' WebSocket, refused for an expired token (4401), asks the page's
    token function once more, as the chat does; a second refusal in a row is final."""
    await put_order(server.base, "o-t1")
    expired = token("bea", "buyer", "Bea Buyer", ttl_s=-10)
    orders = await open_chat(server.base, "o-t1", f"{expired},{BEA}", path="/components")
    page = orders.page
    bell = page.get_by_role("button", name=re.compile("^Messages"))
    await expect(bell).to_have_attribute("aria-label", "Messages, 0 unread")
    sam = await open_chat(server.base, "o-t1", SAM)
    await sam.say("The crates ship today.")
    await expect(page.locator(".card[data-order=o-t1] button")).to_have_attribute("data-unread", "1")
    assert await page.evaluate("() => window.tokenCalls") == 2

    stale = await open_chat(server.base, "o-t1", f"{expired},{expired}", path="/components")
    stale_bell = stale.page.get_by_role("button", name=re.compile("^Messages"))
    await expect(stale_bell).to_have_attribute("aria-label", re.compile("session has expired"))
    assert await stale.page.evaluate("() => window.tokenCalls") == 2  # one retry, then no more
    assert len(stale.sockets) == 2, stale.sockets


async def test_a_silently_dead_connection_is_noticed_and_the_network_coming_back_reconnects(server, open_chat):
    """The components' WebSocket goes quiet without a close frame (a Wi-Fi or NAT drop): after
    35 s without a frame, despite a `ping`, it reconnects and the counts catch up. A close
    while the network is gone waits for no backoff once the browser says it is online."""
    await put_order(server.base, "o-quiet")
    links: list[dict] = []

    def route(ws):
        upstream = ws.connect_to_server()
        link = {"dead": False, "ws": ws, "upstream": upstream, "pings": 0}
        links.append(link)

        def to_server(raw):
            if json.loads(raw).get("type") == "ping":
                link["pings"] += 1
            if not link["dead"]:
                upstream.send(raw)

        def to_page(raw):
            if not link["dead"]:
                ws.send(raw)

        ws.on_message(to_server)
        upstream.on_message(to_page)
        upstream.on_close(
            lambda code, reason: None if link["dead"] else asyncio.ensure_future(ws.close(code=code, reason=reason))
        )
        ws.on_close(lambda code, reason: asyncio.ensure_future(upstream.close(code=code, reason=reason)))

    async def setup(ctx):
        await ctx.clock.install()
        await ctx.clock.pause_at(datetime.now(UTC) + timedelta(seconds=1))
        await ctx.route_web_socket(re.compile(r"/ws$"), route)

    orders = await open_chat(server.base, "o-quiet", BEA, path="/components", setup=setup)
    page, clock = orders.page, orders.context.clock
    card = page.locator(".card[data-order=o-quiet] button")
    await expect(page.locator("#bell")).to_have_attribute("data-unread", "0")
    sam = await server.client("sam", "supplier", name="Sam Supplier")

    links[0]["dead"] = True  # half-open: nothing gets through, and no close comes
    assert (await sam.post("o-quiet", "Sent while the socket was silent"))["type"] == "ack"
    await clock.run_for(30_000)
    assert links[0]["pings"] >= 1  # asked, after 20 s of silence
    await expect(card).to_have_attribute("data-unread", "0")
    await clock.run_for(11_000)  # 35 s without an answer: dead; the reconnect's backoff is under a second
    await expect(card).to_have_attribute("data-unread", "1")
    await expect(page.locator("#bell")).to_have_attribute("data-unread", "1")
    assert len(links) == 2

    await links[1]["ws"].close(code=4000, reason="network gone")  # the clock is held: the backoff never ends
    await expect(page.locator("#bell")).to_have_attribute("data-unread", "1")
    assert (await sam.post("o-quiet", "Sent while offline"))["type"] == "ack"
    await page.evaluate("() => window.dispatchEvent(new Event('online'))")
    await expect(card).to_have_attribute("data-unread", "2")
    assert len(links) == 3
    assert not console_errors(orders)


async def test_older_inbox_pages_catch_up_after_a_reconnect(server, open_chat):
    """130 orders, all loaded with "Show older orders". While the page is offline Bea reads
    two of the oldest on her phone: after the reconnect their rows, their badge and the
    bell say what the server says, not what they said before the outage."""
    bot = await server.client("bot1", "bot", name="Delivery Bot", orders="*")
    for i in range(130):
        await put_order(server.base, f"o-d{i:03d}")
        assert (await bot.post(f"o-d{i:03d}", f"Update {i}"))["type"] == "ack"
    net = {"up": True}
    links: list = []

    setup = socket_route(links, net)

    orders = await open_chat(server.base, "o-d000", BEA, path="/components", width=1200, height=900, setup=setup)
    page, inbox = orders.page, orders.page.locator("#inbox")
    rows = inbox.locator(".chatd-inbox-row")
    bell = page.locator("#bell")
    await expect(bell).to_have_attribute("data-unread", "130")
    await inbox.get_by_role("button", name="Show older orders").click()
    await expect(rows).to_have_count(130)

    net["up"] = False
    for ws in links:
        await ws.close(code=4000, reason="network gone")
    phone = await server.client("bea", "buyer", name="Bea Buyer")
    for order in ("o-d000", "o-d001"):
        joined = await phone.join(order)
        await phone.send({"type": "read", "order": order, "seq": joined["last_seq"]})
    await phone.send({"type": "inbox", "only": ["o-d000", "o-d001"]})
    assert (await phone.expect("inbox"))["total_unread"] == 128

    net["up"] = True
    await page.evaluate("() => window.dispatchEvent(new Event('online'))")
    await expect(bell).to_have_attribute("data-unread", "128", timeout=30_000)
    for order in ("o-d000", "o-d001"):
        await expect(inbox.locator(f".chatd-inbox-row[data-order={order}] .chatd-cbadge")).to_have_count(0)
    await expect(page.locator(".card[data-order=o-d000] button")).to_have_attribute("data-unread", "0")
    await expect(rows).to_have_count(130)
    counts = await inbox.locator(".chatd-inbox-row .chatd-cbadge").all_inner_texts()
    assert sum(int(n) for n in counts) == 128
    assert not console_errors(orders)


async def test_a_final_expiry_says_so_everywhere_and_shows_no_stale_counts(server, open_chat):
    """The token expires for good (4401, and no token function for a fresh one) with unread
    orders on screen: the inbox says so above its rows, the bell in its name and panel, and
    no badge, bell or row keeps a count that no longer follows the server."""
    sam = await server.client("sam", "supplier", name="Sam Supplier")
    for order in ("o-x1", "o-x2"):
        await put_order(server.base, order)
        assert (await sam.post(order, f"News on {order}"))["type"] == "ack"
    links: list = []

    setup = socket_route(links)

    orders = await open_chat(server.base, "o-x1,o-x2", BEA, path="/components", setup=setup)
    page, inbox = orders.page, orders.page.locator("#inbox")
    card = page.locator(".card[data-order=o-x1] button")
    bell = page.get_by_role("button", name=re.compile("^Messages"))
    await expect(page.locator("#bell")).to_have_attribute("data-unread", "2")
    await expect(card.locator(".chatd-cbadge")).to_have_text("1")
    await expect(inbox.locator(".chatd-inbox-row .chatd-cbadge")).to_have_count(2)

    await links[0].close(code=4401, reason="token expired")  # as chatd does at the token's deadline
    expired = "Your session has expired. Reload the page."
    await expect(inbox.get_by_role("alert")).to_have_text(expired)
    await expect(inbox.locator(".chatd-inbox-row")).to_have_count(2)  # still listed, without counts
    await expect(inbox.locator(".chatd-inbox-row .chatd-cbadge")).to_have_count(0)
    await expect(inbox.locator(".chatd-inbox-head .chatd-cbadge")).to_be_hidden()
    await expect(bell).to_have_attribute("aria-label", "Messages: " + expired)
    await expect(bell.locator(".chatd-cbadge")).to_be_hidden()
    await expect(page.locator("#bell")).not_to_have_attribute("data-unread", re.compile(".*"))
    await bell.click()
    await expect(page.locator(".chatd-bell-list li")).to_have_text([expired])
    await expect(card.locator(".chatd-cbadge")).to_be_hidden()
    await expect(card).not_to_have_attribute("data-unread", re.compile(".*"))
    await orders.screenshot("components-expired.png")
    assert len(links) == 1  # no reconnect
    assert not console_errors(orders)
