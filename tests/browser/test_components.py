"""The components in Chromium: a badge per order, the bell and the inbox on a host's
orders page, over one WebSocket, kept live by another user's messages.

Screenshots land in artifacts/browser/ (gitignored): look at them.
"""

from __future__ import annotations

import json
import re

from playwright.async_api import expect

from tests.browser.conftest import axe_check, put_order
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
