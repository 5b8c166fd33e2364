"""The widget's order controls in Chromium: status, receipt, dispute, no reply needed,
a closed chat; each shown only to the roles that may use it, refusals shown plainly.

Screenshots land in artifacts/browser/ (gitignored): look at them.
"""

from __future__ import annotations

import re

from playwright.async_api import expect

from tests.browser.conftest import api, axe_check, put_order
from tests.support.client import token

BEA = token("bea", "buyer", "Bea Buyer")
SAM = token("sam", "supplier", "Sam Supplier")
STAFF = token("stella", "staff", "Stella Staff")
PHONE = {"width": 390, "height": 780}


def console_errors(*chats) -> list[str]:
    return [m for c in chats for m in c.console if m.startswith("error")]


def button(chat, name: str):
    """One of the widget's order actions."""
    return chat.page.locator(".chatd-actions").get_by_role("button", name=name, exact=True)


async def confirm(chat, name: str, reason: str | None = None) -> None:
    dialog = chat.page.locator(".chatd-dialog")
    await expect(dialog).to_be_visible()
    if reason is not None:
        await dialog.get_by_label(re.compile("^Reason")).fill(reason)
    await dialog.get_by_role("button", name=name, exact=True).click()
    await expect(dialog).to_be_hidden()


async def test_status_receipt_and_dispute_controls_live(server, open_chat):
    await put_order(server.base, "o-ctl", workflow="factory")
    supplier = await open_chat(server.base, "o-ctl", SAM)
    buyer = await open_chat(server.base, "o-ctl", BEA, **PHONE)
    chip = buyer.page.locator(".chatd-status")
    await expect(chip).to_have_text("Order status: Confirmed")
    await expect(chip).to_have_attribute("data-tone", "neutral")

    # the supplier may advance the order, the buyer may not; the buyer may open a dispute, the supplier may not
    await expect(button(buyer, "Update status")).to_be_hidden()
    await expect(button(buyer, "Confirm receipt")).to_be_hidden()
    await expect(button(buyer, "Open dispute")).to_be_visible()
    await expect(button(supplier, "Open dispute")).to_be_hidden()
    await expect(button(supplier, "Close dispute")).to_be_hidden()

    await button(supplier, "Update status").click()
    items = supplier.page.locator(".chatd-menu-item")
    await expect(items).to_have_count(1)  # only next_statuses
    await expect(items).to_have_text("In Production")
    await expect(items).to_have_attribute("data-tone", "info")
    await supplier.screenshot("controls-status-menu-desktop.png")
    await axe_check(supplier.page, "status menu")
    await items.click()
    await confirm(supplier, "In Production")
    await expect(chip).to_have_text("Order status: In Production")
    await expect(chip).to_have_attribute("data-tone", "info")
    await expect(buyer.page.locator(".chatd-event--status").last).to_have_attribute("data-tone", "info")

    # shipped: now the buyer confirms receipt
    status, data = await api(server.base, "PUT", "/api/v1/orders/o-ctl", {"status": "shipped", "force": True})
    assert status == 200, data
    await expect(button(supplier, "Update status")).to_be_hidden()  # the buyer's move now
    await button(buyer, "Confirm receipt").click()
    await confirm(buyer, "Confirm receipt")
    for page in (buyer, supplier):
        await expect(page.page.locator(".chatd-status")).to_have_text("Order status: Delivered")
        await expect(page.page.locator(".chatd-status")).to_have_attribute("data-tone", "success")
    await expect(button(buyer, "Confirm receipt")).to_be_hidden()

    # a dispute with a reason dialog; cancelling it opens nothing
    await button(buyer, "Open dispute").click()
    await buyer.screenshot("controls-dispute-dialog-phone.png")
    await axe_check(buyer.page, "dispute dialog", [".chatd-host", ".chatd-dialog"])
    await buyer.page.locator(".chatd-dialog").get_by_role("button", name="Cancel").click()
    await expect(buyer.page.locator(".chatd-dialog")).to_be_hidden()
    await expect(supplier.page.locator(".chatd-dispute")).to_be_hidden()
    await button(buyer, "Open dispute").click()
    await confirm(buyer, "Open dispute", "One panel arrived cracked")
    banner = supplier.page.locator(".chatd-dispute")
    await expect(banner).to_contain_text("One panel arrived cracked")
    await expect(button(buyer, "Open dispute")).to_be_hidden()
    await expect(button(buyer, "Close dispute")).to_be_visible()  # the opener may close it
    await expect(button(supplier, "Close dispute")).to_be_hidden()

    # a refused action is shown: the supplier may not close the buyer's dispute
    await supplier.page.evaluate("() => window.widget.closeDispute('not mine to close')")
    notice = supplier.page.locator(".chatd-notice")
    await expect(notice).to_be_visible()
    await expect(notice).to_contain_text("The dispute was not closed")
    await supplier.screenshot("controls-refused-desktop.png")
    await notice.get_by_role("button", name="Dismiss").click()
    await expect(notice).to_be_hidden()
    await expect(banner).to_be_visible()

    await button(buyer, "Close dispute").click()
    await confirm(buyer, "Close dispute", "Replacement agreed")
    await expect(banner).to_be_hidden()
    closed_card = buyer.page.locator(".chatd-event--dispute").filter(has_text="Dispute closed")
    await expect(closed_card).to_have_class(re.compile("chatd-event--resolved"))  # not alarm red
    await buyer.screenshot("controls-after-dispute-phone.png")
    await supplier.screenshot("controls-after-dispute-desktop.png")
    await axe_check(buyer.page, "buyer, phone")
    await axe_check(supplier.page, "supplier, desktop")
    assert not console_errors(buyer, supplier)


