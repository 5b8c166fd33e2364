"""The widget in Chromium against an in-process chatd: two people chatting live."""

from __future__ import annotations

import asyncio
import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

from playwright.async_api import expect

from tests.browser.conftest import PEOPLE, api, put_order
from tests.support import samples
from tests.support.client import token
from tests.support.wait import wait_for

BEA = token("bea", "buyer", "Bea Buyer")
SAM = token("sam", "supplier", "Sam Supplier")
RITA = token("rita", "sales_rep", "Rita Rep")


async def test_buyer_and_supplier_exchange_messages_live(server, open_chat):
    await put_order(server.base, "o-live")
    buyer = await open_chat(server.base, "o-live", BEA)
    supplier = await open_chat(server.base, "o-live", SAM)

    await buyer.say("Hello Sam, is the order on track?")  # Enter sends
    got = supplier.message("is the order on track?")
    await expect(got).to_be_visible()
    await expect(got.locator(".chatd-name")).to_have_text("Bea Buyer")
    await expect(got.locator(".chatd-role")).to_have_text("Buyer")
    await expect(got.locator("time")).to_have_attribute("datetime", re.compile(r"^\d{4}-\d\d-\d\dT"))
    await expect(got).not_to_have_class(re.compile("chatd-msg--own"))
    # the sender's copy: their own, stored (acked), no longer pending
    mine = buyer.message("is the order on track?")
    await expect(mine).to_have_class(re.compile("chatd-msg--own"))
    await expect(mine).to_have_attribute("data-seq", "1")
    await expect(mine.locator(".chatd-msg-foot")).to_have_text("Seen by Sam")  # his page shows it: read
    await expect(buyer.pending).to_have_count(0)

    # Send button; Shift+Enter is a new line, not a send
    await supplier.input.fill("Yes: it ships tomorrow.")
    await supplier.send_button.click()
    await supplier.input.press_sequentially("Line one")
    await supplier.input.press("Shift+Enter")
    await supplier.input.press_sequentially("line two")
    await expect(supplier.input).to_have_value("Line one\nline two")
    await supplier.input.press("Enter")
    await expect(supplier.input).to_have_value("")

    await expect(buyer.message("line two")).to_be_visible()
    await expect(buyer.message("line two").locator(".chatd-text")).to_have_text("Line one\nline two")
    await expect(buyer.message("ships tomorrow").locator(".chatd-name")).to_have_text("Sam Supplier")
    want = ["Hello Sam, is the order on track?", "Yes: it ships tomorrow.", "Line one\nline two"]
    for page in (buyer, supplier):
        await expect(page.messages).to_have_count(3)
        assert await page.texts() == want
    # screen readers hear new messages from others
    await expect(buyer.page.locator(".chatd-sr[aria-live=polite]")).to_contain_text("Sam Supplier: Line one")
    # the other participants, with presence
    await expect(buyer.page.locator(".chatd-person--online").filter(has_text="Sam")).to_have_count(1)


async def test_typing_indicator_shows_and_clears(server, open_chat):
    await put_order(server.base, "o-typing")
    buyer = await open_chat(server.base, "o-typing", BEA)
    supplier = await open_chat(server.base, "o-typing", SAM)

    await expect(buyer.typing).to_be_hidden()
    await supplier.input.press_sequentially("Let me check")
    await expect(buyer.typing).to_be_visible()
    await expect(buyer.typing).to_have_text("Sam is typing…")
    await expect(supplier.typing).to_be_hidden()  # never for oneself

    await supplier.input.press("Enter")  # sending stops it
    await expect(buyer.message("Let me check")).to_be_visible()
    await expect(buyer.typing).to_be_hidden()

    await supplier.input.press_sequentially("One more thing")
    await expect(buyer.typing).to_have_text("Sam is typing…")
    await supplier.input.blur()  # leaving the field stops it
    await expect(buyer.typing).to_be_hidden()

    await supplier.input.focus()
    await supplier.input.press_sequentially("…")
    await expect(buyer.typing).to_be_visible()
    await supplier.input.fill("")  # emptying the field stops it
    await expect(buyer.typing).to_be_hidden()


