"""`chatd demo`: the order page, the demo bot, and screenshots of what people see.

The screenshots land in artifacts/browser/ (gitignored): look at them.
"""

from __future__ import annotations

import re

import pytest
from playwright.async_api import expect

from chatd.app import create_app
from chatd.cli import DEMO_ORDER, DEMO_ORDERS, _demo_startup
from tests.browser.conftest import api, axe_check
from tests.conftest import make_config
from tests.support import samples
from tests.support.client import token

BEA = token("bea", "buyer", "Bea Buyer")
SAM = token("sam", "supplier", "Sam Supplier")
RITA = token("rita", "sales_rep", "Rita Rep")


@pytest.fixture
async def demo(aiohttp_server, tmp_path):
    """The app exactly as `chatd demo` starts it (demo order, demo bot)."""
    cfg = make_config(tmp_path)
    app = create_app(cfg)
    app.on_startup.append(_demo_startup(cfg))
    srv = await aiohttp_server(app)
    return f"http://127.0.0.1:{srv.port}"


async def test_demo_page_and_bot_status_update(demo, open_chat):
    buyer = await open_chat(demo, DEMO_ORDER, BEA, path="/demo")
    supplier = await open_chat(demo, DEMO_ORDER, SAM, path="/demo")
    await expect(buyer.page.locator("#who")).to_have_text("Bea Buyer · Buyer")
    await expect(buyer.page.locator("#order-status")).to_have_text("Open")

    bot = supplier.page.get_by_role("button", name=re.compile("as the demo bot"))
    await expect(bot).to_have_text("Post “Confirmed” as the demo bot")
    await bot.click()
    for page in (buyer, supplier):
        update = page.page.locator(".chatd-event--status")
        await expect(update).to_contain_text("Order confirmed")
        await expect(update).to_contain_text("Delivery Bot")
        await expect(page.page.locator(".chatd-status")).to_have_text("Order status: Confirmed")
        await expect(page.page.locator("#order-status")).to_have_text("Confirmed")
    await expect(bot).to_have_text("Post “Packed” as the demo bot")
    # the bot posts as the shop's side: the buyer is not offered it
    await expect(buyer.page.locator("#bot")).to_be_hidden()

    await buyer.say("Works under the demo page's CSP too")
    await expect(supplier.message("CSP too")).to_be_visible()
    for page in (buyer, supplier):
        assert not [m for m in page.console if "Content Security Policy" in m], page.console


async def test_the_demo_bot_posts_to_the_order_shown(demo, open_chat):
    other = DEMO_ORDERS[1]
    supplier = await open_chat(demo, other, SAM, path="/demo")
    first = await open_chat(demo, DEMO_ORDER, SAM, path="/demo")
    bot = supplier.page.get_by_role("button", name=re.compile("as the demo bot"))
    await expect(bot).to_have_text("Post “Confirmed” as the demo bot")
    await bot.click()
    await expect(supplier.page.locator(".chatd-event--status")).to_contain_text("Order confirmed")
    await expect(supplier.page.locator("#order-status")).to_have_text("Confirmed")
    await expect(bot).to_have_text("Post “Packed” as the demo bot")
    # the first demo order is untouched
    await expect(first.page.locator("#order-status")).to_have_text("Open")
    await expect(first.page.locator(".chatd-event--status")).to_have_count(0)
    st, data = await api(demo, "GET", f"/api/v1/orders/{DEMO_ORDER}")
    assert st == 200 and data["status"] == "open", data


async def test_demo_on_a_phone_and_image_previews_under_its_csp(demo, open_chat, tmp_path):
    """A phone: the composer is on screen at once and the message list is the only
    scroll area; an image's preview shows under the page's CSP (img-src 'self' data:)."""
    buyer = await open_chat(demo, DEMO_ORDER, BEA, path="/demo", width=390, height=844)
    supplier = await open_chat(demo, DEMO_ORDER, SAM, path="/demo")
    await expect(buyer.input).to_be_in_viewport()
    for i in range(12):
        await supplier.say(f"Update {i + 1}: all on track, with a line long enough to wrap on a phone screen.")
    await expect(buyer.message("Update 12")).to_be_visible()
    await expect(buyer.input).to_be_in_viewport()
    assert await buyer.page.evaluate("() => document.scrollingElement.scrollHeight <= innerHeight")

    photo = tmp_path / "pallet.png"
    photo.write_bytes(samples.png(320, 240))
    await supplier.page.set_input_files(".chatd-composer input[type=file]", [str(photo)])
    await expect(supplier.page.locator(".chatd-chip--ready")).to_contain_text("pallet.png")
    await supplier.say("Photo of the pallet")
    preview = buyer.message("Photo of the pallet").locator("img.chatd-thumb")
    await expect(preview).to_have_attribute("src", re.compile(r"^data:image/png;base64,"))
    assert await preview.evaluate("i => i.decode().then(() => i.naturalWidth)") == 320
    await buyer.screenshot("demo-phone-buyer.png")
    for page in (buyer, supplier):
        assert not [m for m in page.console if "Content Security Policy" in m or m.startswith("error")], page.console
    await axe_check(buyer.page, "demo, phone")  # last: axe itself applies inline styles the CSP refuses


