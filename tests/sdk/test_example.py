"""examples/delivery_bot.py, run as a program against a live server."""

from __future__ import annotations

from chatd import client
from tests.sdk.conftest import run_py
from tests.sdk.waits import messages
from tests.support.client import SECRET, token

STEPS = ["confirmed", "packed", "shipped", "delivered"]


async def test_delivery_bot_walks_the_order_through_its_statuses(chatd_proc, api):
    order = await api.order()
    bot_token = token("delivery-bot", "bot", "Delivery Bot", orders=[order])
    async with client.connect(chatd_proc.base, token("buyer1", "buyer")) as buyer:
        await buyer.join(order)
        r = await run_py(
            "examples/delivery_bot.py",
            "--url",
            chatd_proc.base,
            "--order",
            order,
            "--pause-s",
            "0",
            env={"CHATD_TOKEN": bot_token},
        )
        assert r.code == 0, r
        assert r.out.splitlines() == [f"{order}: {s} (#{i})" for i, s in enumerate(STEPS, 1)]
        got = await messages(buyer, 4)
        assert [(m.seq, m.kind, m.status, m.sender.name) for m in got] == [
            (i, "status", s, "Delivery Bot") for i, s in enumerate(STEPS, 1)
        ]
        assert all(m.text for m in got)
    assert (await api.get_order(order))["status"] == "delivered"

    # run again, signing its own tokens: it sees the order is done and posts nothing
    r = await run_py(
        "examples/delivery_bot.py",
        "--url",
        chatd_proc.base,
        "--order",
        order,
        "--pause-s",
        "0",
        env={"CHATD_AUTH_SECRET": SECRET},
    )
    assert (r.code, r.out) == (0, f"{order}: already delivered, nothing to do\n"), r
    assert len(await api.messages(order)) == 4


async def test_delivery_bot_resumes_from_the_current_status(chatd_proc, api):
    order = await api.order(status="packed")
    r = await run_py(
        "examples/delivery_bot.py",
        "--url",
        chatd_proc.base,
        "--order",
        order,
        "--pause-s",
        "0",
        env={"CHATD_TOKEN": token("delivery-bot", "bot", orders="*")},
    )
    assert r.code == 0, r
    assert [m["status"] for m in await api.messages(order)] == ["shipped", "delivered"]