async def test_unread_badge_counts_and_clears_when_read(server, open_chat):
    await put_order(server.base, "o-unread")
    buyer = await open_chat(server.base, "o-unread", BEA)
    supplier = await open_chat(server.base, "o-unread", SAM)
    await buyer.say("First question")
    await expect(supplier.message("First question")).to_be_visible()
    await expect(supplier.badge).to_be_hidden()  # seen at once: the page is visible

    await supplier.set_hidden(True)  # a background tab: nothing is seen
    for i in range(1, 4):
        await buyer.say(f"Unseen {i}")
    await expect(supplier.message("Unseen 3")).to_be_attached()
    await expect(supplier.badge).to_be_visible()
    await expect(supplier.badge).to_have_text("3")
    await expect(supplier.badge).to_have_attribute("aria-label", "3 unread messages")
    # the divider sits right before the first unseen message
    await expect(supplier.divider).to_have_text("New messages")
    after = supplier.page.locator(".chatd-divider + [role=listitem]")
    await expect(after).to_contain_text("Unseen 1")

    await supplier.set_hidden(False)  # back to the tab: on screen, so read
    await expect(supplier.badge).to_be_hidden()
    c = await server.client("sam", "supplier", name="Sam Supplier")
    joined = await c.join("o-unread")
    assert joined["unread"] == 0 and joined["read_seq"] == 4

    # coming back later: the badge counts what came meanwhile, the divider marks it
    await supplier.context.close()
    await buyer.say("While you were away")
    await buyer.say("And another one")
    again = await open_chat(server.base, "o-unread", SAM)
    await expect(again.page.locator(".chatd-divider + [role=listitem]")).to_contain_text("While you were away")
    await expect(again.badge).to_be_hidden()  # on screen in a visible page: read


async def test_read_waits_until_scrolled_into_view(server, open_chat):
    await put_order(server.base, "o-scroll-read")
    bot = await server.client("bot1", "bot", name="Delivery Bot", orders="*")
    for i in range(1, 41):
        assert (await bot.post("o-scroll-read", f"Line {i:02d}"))["type"] == "ack"
    supplier = await open_chat(server.base, "o-scroll-read", SAM, height=520)
    # 40 unread: the chat opens at the divider, and only what is on screen is read
    await expect(supplier.page.locator(".chatd-divider + [role=listitem]")).to_contain_text("Line 01")
    await expect(supplier.message("Line 01")).to_be_in_viewport()
    await expect(supplier.message("Line 40")).not_to_be_in_viewport()
    jump = supplier.page.locator(".chatd-jump")

    async def settled() -> int | None:
        """Some read (what the screen showed), not all: the badge and "N new" agree once the
        reads of the opening (debounced, maybe two as the view settles) are in."""
        badge, below = await supplier.badge.inner_text(), await jump.inner_text()
        n = int(badge) if badge.isdigit() else 0
        return n if 0 < n < 40 and below == f"{n} new" else None

    await wait_for(settled, timeout=10, what="the reads on opening")
    await jump.click()  # to the newest: now everything was on screen
    await expect(supplier.message("Line 40")).to_be_in_viewport()
    await expect(supplier.badge).to_be_hidden()
    await expect(jump).to_be_hidden()

    await supplier.messages.first.scroll_into_view_if_needed()  # reading the start again
    await expect(jump).to_have_text("Latest")
    await bot.post("o-scroll-read", "Below the fold")
    await expect(supplier.badge).to_have_text("1")  # arrived, but not on screen
    await expect(jump).to_have_text("1 new")
    await jump.click()
    await expect(supplier.message("Below the fold")).to_be_in_viewport()
    await expect(supplier.badge).to_be_hidden()


async def test_a_background_tab_keeps_the_view_on_the_first_of_many_new_messages(server, open_chat):
    """More new messages than a screen while the tab is in the background: the view goes
    down to the first of them, not past it, so coming back reads only what is shown."""
    await put_order(server.base, "o-background")
    bot = await server.client("bot1", "bot", name="Delivery Bot", orders="*")
    for i in range(1, 21):
        assert (await bot.post("o-background", f"Before {i:02d}"))["type"] == "ack"
    status, data = await api(server.base, "POST", "/api/v1/orders/o-background/read", {"user": "sam", "seq": 20})
    assert status == 200, data
    supplier = await open_chat(server.base, "o-background", SAM, height=520)
    await expect(supplier.message("Before 20")).to_be_in_viewport()
    await supplier.page.locator(".chatd-scroll").click()  # the reader was here: the opening screen is done
    await supplier.set_hidden(True)
    for i in range(1, 31):
        assert (await bot.post("o-background", f"Away {i:02d}"))["type"] == "ack"
    await expect(supplier.message("Away 30")).to_be_attached()
    await expect(supplier.badge).to_have_text("30")
    await expect(supplier.page.locator(".chatd-divider + [role=listitem]")).to_contain_text("Away 01")
    await expect(supplier.page.locator(".chatd-jump")).to_have_text("30 new")
    await expect(supplier.message("Away 01")).to_be_in_viewport()

    await supplier.set_hidden(False)
    await expect(supplier.badge).not_to_have_text("30")
    await expect(supplier.message("Away 30")).not_to_be_in_viewport()
    unread = int(await supplier.badge.inner_text())
    assert 0 < unread < 30