async def test_demo_orders_page_with_badges_bell_and_inbox(demo, open_chat):
    """Each participant's orders page: a badge per order, the bell, the inbox; the order page has the bell too."""
    bea = await open_chat(demo, "", BEA, path="/demo/orders", wait_online=False, width=390, height=844)
    sam = await open_chat(demo, "", SAM, path="/demo/orders", wait_online=False, width=1280, height=860)
    bea_order = await open_chat(demo, DEMO_ORDER, BEA, path="/demo")
    for page in (bea, sam):
        await expect(page.page.locator(".order-card")).to_have_count(len(DEMO_ORDERS))
        await expect(page.page.locator(".chatd-inbox-row")).to_have_count(len(DEMO_ORDERS))
    rita = await open_chat(demo, "demo-1002", RITA, path="/demo")
    await rita.say("Hi both, the quote for the second order is ready.")
    for page in (bea, sam):
        chat_button = page.page.locator(".order-card").filter(has_text="demo-1002").locator(".open-chat")
        await expect(chat_button).to_have_attribute("data-unread", "1")
        await expect(chat_button.locator(".chatd-cbadge")).to_have_text("1")
        bell = page.page.get_by_role("button", name=re.compile("^Messages, "))
        await expect(bell).to_have_attribute("aria-label", "Messages, 1 unread")
        await expect(page.page.locator(".chatd-inbox-row").first).to_contain_text("quote for the second order")
    bell = bea_order.page.get_by_role("button", name=re.compile("^Messages, "))
    await expect(bell).to_have_attribute("aria-label", "Messages, 1 unread")
    await bell.click()
    link = bea_order.page.locator("a.chatd-bell-item")
    await expect(link).to_contain_text("demo-1002")
    assert "order=demo-1002" in (await link.get_attribute("href") or "")
    await bea_order.screenshot("demo-order-bell.png")
    await bea.screenshot("demo-orders-phone-buyer.png", full_page=True)
    await sam.screenshot("demo-orders-desktop-supplier.png")
    for page in (bea, sam, bea_order, rita):
        assert not [m for m in page.console if "Content Security Policy" in m or m.startswith("error")], page.console
    await axe_check(bea.page, "orders page, phone")
    await axe_check(sam.page, "orders page, desktop")


async def test_demo_endpoints(demo):
    async def get(path, auth=None):
        import aiohttp

        headers = {"Authorization": f"Bearer {auth}"} if auth else {}
        async with aiohttp.ClientSession() as s, s.get(demo + path, headers=headers) as r:
            return r.status, r.headers, await r.read()

    status, headers, body = await get("/widget.js")
    assert status == 200 and headers["Content-Type"].startswith("text/javascript")
    assert b"ChatdWidget" in body
    status, headers, _ = await get("/widget.css")
    assert status == 200 and headers["Content-Type"].startswith("text/css")
    status, headers, body = await get("/demo")
    assert status == 200 and "default-src 'self'" in headers["Content-Security-Policy"]
    assert headers["Referrer-Policy"] == "no-referrer"

    assert (await get("/demo/bot"))[0] == 401
    outsider = token("mallory", "buyer", "Mallory")
    assert (await get("/demo/bot", outsider))[0] == 404
    assert (await get("/demo/bot", BEA))[0] == 200
    st, data = await api(demo, "POST", "/demo/bot", auth=outsider)
    assert st == 404, data
    st, data = await api(demo, "POST", f"/demo/bot?order={DEMO_ORDERS[2]}", auth=outsider)
    assert st == 404, data  # another demo order: as closed to an outsider


async def test_screenshots_of_buyer_and_supplier(demo, open_chat):
    """A realistic conversation, photographed as the buyer (phone) and supplier (desktop)."""
    supplier = await open_chat(demo, DEMO_ORDER, SAM, path="/demo", width=1280, height=820)
    buyer = await open_chat(demo, DEMO_ORDER, BEA, path="/demo", width=390, height=844)
    rep = await open_chat(demo, DEMO_ORDER, RITA, width=900, height=700)

    await buyer.say("Hi Sam, could you confirm the delivery date for the LED panels? We need them on site by Friday.")
    await expect(supplier.message("on site by Friday")).to_be_visible()
    await supplier.say(
        "Hi Bea! They ship tomorrow morning, so Thursday delivery is realistic.\nI'll post the tracking link here."
    )
    await rep.note_toggle.click()
    await rep.say("Key account: please prioritise, and double-check the mounting kits are in stock.")
    await expect(supplier.message("Key account")).to_be_visible()
    await supplier.page.get_by_role("button", name=re.compile("as the demo bot")).click()
    await expect(buyer.page.locator(".chatd-event--status")).to_be_visible()
    await supplier.page.get_by_role("button", name=re.compile("as the demo bot")).click()
    await supplier.page.get_by_role("button", name=re.compile("as the demo bot")).click()
    await expect(buyer.page.locator(".chatd-event--status")).to_have_count(3)
    await buyer.say("Great, thanks! The tracking link works: https://tracking.example.com/PX-1001-DE")

    await expect(supplier.message("tracking link works")).to_be_visible()
    await expect(supplier.badge).to_be_hidden()  # all seen
    await supplier.set_hidden(True)  # Sam switches tabs; Bea finds a problem
    await buyer.say("Hmm, one panel from the previous delivery arrived with a cracked frame.")
    await buyer.page.evaluate(
        "() => window.chatdDemoWidget.openDispute('Cracked frame on 1 of 2 panels (previous delivery)')"
    )
    await expect(buyer.page.locator(".chatd-dispute")).to_be_visible()
    await expect(supplier.badge).to_have_text("2")
    await expect(supplier.divider).to_be_attached()
    await expect(supplier.page.locator(".chatd-dispute")).to_contain_text("Cracked frame")

    await supplier.input.press_sequentially("Sorry about that, Bea. I")
    await expect(buyer.typing).to_have_text("Sam is typing…")

    for page in (buyer, supplier):
        await expect(page.pending).to_have_count(0)
    shot = await supplier.screenshot("supplier.png")
    assert shot.stat().st_size > 10_000
    await buyer.screenshot("buyer.png")
    await buyer.page.locator(".chatd").screenshot(path=str(shot.parent / "buyer-widget.png"))
    await rep.screenshot("sales-rep.png")