async def test_a_status_change_may_carry_a_message(server, open_chat):
    await put_order(server.base, "o-ship", workflow="retail", status="in_progress", force=True)
    supplier = await open_chat(server.base, "o-ship", SAM, **PHONE)
    buyer = await open_chat(server.base, "o-ship", BEA)
    await button(supplier, "Update status").click()
    await supplier.page.locator(".chatd-menu-item").filter(has_text="Shipped").click()
    dialog = supplier.page.locator(".chatd-dialog")
    field = dialog.get_by_label("Message to the buyer (optional)")
    await expect(field).to_be_visible()
    await expect(field).to_have_attribute("maxlength", "4000")
    await supplier.screenshot("controls-status-message-phone.png")
    await axe_check(supplier.page, "status dialog", [".chatd-host", ".chatd-dialog"])
    text = "Tracking <b>1Z999</b> <img src=x onerror=window.pwned=1>"
    await field.fill(text)
    await dialog.get_by_role("button", name="Shipped", exact=True).click()
    await expect(dialog).to_be_hidden()
    card = buyer.page.locator(".chatd-event--status").last
    await expect(card).to_contain_text(text)  # the text as written, never markup
    await expect(card.locator("b, img")).to_have_count(0)
    await expect(buyer.page.locator(".chatd-status")).to_have_text("Order status: Shipped")
    assert not await buyer.page.evaluate("() => window.pwned")
    # without a message the server's default text stays
    await button(supplier, "Update status").click()
    await supplier.page.locator(".chatd-menu-item").filter(has_text="Completed").click()
    await expect(field).to_have_value("")
    await dialog.get_by_role("button", name="Completed", exact=True).click()
    default = re.compile("Status changed to completed", re.IGNORECASE)  # the server's words, name or label
    await expect(buyer.page.locator(".chatd-event--status").last).to_contain_text(default)
    assert not console_errors(buyer, supplier)


async def test_no_reply_needed_for_the_supplier_side_only(server, open_chat):
    await put_order(server.base, "o-noreply", workflow="factory")
    supplier = await open_chat(server.base, "o-noreply", SAM, **PHONE)
    buyer = await open_chat(server.base, "o-noreply", BEA)
    await buyer.say("Thanks, that is all for now!")
    await expect(supplier.message("that is all")).to_be_visible()
    no_reply = button(supplier, "No reply needed")
    await expect(no_reply).to_be_visible()
    await expect(button(buyer, "No reply needed")).to_be_hidden()
    await supplier.screenshot("controls-no-reply-phone.png")
    await axe_check(supplier.page, "no reply needed")
    await no_reply.click()
    await expect(no_reply).to_be_hidden()
    # a new question starts the wait again
    await buyer.say("One more question: can you ship on Friday?")
    await expect(no_reply).to_be_visible()
    assert not console_errors(buyer, supplier)


async def test_a_closed_chat_says_why_and_has_no_field(server, open_chat):
    await put_order(server.base, "o-done", workflow="retail")
    buyer = await open_chat(server.base, "o-done", BEA, **PHONE)
    staff = await open_chat(server.base, "o-done", STAFF)
    await button(staff, "Update status").click()
    await staff.page.locator(".chatd-menu-item").filter(has_text="Cancelled").click()
    await confirm(staff, "Cancelled")
    note = buyer.page.locator(".chatd-closed-note")
    await expect(note).to_have_text("This chat is closed: the order is Cancelled. You can still read the conversation.")
    await expect(buyer.input).to_be_hidden()
    await expect(button(buyer, "Open dispute")).to_be_visible()  # a buyer may always open one
    await expect(button(buyer, "Ask support")).to_be_hidden()
    await expect(buyer.page.locator(".chatd-status")).to_have_attribute("data-tone", "danger")
    await expect(buyer.page.locator(".chatd-event--status").last).to_have_attribute("data-tone", "danger")
    await expect(staff.input).to_be_visible()  # staff still write
    await buyer.screenshot("controls-closed-phone.png")
    await axe_check(buyer.page, "closed chat")
    assert not console_errors(buyer, staff)