async def _many_unread(server, order: str) -> None:
    """130 bot updates of which Sam has read the first 10: 120 unread, more than a page."""
    await put_order(server.base, order)
    bot = await server.client("bot1", "bot", name="Delivery Bot", orders="*")
    for i in range(1, 131):
        assert (await bot.post(order, f"Update {i:03d}"))["type"] == "ack"
    st, _ = await api(server.base, "POST", f"/api/v1/orders/{order}/read", {"user": "sam", "seq": 10})
    assert st == 200


async def test_more_unread_than_a_page_opens_at_the_first_unread(server, open_chat):
    """The join replays the newest 50; with 120 unread the widget fetches back
    to the first unread so the divider sits on it, in view."""
    await _many_unread(server, "o-many-unread")
    supplier = await open_chat(server.base, "o-many-unread", SAM, height=520)
    first_unread = supplier.page.locator(".chatd-divider + [role=listitem]")
    await expect(first_unread).to_contain_text("Update 011")
    await expect(supplier.message("Update 011")).to_be_in_viewport()
    await expect(supplier.message("Update 130")).not_to_be_in_viewport()
    await expect(supplier.message("Update 010")).to_be_attached()  # read ones above it are loaded too
    await expect(supplier.badge).to_have_text("99+")  # only what was on screen was read


async def test_nothing_is_read_between_a_page_and_its_render(server, open_chat):
    """On the way to the first unread, a page arrives and the render that acts on
    it comes later: a read falling due in that gap must not read what the screen
    shows then, messages the reader is never shown. The page's clock is held and
    chatd's history pages are let through one by one, so the gap comes every run."""
    await _many_unread(server, "o-read-gap")
    reads: list[int] = []
    read_sent = asyncio.Event()
    held: list = []  # (the page's end, a history frame from chatd) until the test lets it through
    page_held = asyncio.Event()

    def route(ws):
        upstream = ws.connect_to_server()

        def to_server(raw):
            frame = json.loads(raw)
            if frame.get("type") == "read":
                reads.append(frame["seq"])
                read_sent.set()
            upstream.send(raw)

        def to_page(raw):
            if json.loads(raw).get("type") == "history":
                held.append((ws, raw))
                page_held.set()
            else:
                ws.send(raw)

        ws.on_message(to_server)
        upstream.on_message(to_page)

    async def setup(ctx):
        await ctx.clock.install()
        await ctx.clock.pause_at(datetime.now(UTC) + timedelta(seconds=1))
        # no animation frames: renders run on their 120 ms fallback timer, on the held clock
        await ctx.add_init_script("window.requestAnimationFrame = function () { return 0; };")
        await ctx.route_web_socket(re.compile(r"/ws$"), route)

    supplier = await open_chat(server.base, "o-read-gap", SAM, height=520, setup=setup)
    clock, items = supplier.context.clock, supplier.list.locator("[data-seq]")
    await expect(items).to_have_count(50)  # the replay, not rendered yet

    async def layout_seen() -> None:
        """The intersection observers have seen the list as it is laid out now."""
        await items.first.evaluate(
            """node => new Promise(done => {
                 const io = new IntersectionObserver(() => { io.disconnect(); done(); });
                 io.observe(node);
               })"""
        )

    async def next_page(count: int, after_ms: int) -> None:
        """A render asks for the next page; chatd's answer is let through `after_ms` later."""
        await layout_seen()
        await clock.run_for(130)
        await asyncio.wait_for(page_held.wait(), 10)
        page_held.clear()
        await clock.run_for(after_ms)
        ws, raw = held.pop()
        ws.send(raw)
        await expect(items).to_have_count(count)
        await layout_seen()

    # The replay on screen asks for a read, due 250 ms later. The first render (at
    # 120 ms) asks for page 2, let through at 200 ms; its render comes at 320 ms.
    await next_page(100, 70)
    await clock.run_for(60)  # the read is due in between
    await next_page(130, 200)
    await clock.resume()
    await expect(supplier.message("Update 011")).to_be_in_viewport()
    await asyncio.wait_for(read_sent.wait(), 10)
    assert reads and max(reads) <= 30, reads  # only the screen on the first unread was read
    await expect(supplier.badge).to_have_text("99+")


