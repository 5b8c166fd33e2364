"""The staff console (ChatdWidget.console, and chatd's own page at /console) in Chromium:
the attention queue live from a buyer's browser, follow and unfollow, bulk read and unread,
filters and search (text, name, e-mail, order id), the SLA state, phone and desktop widths,
embedded on another origin (CORS on the threads routes) and served by chatd itself.

Screenshots land in artifacts/browser/ (gitignored): look at them.
"""

from __future__ import annotations

import re
from urllib.parse import urlencode

import pytest
from aiohttp import web
from playwright.async_api import expect

from tests.browser.conftest import ChatPage, api, axe_check, order_id_layout, put_order, socket_route
from tests.support.client import token

BEA = token("bea", "buyer", "Bea Buyer")
STAFF = token("stella", "staff", "Stella Staff")
PHONE = {"width": 390, "height": 780}
DESKTOP = {"width": 1280, "height": 800}
H = 3600

# A platform's admin page on its own origin: one script tag, one call.
CONSOLE_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,"><title>admin</title>
<style>html, body { height: 100%; margin: 0; background: #eef0f4; } header { color: #fff; }
#console { height: 100vh; }</style>
</head><body>
<main id="console"></main>
<script src="CHATD/widget.js"></script>
<script>
  var q = new URLSearchParams(location.search);
  window.console_ = ChatdWidget.console(document.getElementById('console'),
    {url: q.get('chatd'), token: q.get('token'), pageSize: Number(q.get('page')) || undefined});
</script>
</body></html>
"""


async def _console_page(request: web.Request) -> web.Response:
    chatd = request.query["chatd"]
    assert chatd.startswith("http://127.0.0.1:") and '"' not in chatd
    return web.Response(text=CONSOLE_PAGE.replace("CHATD", chatd), content_type="text/html")


@pytest.fixture
async def admin_site(aiohttp_server):
    app = web.Application()
    app.router.add_get("/admin", _console_page)
    srv = await aiohttp_server(app)
    return f"http://127.0.0.1:{srv.port}"


@pytest.fixture
async def open_page(browser):
    opened: list[ChatPage] = []

    async def open_(url: str, width: int, height: int, setup=None) -> ChatPage:
        ctx = await browser.new_context(
            viewport={"width": width, "height": height}, locale="en-GB", timezone_id="Europe/Berlin"
        )
        if setup is not None:  # e.g. routes, before the page opens its sockets
            await setup(ctx)
        page = await ctx.new_page()
        chat = ChatPage(ctx, page)
        chat.axed = False
        opened.append(chat)
        await page.goto(url)
        return chat

    yield open_
    for chat in opened:
        await chat.context.close()
    errors = [e for chat in opened for e in chat.errors]
    assert not errors, f"uncaught errors in the page: {errors}"


def console_errors(*pages) -> list[str]:
    """Errors in the pages' consoles, but the inline styles axe-core itself applies, which
    the CSP of chatd's own pages refuses (test_demo runs axe last for the same reason)."""
    axe_csp = "Applying inline style violates the following Content Security Policy"
    return [
        m
        for p in pages
        for m in p.console
        if m.startswith("error") and not (getattr(p, "axed", False) and axe_csp in m)
    ]


async def axe(page: ChatPage, name: str) -> None:
    assert console_errors(page) == []  # before axe: anything from the CSP until now is the console's
    page.axed = True
    await axe_check(page.page, name)


def row(page: ChatPage, order: str):
    return page.page.locator(f".chatd-console-row[data-order='{order}']")


def rows(page: ChatPage):
    return page.page.locator(".chatd-console-row")


def chip(page: ChatPage, name: str):
    return page.page.locator(".chatd-console").get_by_role("button", name=name, exact=True)


async def buyer_says(server, order: str, text: str) -> None:
    c = await server.client("bea", "buyer", name="Bea Buyer")
    await c.join(order)
    await c.post(order, text)
    await c.close()


async def test_console_embedded_live_queue_follow_and_bulk_read(server, admin_site, open_chat, open_page):
    """Desktop, on another origin: help and dispute from a buyer's browser appear at once."""
    for order in ("o-c1", "o-c2", "o-c3"):
        await put_order(server.base, order)
    await buyer_says(server, "o-c3", "Just a question about pallets")
    query = urlencode({"chatd": server.base, "token": STAFF, "page": 2})
    staff = await open_page(f"{admin_site}/admin?{query}", **DESKTOP)
    await expect(staff.page.locator(".chatd-inbox-empty")).to_have_text("No thread matches.")

    # a buyer asks for help in their browser: the order enters the queue, live
    buyer = await open_chat(server.base, "o-c1", BEA, width=390, height=780)
    await buyer.page.locator(".chatd-actions").get_by_role("button", name="Ask support", exact=True).click()
    dialog = buyer.page.locator(".chatd-dialog")
    await dialog.get_by_label(re.compile("^Reason")).fill("the carrier lost my pallet")
    await dialog.get_by_role("button", name="Ask support", exact=True).click()
    await expect(row(staff, "o-c1")).to_be_visible()
    await expect(row(staff, "o-c1").locator("[data-reason=help]")).to_have_text("Help requested")
    await expect(row(staff, "o-c1").locator(".chatd-cbadge")).to_have_text("1")

    # a dispute from another buyer page: there too, marked
    buyer2 = await open_chat(server.base, "o-c2", BEA)
    await buyer2.page.evaluate("() => window.widget.openDispute('Two boxes damaged')")
    await expect(row(staff, "o-c2").locator(".chatd-dispute-mark")).to_have_text("Dispute")
    await expect(row(staff, "o-c2").get_by_text("Dispute", exact=True)).to_have_count(1)  # said once, not twice
    await expect(row(staff, "o-c2").locator(".chatd-dispute-mark")).to_have_attribute("data-reason", "dispute")
    await expect(rows(staff)).to_have_count(2)
    await staff.screenshot("console-queue-desktop.png")
    await axe_check(staff.page, "console queue")

    # bulk: select both, mark read, then unread again (the shared staff marker)
    await row(staff, "o-c1").get_by_role("checkbox").check()
    await row(staff, "o-c2").get_by_role("checkbox").check()
    await expect(staff.page.locator(".chatd-console-all")).to_have_text("2 selected")
    await chip(staff, "Mark read").click()
    await expect(staff.page.locator(".chatd-console-note")).to_have_text("Marked 2 threads read.")
    await expect(rows(staff).locator(".chatd-cbadge")).to_have_count(0)
    st, page = await api(server.base, "GET", "/api/v1/threads?attention=true")
    assert st == 200 and {t["order"]: t["staff_unread"] for t in page["threads"]} == {"o-c1": 0, "o-c2": 0}
    await chip(staff, "Unread").click()  # the filter: nothing unread now
    await expect(rows(staff)).to_have_count(0)
    await chip(staff, "Unread").click()
    await staff.page.locator(".chatd-console-all input").check()  # select all
    await chip(staff, "Mark unread").click()
    await expect(staff.page.locator(".chatd-console-note")).to_have_text("Marked 2 threads unread.")
    await expect(row(staff, "o-c1").locator(".chatd-cbadge")).to_have_text("1")
    await expect(row(staff, "o-c2").locator(".chatd-cbadge")).to_have_text("1")
    await chip(staff, "Unread").click()
    await expect(rows(staff)).to_have_count(2)
    await chip(staff, "Unread").click()

    # follow a thread from all threads: it joins this staff member's queue; unfollow takes it out
    await chip(staff, "All threads").click()
    await expect(rows(staff)).to_have_count(2)  # a page of two: the oldest comes with "Load more"
    await expect(row(staff, "o-c3")).to_have_count(0)
    await chip(staff, "Load more").click()
    await expect(row(staff, "o-c3")).to_be_visible()
    await expect(chip(staff, "Load more")).to_be_hidden()
    follow = row(staff, "o-c3").get_by_role("button", name="Follow order o-c3")
    await follow.click()
    following = row(staff, "o-c3").get_by_role("button", name="Following order o-c3")
    await expect(following).to_have_attribute("aria-pressed", "true")
    await expect(following).to_have_text("Following")
    await chip(staff, "Attention queue").click()
    await expect(rows(staff)).to_have_count(3)
    await row(staff, "o-c3").get_by_role("button", name="Following order o-c3").click()
    await expect(row(staff, "o-c3")).to_have_count(0)
    await expect(rows(staff)).to_have_count(2)

    # the chat opens beside the list; its dispute control closes the dispute, with a confirmation
    await row(staff, "o-c2").locator(".chatd-inbox-row").click()
    chat = staff.page.locator(".chatd-inbox-chatbox .chatd")
    await expect(chat).to_have_attribute("data-state", "online")
    await expect(staff.page.locator(".chatd-inbox-list")).to_be_visible()  # beside, not instead
    await staff.page.locator(".chatd-actions").get_by_role("button", name="Close dispute", exact=True).click()
    dialog = staff.page.locator(".chatd-dialog")
    await expect(dialog).to_be_visible()
    await dialog.get_by_role("button", name="Close dispute", exact=True).click()
    await expect(dialog).to_be_hidden()
    await expect(row(staff, "o-c2").locator(".chatd-dispute-mark")).to_have_count(0)
    # and opens one again, with a reason
    await staff.page.locator(".chatd-actions").get_by_role("button", name="Open dispute", exact=True).click()
    await dialog.get_by_label(re.compile("^Reason")).fill("Refund still missing")
    await dialog.get_by_role("button", name="Open dispute", exact=True).click()
    await expect(dialog).to_be_hidden()
    await expect(row(staff, "o-c2").locator(".chatd-dispute-mark")).to_have_text("Dispute")
    await expect(buyer2.message("Dispute opened: Refund still missing")).to_be_visible()
    await staff.page.locator(".chatd-actions").get_by_role("button", name="Close dispute", exact=True).click()
    await dialog.get_by_role("button", name="Close dispute", exact=True).click()
    await expect(row(staff, "o-c2").locator(".chatd-dispute-mark")).to_have_count(0)
    await staff.screenshot("console-chat-desktop.png")
    await axe_check(staff.page, "console with the chat")
    assert console_errors(staff, buyer, buyer2) == []


@pytest.mark.single_only("the clocks are injected into the in-process server")
async def test_console_page_phone_filters_search_and_sla(server, open_page):
    """chatd's own /console at phone width: a pasted token, the filters, search, the SLA state."""
    from chatd.edge.keys import SLA
    from tests.functional.test_response_times import inject

    clock = inject(server)
    await put_order(server.base, "o-late", buyer={"id": "bea", "name": "Bea Buyer", "email": "bea@shop.example"})
    await put_order(server.base, "o-soon", buyer={"id": "bob", "name": "Bob Byers", "email": "bob@else.example"})
    await put_order(server.base, "o-quiet", status="shipped")
    await buyer_says(server, "o-late", "Where are my pallets?")
    clock.t += 24 * H + 1
    assert await server.app[SLA].sweep() == 1  # o-late is overdue: in every staff queue
    c = await server.client("bob", "buyer", name="Bob Byers")
    await c.join("o-soon")
    await c.post("o-soon", "Can you ship the crates sooner?")
    st, _ = await api(
        server.base, "POST", "/api/v1/orders/o-quiet/messages", {"client_id": "q1", "text": "Shipped today"}
    )
    assert st == 201
    await server.app[SLA].sweep()

    staff = await open_page(f"{server.base}/console", **PHONE)
    await staff.page.get_by_label("Staff token").fill(STAFF)
    await staff.page.get_by_role("button", name="Open the console").click()
    await expect(rows(staff)).to_have_count(1)  # the queue: the SLA breach
    late = row(staff, "o-late")
    await expect(late).to_have_attribute("data-sla", "overdue")
    await expect(late.locator(".chatd-console-sla")).to_have_text(re.compile("^Overdue since "))
    await expect(late.locator("[data-reason=sla]")).to_have_text("SLA breach")
    await staff.screenshot("console-queue-phone.png")
    await axe(staff, "console page, phone")

    await chip(staff, "All threads").click()
    await expect(rows(staff)).to_have_count(3)
    await expect(row(staff, "o-soon").locator(".chatd-console-sla")).to_have_text(re.compile("^Reply due "))
    await expect(row(staff, "o-soon")).to_have_attribute("data-sla", "due")
    await expect(row(staff, "o-quiet").locator(".chatd-console-sla")).to_have_count(0)

    await chip(staff, "Overdue").click()
    await expect(rows(staff)).to_have_count(1)
    await expect(row(staff, "o-late")).to_be_visible()
    await chip(staff, "Overdue").click()
    await chip(staff, "Awaiting reply").click()
    await expect(rows(staff)).to_have_count(2)
    await expect(row(staff, "o-quiet")).to_have_count(0)
    await chip(staff, "Awaiting reply").click()
    await staff.page.get_by_label("Status", exact=True).select_option("shipped")
    await expect(rows(staff)).to_have_count(1)
    await expect(row(staff, "o-quiet")).to_be_visible()
    await staff.page.get_by_label("Status", exact=True).select_option("")
    await expect(rows(staff)).to_have_count(3)

    search = staff.page.get_by_label("Search threads")
    for q, found in [
        ("else.example", "o-soon"),  # a buyer's e-mail (staff only)
        ("crates", "o-soon"),  # message text
        ("Bea", None),  # a participant's name: two orders
        ("o-quiet", "o-quiet"),  # the order id
    ]:
        await search.fill(q)
        if found:
            await expect(rows(staff)).to_have_count(1)
            await expect(row(staff, found)).to_be_visible()
        else:
            await expect(rows(staff)).to_have_count(2)
            await expect(row(staff, "o-soon")).to_have_count(0)
    await search.fill("")
    await expect(rows(staff)).to_have_count(3)

    # a phone: the chat opens in the list's place, and "All threads" goes back
    await row(staff, "o-late").locator(".chatd-inbox-row").click()
    await expect(staff.page.locator(".chatd-inbox-chatbox .chatd")).to_have_attribute("data-state", "online")
    await expect(staff.page.locator(".chatd-inbox-list")).to_be_hidden()
    await staff.screenshot("console-chat-phone.png")
    await staff.page.get_by_role("button", name="All threads").last.click()
    await expect(staff.page.locator(".chatd-inbox-list")).to_be_visible()
    assert console_errors(staff) == []


async def test_console_rows_keep_an_order_id_on_one_line_on_a_phone(server, admin_site, open_page):
    """Chips share the row with the id: they wrap, the id does not (a very long one is cut)."""
    long_id = "LONG-" + "9" * 120
    for order in ("PO-2024-000123-DE", long_id):
        await put_order(server.base, order, status="shipped")
        c = await server.client("bea", "buyer", name="Bea Buyer")
        await c.join(order)
        await c.post(order, "Two boxes arrived damaged")
        await c.send({"type": "dispute", "order": order, "action": "open", "client_id": "d-" + order[:8]})
        await c.expect("ack")
        await c.close()
    staff = await open_page(f"{admin_site}/admin?{urlencode({'chatd': server.base, 'token': STAFF})}", **PHONE)
    await expect(rows(staff)).to_have_count(2)
    for order in ("PO-2024-000123-DE", long_id):
        await expect(row(staff, order).locator(".chatd-dispute-mark")).to_be_visible()
    await staff.screenshot("console-long-ids-phone.png")
    layout = await order_id_layout(rows(staff).locator(".chatd-inbox-order"))
    assert sorted(x["id"] for x in layout) == sorted(("PO-2024-000123-DE", long_id)), layout
    assert all(x["lines"] == 1 and x["inside"] for x in layout), layout
    assert await row(staff, long_id).locator(".chatd-inbox-order").get_attribute("title") == long_id
    assert console_errors(staff) == []


async def test_a_search_shows_the_message_that_matched(server, admin_site, open_page):
    await put_order(server.base, "o-find")
    c = await server.client("bea", "buyer", name="Bea Buyer")
    await c.join("o-find")
    await c.post("o-find", "Two <b>pallets</b> arrived crushed")
    await c.post("o-find", "The driver said " + "the warehouse was busy all day and " * 4 + "the forklift broke")
    await c.post("o-find", "Any news?")  # the newest: what the row shows without a search
    await c.close()
    staff = await open_page(f"{admin_site}/admin?{urlencode({'chatd': server.base, 'token': STAFF})}", **DESKTOP)
    # the scope, not the phone's "All threads" back button (visible until the shadow root's CSS is in)
    await staff.page.get_by_role("group", name="Threads").get_by_role("button", name="All threads").click()
    text = row(staff, "o-find").locator(".chatd-inbox-text")
    await expect(text).to_have_text("Bea Buyer: Any news?")
    await staff.page.get_by_label("Search threads").fill("PALLET crush")
    await expect(text).to_have_text("Bea Buyer: Two <b>pallets</b> arrived crushed")  # as text, never markup
    await expect(text.locator("mark")).to_have_text(["pallets", "crushed"])
    await expect(text.locator("b")).to_have_count(0)
    await staff.screenshot("console-search-match-desktop.png")
    await axe(staff, "console search")
    # a match deep in a long message: the snippet starts shortly before it
    await staff.page.get_by_label("Search threads").fill("forklift")
    await expect(text).to_have_text(re.compile(r"^Bea Buyer: …\S.{0,40}forklift"))
    await expect(text.locator("mark")).to_have_text("forklift")
    await staff.page.get_by_label("Search threads").fill("o-find")  # the order id matched: no message did
    await expect(text).to_have_text("Bea Buyer: Any news?")
    await expect(text.locator("mark")).to_have_count(0)
    await staff.page.get_by_label("Search threads").fill("")
    await expect(text).to_have_text("Bea Buyer: Any news?")


@pytest.mark.parametrize("sections", [{"sla": {"reply_within_s": 0.0}}])
async def test_console_says_how_long_a_buyer_waits_where_no_reply_is_due(server, open_page):
    """With no reply time set nothing is due: the thread says since when the buyer waits."""
    await put_order(server.base, "o-wait")
    await buyer_says(server, "o-wait", "Can you ship the crates sooner?")
    staff = await open_page(f"{server.base}/console", **DESKTOP)
    await staff.page.get_by_label("Staff token").fill(STAFF)
    await staff.page.get_by_role("button", name="Open the console").click()
    await chip(staff, "All threads").click()
    await expect(row(staff, "o-wait")).to_have_attribute("data-sla", "waiting")
    await expect(row(staff, "o-wait").locator(".chatd-console-sla")).to_have_text(re.compile("^Waiting since "))
    assert console_errors(staff) == []


async def test_console_says_the_session_expired_and_shows_no_stale_counts(server, open_page):
    """The staff token expires for good (4401, no fresh token): the console says so above
    its threads, which stay listed, and no count that stopped following the server is shown."""
    await put_order(server.base, "o-exp")
    bea = await server.client("bea", "buyer", name="Bea Buyer")
    await bea.join("o-exp")
    opened = {"type": "dispute", "order": "o-exp", "action": "open", "client_id": "d1", "reason": "Broken"}
    await bea.send(opened)
    await bea.expect("ack", client_id="d1")  # in the staff queue, one unread
    links: list = []

    setup = socket_route(links)

    staff = await open_page(f"{server.base}/console", **DESKTOP, setup=setup)
    await staff.page.get_by_label("Staff token").fill(STAFF)
    await staff.page.get_by_role("button", name="Open the console").click()
    await expect(row(staff, "o-exp").locator(".chatd-cbadge")).to_have_text("1")
    await links[0].close(code=4401, reason="token expired")  # as chatd does at the token's deadline
    expired = "Your session has expired. Reload the page."
    await expect(staff.page.locator(".chatd-console-alert")).to_have_text(expired)
    await expect(row(staff, "o-exp")).to_be_visible()
    await expect(row(staff, "o-exp").locator(".chatd-cbadge")).to_have_count(0)
    assert len(links) == 1  # no reconnect
    assert console_errors(staff) == []


async def test_console_page_refuses_a_participant_token(server, open_page):
    page = await open_page(f"{server.base}/console?{urlencode({'token': BEA})}", **DESKTOP)
    await expect(page.page.get_by_role("alert")).to_have_text(re.compile("role buyer"))
    await expect(page.page.get_by_label("Staff token")).to_be_visible()
    await axe(page, "console login")
    assert console_errors(page) == []


async def test_chatd_demo_prints_a_console_link(aiohttp_server, tmp_path, capsys, open_page):
    """`chatd demo` prints a staff console link; it opens the console over the demo orders."""
    from chatd.app import create_app
    from chatd.cli import DEMO_ORDERS, _demo_startup
    from tests.conftest import make_config

    cfg = make_config(tmp_path)
    app = create_app(cfg)
    app.on_startup.append(_demo_startup(cfg))
    srv = await aiohttp_server(app)
    out = capsys.readouterr().out
    found = re.search(r"\(staff\): staff console (\S+/console\?token=\S+)", out)
    assert found, out
    link = found.group(1).replace(f"http://{cfg.server.host}:{cfg.server.port}", f"http://127.0.0.1:{srv.port}")
    staff = await open_page(link, **DESKTOP)
    await expect(staff.page.locator("#who")).to_have_text("Stella Staff")
    await chip(staff, "All threads").click()
    for order in DEMO_ORDERS:
        await expect(row(staff, order)).to_be_visible()
    await staff.screenshot("console-demo-desktop.png")
    assert console_errors(staff) == []


async def test_a_refused_follow_is_shown(server, admin_site, open_page):
    """A staff id holding a slot is that participant there: follow is refused, visibly."""
    await put_order(server.base, "o-mine", supplier={"id": "stella", "name": "Stella Staff"})
    await buyer_says(server, "o-mine", "Hello supplier")
    query = urlencode({"chatd": server.base, "token": STAFF})
    staff = await open_page(f"{admin_site}/admin?{query}", **PHONE)
    await chip(staff, "All threads").click()
    await row(staff, "o-mine").get_by_role("button", name="Follow order o-mine").click()
    await expect(staff.page.get_by_role("alert")).to_have_text(re.compile("^Order o-mine: "))
    await expect(row(staff, "o-mine").get_by_role("button", name="Follow order o-mine")).to_have_attribute(
        "aria-pressed", "false"
    )
    assert console_errors(staff) == []
