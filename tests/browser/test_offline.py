"""Offline and lost acks: a message typed during an outage arrives exactly once."""

from __future__ import annotations

import asyncio
import json
import re

import pytest
from playwright.async_api import expect

from tests.browser.conftest import api, put_order
from tests.browser.test_chat import BEA, SAM
from tests.support.procs import ServerProc

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