async def test_files_are_attached_and_reach_the_other_side(server, open_chat, tmp_path):
    """The paperclip uploads at once; a refused file says why and can be
    removed; the message carries the accepted one, which the other side
    downloads byte for byte."""
    await put_order(server.base, "o-files")
    buyer = await open_chat(server.base, "o-files", BEA)
    supplier = await open_chat(server.base, "o-files", SAM)
    photo = tmp_path / "damaged pallet.png"
    photo.write_bytes(samples.png(320, 240))
    disguised = tmp_path / "invoice.pdf"
    disguised.write_bytes(samples.exe())
    await buyer.page.set_input_files(".chatd-composer input[type=file]", [str(photo), str(disguised)])
    await expect(buyer.page.locator(".chatd-chip--ready")).to_contain_text("damaged pallet.png")
    await expect(buyer.page.locator(".chatd-chip--failed")).to_contain_text("executables are not accepted")
    await buyer.screenshot("buyer-composer-files.png")
    await buyer.page.get_by_role("button", name="Remove invoice.pdf").click()
    await expect(buyer.page.locator(".chatd-chip")).to_have_count(1)
    await buyer.input.fill("Photo of the damage")
    await buyer.send_button.click()
    await expect(buyer.page.locator(".chatd-chip")).to_have_count(0)
    mine = buyer.message("Photo of the damage")
    await expect(mine).to_have_attribute("data-seq", "1")  # stored, with its file
    await expect(mine.locator(".chatd-att-name")).to_have_text("damaged pallet.png")
    got = supplier.message("Photo of the damage")
    await expect(got.locator(".chatd-att-name")).to_have_text("damaged pallet.png")
    preview = got.locator("img.chatd-thumb")  # an image gets a preview, fetched with the token
    await expect(preview).to_have_attribute("alt", "damaged pallet.png")
    # a data: URL, which the documented CSP (img-src 'self' data:) allows; a blob: URL would need img-src blob:
    await expect(preview).to_have_attribute("src", re.compile(r"^data:image/png;base64,"))
    assert await preview.evaluate("i => i.decode().then(() => i.naturalWidth)") == 320
    await supplier.screenshot("supplier-attachment.png")
    async with supplier.page.expect_download() as info:
        await got.locator(".chatd-att").click()
    download = await info.value
    assert download.suggested_filename == "damaged pallet.png"
    assert Path(await download.path()).read_bytes() == samples.png(320, 240)
    await buyer.screenshot("buyer-attachment.png")


async def test_writing_a_note_is_not_shown_as_typing_to_the_buyer(server, open_chat):
    """The rep sees Sam typing a note; the buyer's page is never told (it would learn
    that notes are being written), and sees him typing once he writes to everyone."""
    await put_order(server.base, "o-note-typing")
    buyer_typing: list[dict] = []

    def on_frame(raw) -> None:
        frame = json.loads(raw)
        if frame["type"] == "typing":
            buyer_typing.append(frame)

    async def watch_frames(ctx):
        ctx.on("page", lambda page: page.on("websocket", lambda ws: ws.on("framereceived", on_frame)))

    buyer = await open_chat(server.base, "o-note-typing", BEA, setup=watch_frames)
    rep = await open_chat(server.base, "o-note-typing", RITA)
    supplier = await open_chat(server.base, "o-note-typing", SAM)
    await supplier.note_toggle.click()
    await supplier.input.press_sequentially("hold the shipment until they pay")
    await expect(rep.typing).to_have_text("Sam is typing…")
    await supplier.input.fill("")  # gave the note up: the rep's indicator goes
    await expect(rep.typing).to_be_hidden()
    await supplier.note_toggle.click()  # a message to everyone now
    await supplier.input.press_sequentially("Your order ships on Monday")
    await expect(buyer.typing).to_have_text("Sam is typing…")
    assert [f["active"] for f in buyer_typing] == [True]  # this one, nothing about the note before it