async def test_a_dispute_reopens_a_closed_chat_for_the_buyer(server, open_chat):
    await put_order(server.base, "o-complete", workflow="retail")
    buyer = await open_chat(server.base, "o-complete", BEA, **PHONE)
    supplier = await open_chat(server.base, "o-complete", SAM)
    status, data = await api(server.base, "PUT", "/api/v1/orders/o-complete", {"status": "completed", "force": True})
    assert status == 200, data
    await expect(buyer.page.locator(".chatd-closed-note")).to_contain_text("the order is Completed")
    await expect(buyer.input).to_be_hidden()
    # closed: the buyer keeps "Open dispute" and nothing else; the supplier gets none
    await expect(buyer.page.locator(".chatd-actions button:visible")).to_have_count(1)
    await expect(button(supplier, "Open dispute")).to_be_hidden()
    await expect(supplier.page.locator(".chatd-actions")).to_be_hidden()
    await buyer.screenshot("controls-closed-dispute-phone.png")
    await axe_check(buyer.page, "closed chat, open dispute")
    await button(buyer, "Open dispute").click()
    await confirm(buyer, "Open dispute", "The parcel was empty")
    # the dispute reopens the chat: the field is back for both, the closed note gone
    for chat in (buyer, supplier):
        await expect(chat.page.locator(".chatd-dispute")).to_contain_text("The parcel was empty")
        await expect(chat.page.locator(".chatd-closed-note")).to_be_hidden()
        await expect(chat.input).to_be_visible()
    await expect(button(buyer, "Close dispute")).to_be_visible()
    await buyer.say("Photos follow")
    await expect(supplier.message("Photos follow")).to_be_visible()
    assert not console_errors(buyer, supplier)


async def test_host_css_cannot_reach_the_widget(server, open_chat):
    await put_order(server.base, "o-shadow")
    buyer = await open_chat(server.base, "o-shadow", BEA)
    host_css = "header { color: #fff !important; } h2, button { display: none !important; }"
    await buyer.page.add_style_tag(content=host_css)
    title = buyer.page.locator(".chatd-title")
    await expect(title).to_be_visible()
    assert await title.evaluate("t => getComputedStyle(t).color") != "rgb(255, 255, 255)"
    await expect(buyer.send_button).to_be_visible()
    # the public API is unchanged
    await buyer.page.evaluate("() => window.widget.send('still here')")
    await expect(buyer.message("still here")).to_be_visible()


async def test_a_token_with_the_wrong_secret_is_not_called_expired(server, open_chat):
    await put_order(server.base, "o-secret")
    forged = token("bea", "buyer", "Bea Buyer").rsplit(".", 1)[0] + ".c2lnbmF0dXJlLWZyb20tYW5vdGhlci1zZWNyZXQ"
    chat = await open_chat(server.base, "o-secret", forged, wait_online=False, **PHONE)
    alert = chat.page.get_by_role("alert")
    await expect(alert).to_contain_text("token is not valid")
    await expect(alert).not_to_contain_text("expired")
    await expect(chat.input).to_be_hidden()
    await chat.screenshot("closed-invalid-token-phone.png")
    await axe_check(chat.page, "invalid token")


async def test_ask_support_puts_the_order_in_the_staff_queue(server, open_chat):
    await put_order(server.base, "o-help")
    buyer = await open_chat(server.base, "o-help", BEA)
    supplier = await open_chat(server.base, "o-help", SAM)
    staff = await open_chat(server.base, "o-help", STAFF)
    await expect(button(staff, "Ask support")).to_be_hidden()  # staff answer help requests
    await button(buyer, "Ask support").click()
    await confirm(buyer, "Ask support", "the carrier lost my pallet")
    for chat in (buyer, supplier, staff):  # a buyer asks openly: everyone sees it
        await expect(
            chat.page.locator(".chatd-text", has_text="Help requested: the carrier lost my pallet")
        ).to_be_visible()
    await button(supplier, "Ask support").click()
    await confirm(supplier, "Ask support")
    await expect(staff.page.locator(".chatd-text").get_by_text("Help requested", exact=True)).to_be_visible()
    await expect(buyer.page.locator(".chatd-text").get_by_text("Help requested", exact=True)).to_have_count(
        0
    )  # the supplier's is a note
    st, page = await api(server.base, "GET", "/api/v1/threads?attention=true")
    assert st == 200 and [(t["order"], "help" in t["reasons"]) for t in page["threads"]] == [("o-help", True)]
    assert console_errors(buyer, supplier, staff) == []


async def test_past_statuses_keep_their_label_and_tone_after_a_reload(server, open_chat):
    """The history's status cards show each status as its workflow does (`statuses` of
    `joined`), not only the current one and those that may come next."""
    await put_order(server.base, "o-hist", workflow="factory")
    for status in ("in_production", "quality_check", "shipped"):
        st, body = await api(server.base, "PUT", "/api/v1/orders/o-hist", {"status": status})
        assert st == 200, body
    buyer = await open_chat(server.base, "o-hist", BEA)  # opened after the moves: none seen live
    cards = buyer.page.locator(".chatd-event--status[data-status=in_production]")
    await expect(cards).to_have_attribute("data-tone", "info")
    await expect(cards).to_contain_text("In Production")
    await expect(buyer.page.locator(".chatd-event--status[data-status=quality_check]")).to_have_attribute(
        "data-tone", "info"
    )