async def test_buyer_never_sees_a_note(server, open_chat):
    await put_order(server.base, "o-notes")
    rita = await server.client("rita", "sales_rep", name="Rita Rep")
    await rita.post("o-notes", "NOTE-BEFORE: key account", kind="note")
    buyer = await open_chat(server.base, "o-notes", BEA)
    supplier = await open_chat(server.base, "o-notes", SAM)
    await expect(buyer.note_toggle).to_have_count(0)  # buyers cannot write notes
    await expect(supplier.note_toggle).to_be_visible()

    await buyer.set_hidden(True)
    await supplier.note_toggle.click()
    await expect(supplier.note_toggle).to_have_attribute("aria-pressed", "true")
    await supplier.say("NOTE-LIVE: check stock first")
    await supplier.note_toggle.click()
    await supplier.say("Public reply after the notes")

    note = supplier.message("NOTE-LIVE")
    await expect(note).to_have_class(re.compile("chatd-msg--note"))
    await expect(note).to_contain_text("Internal note")
    await expect(supplier.message("NOTE-BEFORE")).to_contain_text("Internal note")

    # the public message came after the notes, so any note would be here by now
    await expect(buyer.message("Public reply after the notes")).to_be_visible()
    await expect(buyer.badge).to_have_text("1")  # notes are not counted either
    await expect(buyer.page.locator(".chatd-msg--note")).to_have_count(0)
    await expect(buyer.root).not_to_contain_text("NOTE-")
    await expect(buyer.root).not_to_contain_text("Internal note")

    await buyer.page.reload()  # and not from history either
    await buyer.online()
    await expect(buyer.message("Public reply after the notes")).to_be_visible()
    await expect(buyer.root).not_to_contain_text("NOTE-")
    assert await buyer.texts() == ["Public reply after the notes"]


XSS = "<img src=x onerror=alert(1)>"


async def test_message_html_is_shown_as_text_and_runs_nothing(server, open_chat):
    await put_order(server.base, "o-xss")
    evil_name = "Sam <img src=x onerror=alert('name')>"
    buyer = await open_chat(server.base, "o-xss", BEA)
    supplier = await open_chat(server.base, "o-xss", token("sam", "supplier", evil_name))

    await buyer.say(XSS)
    await supplier.say("<script>alert('script')</script><b>bold?</b>")
    await supplier.say("<img src=x onerror=\"window.__xss = 1\"><svg onload=alert('svg')>")
    bot = await server.client("bot1", "bot", name="<img src=x onerror=alert('bot')>", orders="*")
    await bot.send(
        {
            "type": "set_status",
            "order": "o-xss",
            "status": "<b>shipped</b>",
            "client_id": "s1",
            "text": "<img src=x onerror=alert('status')>",
        }
    )
    await bot.expect("ack")
    await buyer.page.evaluate("() => window.widget.openDispute('<img src=x onerror=alert(\"dispute\")>')")
    links = "Links: https://example.com/a?b=1&c=2 javascript:alert('link') http://safe.example/x."
    await supplier.say(links)

    for page in (buyer, supplier):
        await expect(page.message("Links:")).to_be_visible()
        await expect(page.message(XSS).locator(".chatd-text")).to_have_text(XSS)
        await expect(page.message("<script>").locator(".chatd-text")).to_have_text(
            "<script>alert('script')</script><b>bold?</b>"
        )
        await expect(page.page.locator(".chatd-dispute")).to_contain_text('<img src=x onerror=alert("dispute")>')
        await expect(page.page.locator(".chatd-status")).to_contain_text("<b>shipped</b>")
        await expect(page.page.locator(".chatd-event--status")).to_contain_text("<img src=x onerror=alert('status')>")
        # nothing from the data became markup
        for tag in ("img", "script", "b", "svg:not(.chatd-icon)"):
            await expect(page.root.locator(tag)).to_have_count(0)
        assert await page.page.evaluate("() => window.__xss") is None
        # links: only http(s), opened safely, built as elements
        anchors = page.message("Links:").locator("a")
        await expect(anchors).to_have_count(2)
        assert await anchors.evaluate_all("as => as.map(a => a.href)") == [
            "https://example.com/a?b=1&c=2",
            "http://safe.example/x",
        ]
        for rel in await anchors.evaluate_all("as => as.map(a => a.rel)"):
            assert "noopener" in rel and "noreferrer" in rel
        await expect(page.message("Links:")).to_contain_text("javascript:alert('link')")
    await expect(buyer.message("<script>").locator(".chatd-name")).to_have_text(evil_name)
    await expect(buyer.page.locator(".chatd-person").filter(has_text="Sam")).to_be_visible()
    for page in (buyer, supplier):
        assert page.dialogs == []


async def test_history_pages_load_when_scrolling_up(server, open_chat):
    await put_order(server.base, "o-paging")
    bot = await server.client("bot1", "bot", name="Delivery Bot", orders="*")
    rita = await server.client("rita", "sales_rep", name="Rita Rep")
    for i in range(1, 121):
        assert (await bot.post("o-paging", f"Message {i:03d}"))["type"] == "ack"
        if i % 25 == 0:  # notes in between: invisible to the buyer, gaps in her seqs
            await rita.post("o-paging", f"note after {i}", kind="note")
    status, _ = await api(server.base, "POST", "/api/v1/orders/o-paging/read", {"user": "bea", "seq": 124})
    assert status == 200
    buyer = await open_chat(server.base, "o-paging", BEA, height=640)

    await expect(buyer.message("Message 120")).to_be_in_viewport()
    await expect(buyer.messages).to_have_count(50)  # the newest page first
    await expect(buyer.message("Message 070")).to_have_count(0)

    scroller = buyer.page.locator(".chatd-scroll")
    await scroller.hover()
    await buyer.page.mouse.wheel(0, -100_000)
    await expect(buyer.messages).to_have_count(100)
    await expect(buyer.message("Message 071")).to_be_in_viewport()  # the reader's place is kept
    await buyer.page.mouse.wheel(0, -100_000)
    await expect(buyer.messages).to_have_count(120)
    await expect(buyer.page.locator(".chatd-top")).to_have_text("Beginning of the conversation")

    texts = await buyer.texts()
    assert texts == [f"Message {i:03d}" for i in range(1, 121)]
    seqs = [int(s) for s in await buyer.messages.evaluate_all("els => els.map(e => e.dataset.seq)")]
    assert seqs == sorted(set(seqs))
    await expect(buyer.root).not_to_contain_text("note after")

    # live messages still land at the bottom, once
    await bot.post("o-paging", "Message 121")
    await expect(buyer.messages).to_have_count(121)
    assert (await buyer.texts())[-1] == "Message 121"


async def test_status_and_dispute_are_shown_apart(server, open_chat):
    await put_order(server.base, "o-state")
    buyer = await open_chat(server.base, "o-state", BEA)
    supplier = await open_chat(server.base, "o-state", SAM)
    await expect(buyer.page.locator(".chatd-status")).to_have_text("Order status: Open")
    await expect(buyer.page.locator(".chatd-dispute")).to_be_hidden()

    await supplier.page.evaluate("() => window.widget.setStatus('shipped', 'Shipped with Parcel Express')")
    status = buyer.page.locator(".chatd-event--status")
    await expect(status).to_contain_text("Shipped with Parcel Express")
    await expect(status).to_contain_text("Sam Supplier")
    await expect(buyer.page.locator(".chatd-status")).to_have_text("Order status: Shipped")

    await buyer.page.evaluate("() => window.widget.openDispute('Two panels arrived cracked')")
    banner = supplier.page.locator(".chatd-dispute")
    await expect(banner).to_be_visible()
    await expect(banner).to_contain_text("Dispute open")
    await expect(banner).to_contain_text("Opened by Bea Buyer")
    await expect(banner).to_contain_text("Two panels arrived cracked")
    await expect(supplier.page.locator(".chatd-event--dispute")).to_contain_text("Dispute opened")

    await buyer.page.evaluate("() => window.widget.closeDispute('Replacement agreed')")
    await expect(banner).to_be_hidden()


async def test_a_dispute_staff_opened_names_them_with_its_message_out_of_the_page(server, open_chat):
    """A staff member is no participant: the banner has their name from the order's
    dispute, not from a message the widget may not have loaded."""
    await put_order(server.base, "o-staff-dispute")
    staff = await server.client("op1", "staff", name="Olga Operator")
    await staff.send(
        {"type": "dispute", "order": "o-staff-dispute", "action": "open", "client_id": "d-1", "reason": "Wrong item"}
    )
    assert (await staff.expect("ack", client_id="d-1"))["seq"] == 1
    bot = await server.client("bot1", "bot", name="Delivery Bot", orders="*")
    for i in range(60):  # more than the first page: the dispute message is not loaded
        assert (await bot.post("o-staff-dispute", f"Update {i}"))["type"] == "ack"
    status, _ = await api(server.base, "POST", "/api/v1/orders/o-staff-dispute/read", {"user": "bea", "seq": 61})
    assert status == 200  # read: the widget opens on the newest page, not on the first unread
    buyer = await open_chat(server.base, "o-staff-dispute", BEA)
    await expect(buyer.message("Update 59")).to_be_visible()
    await expect(buyer.page.locator(".chatd-event--dispute")).to_have_count(0)
    await expect(buyer.page.locator(".chatd-dispute")).to_contain_text("Opened by Olga Operator")


async def test_no_access_and_expired_token_end_the_chat_plainly(server, open_chat):
    await put_order(server.base, "o-closed")
    outsider = await open_chat(server.base, "o-closed", token("mallory", "buyer", "Mallory"), wait_online=False)
    await expect(outsider.root).to_have_attribute("data-state", "closed")
    await expect(outsider.page.get_by_role("alert")).to_have_text("This order’s chat is not available.")
    await expect(outsider.input).to_be_hidden()
    await expect(outsider.page.locator(".chatd-body")).to_be_hidden()  # a state of its own, not under an empty box
    await outsider.screenshot("closed-not-available.png")

    expired = await open_chat(server.base, "o-closed", token("bea", "buyer", "Bea Buyer", ttl_s=-10), wait_online=False)
    await expect(expired.root).to_have_attribute("data-state", "closed")
    await expect(expired.page.get_by_role("alert")).to_contain_text("session has expired")


async def test_avatars_show_the_picture_the_order_gave_and_initials_otherwise(server, open_chat, host_site):
    body = {role: {"id": uid, "name": name} for role, (uid, name) in PEOPLE.items()}
    body["supplier"]["avatar_url"] = host_site + "/avatar.png"
    body["sales_rep"]["avatar_url"] = host_site + "/missing.png"  # does not load: the initials stay
    status, data = await api(server.base, "PUT", "/api/v1/orders/o-avatar", body)
    assert status == 201, data
    buyer = await open_chat(server.base, "o-avatar", BEA)
    sam = await open_chat(server.base, "o-avatar", SAM)
    await sam.say("Hello, photo of the pallet follows")
    got = buyer.message("photo of the pallet")
    await expect(got.locator(".chatd-avatar-img")).to_have_attribute("src", host_site + "/avatar.png")
    assert await got.locator(".chatd-avatar-img").evaluate("img => img.complete && img.naturalWidth") == 4
    person = buyer.page.locator(".chatd-person").filter(has_text="Sam")
    await expect(person.locator(".chatd-avatar-img")).to_have_count(1)
    rita = buyer.page.locator(".chatd-person").filter(has_text="Rita")
    await expect(rita.locator(".chatd-avatar-img")).to_have_count(0)  # the broken picture was taken away
    await expect(rita.locator(".chatd-avatar")).to_have_text("RR")


async def test_seen_by_survives_a_reload(server, open_chat):
    """Receipts come back with the history (`joined.receipts`), not only live."""
    await put_order(server.base, "o-seen")
    buyer = await open_chat(server.base, "o-seen", BEA)
    supplier = await open_chat(server.base, "o-seen", SAM)
    await buyer.say("Did the invoice arrive?")
    mine = buyer.message("Did the invoice arrive?")
    await expect(mine.locator(".chatd-msg-foot")).to_have_text("Seen by Sam")
    await buyer.page.reload()
    await buyer.online()
    await expect(buyer.message("Did the invoice arrive?").locator(".chatd-msg-foot")).to_have_text("Seen by Sam")
    await supplier.page.reload()  # and the reader's own marker is no receipt to themselves
    await supplier.online()
    await expect(supplier.message("Did the invoice arrive?")).to_be_visible()
