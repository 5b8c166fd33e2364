"""`chatd tail`, `chatd say`, `chatd history` as child processes against a live server."""

from __future__ import annotations

import asyncio
import json
import re
import signal
import sys

from chatd import client
from tests.sdk.conftest import run_py
from tests.sdk.waits import messages
from tests.support.client import API_KEY, TIMEOUT, token
from tests.support.procs import ROOT, child_env, free_port

BOT_TOKEN = token("bot1", "bot", "Delivery Bot", orders="*")
LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d #(\d+) (.+?) \((\w+)\): (.*)$")


class Tail:
    """`chatd tail` running in the background, read line by line."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.err = ""

    @classmethod
    async def start(cls, *args: str, env: dict | None = None) -> Tail:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "chatd",
            "tail",
            *args,
            cwd=ROOT,
            env=child_env(**(env or {})),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        return cls(proc)

    async def line(self) -> str:
        async with asyncio.timeout(TIMEOUT):
            raw = await self.proc.stdout.readline()
        assert raw, f"tail ended: {await self.proc.stderr.read()!r}"
        return raw.decode().rstrip("\n")

    async def stop(self) -> int:
        self.proc.send_signal(signal.SIGINT)
        async with asyncio.timeout(TIMEOUT):
            _, err = await self.proc.communicate()
        self.err = err.decode()
        return self.proc.returncode

    async def kill(self) -> None:
        if self.proc.returncode is None:
            self.proc.kill()
            await self.proc.communicate()


async def test_tail_follows_a_room_in_readable_lines(chatd_proc, api):
    order = await api.order()
    async with client.connect(chatd_proc.base, BOT_TOKEN) as bot:
        await bot.send(order, "already there")
        tail = await Tail.start(
            "--url", chatd_proc.base, "--order", order, env={"CHATD_TOKEN": token("supplier1", "supplier")}
        )
        try:
            head = await tail.line()
            assert head.startswith(f"-- {order}: status open, last seq 1;") and "Supplier1 (supplier)" in head
            assert LINE.match(await tail.line()).groups() == ("1", "Delivery Bot", "bot", "already there")
            await bot.send(order, "two\nlines")
            await bot.set_status(order, "shipped", "On its way")
            assert LINE.match(await tail.line()).groups() == ("2", "Delivery Bot", "bot", "two")
            assert await tail.line() == "    lines"
            assert LINE.match(await tail.line()).groups() == (
                "3",
                "Delivery Bot",
                "bot",
                "[status: shipped] On its way",
            )
            assert await tail.line() == f"-- {order}: status shipped"
            assert await tail.stop() == 0
        finally:
            await tail.kill()


async def test_tail_json_prints_one_event_per_line(chatd_proc, api):
    order = await api.order()
    tail = await Tail.start(
        "--url", chatd_proc.ws_url, "--token", token("supplier1", "supplier"), "--order", order, "--json"
    )
    try:
        joined = json.loads(await tail.line())
        assert (joined["type"], joined["order"], joined["last_seq"]) == ("joined", order, 0)
        async with client.connect(chatd_proc.base, BOT_TOKEN) as bot:
            await bot.send(order, "hello")
        events = [json.loads(await tail.line()) for _ in range(1)]
        while events[-1]["type"] != "message":
            events.append(json.loads(await tail.line()))
        m = events[-1]
        assert (m["seq"], m["text"], m["sender"]["id"]) == (1, "hello", "bot1")
        assert await tail.stop() == 0
    finally:
        await tail.kill()


async def test_say_posts_as_the_bot_and_sets_the_status(chatd_proc, api):
    order = await api.order()
    env = {"CHATD_URL": chatd_proc.base, "CHATD_TOKEN": BOT_TOKEN}
    async with client.connect(chatd_proc.base, token("buyer1", "buyer")) as buyer:
        await buyer.join(order)
        r = await run_py("-m", "chatd", "say", "--order", order, "--text", "Packed", env=env)
        assert (r.code, r.out) == (0, f"{order} #1\n"), r
        r = await run_py("-m", "chatd", "say", "--order", order, "--status", "shipped", "--text", "Shipped!", env=env)
        assert (r.code, r.out) == (0, f"{order} #2\n"), r
        r = await run_py("-m", "chatd", "say", "--order", order, "--text", "Once", "--client-id", "k1", env=env)
        again = await run_py("-m", "chatd", "say", "--order", order, "--text", "Once", "--client-id", "k1", env=env)
        assert (r.out, again.out) == (f"{order} #3\n", f"{order} #3 (already stored: same client id)\n")
        got = await messages(buyer, 3)
        assert [(m.kind, m.sender.id, m.text, m.status) for m in got] == [
            ("text", "bot1", "Packed", None),
            ("status", "bot1", "Shipped!", "shipped"),
            ("text", "bot1", "Once", None),
        ]
    assert (await api.get_order(order))["status"] == "shipped"
    # with only the api key it posts over REST, as the system
    r = await run_py(
        "-m",
        "chatd",
        "say",
        "--url",
        chatd_proc.base,
        "--api-key",
        API_KEY,
        "--order",
        order,
        "--text",
        "From the platform",
    )
    assert (r.code, r.out) == (0, f"{order} #4\n"), r
    last = (await api.messages(order))[-1]
    assert (last["sender"]["id"], last["text"]) == ("system", "From the platform")


async def test_history_exports_readable_lines_and_ndjson(chatd_proc, api):
    order = await api.order()
    async with client.connect(chatd_proc.base, BOT_TOKEN) as bot:
        for i in range(3):
            await bot.send(order, f"h{i}")
        await bot.send(order, "internal", kind="note")
    r = await run_py(
        "-m", "chatd", "history", "--url", chatd_proc.base, "--order", order, env={"CHATD_API_KEY": API_KEY}
    )
    assert r.code == 0, r
    lines = r.out.splitlines()
    assert [LINE.match(x).groups() for x in lines] == [
        ("1", "Delivery Bot", "bot", "h0"),
        ("2", "Delivery Bot", "bot", "h1"),
        ("3", "Delivery Bot", "bot", "h2"),
        ("4", "Delivery Bot", "bot", "[note] internal"),
    ]
    r = await run_py(
        "-m", "chatd", "history", "--url", chatd_proc.base, "--order", order, "--ndjson", "--api-key", API_KEY
    )
    assert r.code == 0, r
    assert [json.loads(x) for x in r.out.splitlines()] == await api.messages(order)
    # a buyer's token: the same export without the note
    r = await run_py(
        "-m",
        "chatd",
        "history",
        "--url",
        chatd_proc.base,
        "--order",
        order,
        "--ndjson",
        "--token",
        token("buyer1", "buyer"),
    )
    assert [json.loads(x)["seq"] for x in r.out.splitlines()] == [1, 2, 3]


async def test_cli_errors_say_what_to_do_and_exit_2(chatd_proc, api):
    order = await api.order()
    nowhere = f"http://127.0.0.1:{free_port()}"
    expired = token("bot1", "bot", orders="*", ttl_s=-60)
    outsider = token("stranger", "buyer")
    cases = [
        (["tail", "--url", nowhere, "--token", BOT_TOKEN, "--order", order], "connection refused"),
        (["say", "--url", nowhere, "--token", BOT_TOKEN, "--order", order, "--text", "x"], "connection refused"),
        (["history", "--url", nowhere, "--api-key", API_KEY, "--order", order], "connection refused"),
        (["tail", "--url", chatd_proc.base, "--token", expired, "--order", order], "token expired"),
        (["say", "--url", chatd_proc.base, "--token", expired, "--order", order, "--text", "x"], "token expired"),
        (["history", "--url", chatd_proc.base, "--token", expired, "--order", order], "token expired"),
        (
            ["tail", "--url", chatd_proc.base, "--token", outsider, "--order", order],
            "does not exist, or this credential may not see it",
        ),
        (["say", "--url", chatd_proc.base, "--token", BOT_TOKEN, "--order", "nope", "--text", "x"], "does not exist"),
        (["history", "--url", chatd_proc.base, "--api-key", API_KEY, "--order", "nope"], "does not exist"),
        (
            ["say", "--url", chatd_proc.base, "--token", token("buyer1", "buyer"), "--order", order, "--status", "x"],
            "not allowed on order",
        ),
        (["tail", "--url", chatd_proc.base, "--api-key", API_KEY, "--order", order], "a connection token is needed"),
        (["say", "--url", chatd_proc.base, "--order", order, "--text", "x"], "pass a bot token"),
    ]
    runs = await asyncio.gather(*(run_py("-m", "chatd", *args) for args, _ in cases))
    for (args, expect), r in zip(cases, runs, strict=True):
        assert r.code == 2 and expect in r.err and r.out == "", (args, r)
        assert "Traceback" not in r.err, (args, r)
    assert "--url (or CHATD_URL)" in runs[0].err and "--token or CHATD_TOKEN" in runs[3].err


async def test_tail_keeps_following_across_a_server_restart(own_proc):
    from tests.sdk.conftest import Api

    api = Api(own_proc.base)
    order = await api.order()
    tail = await Tail.start("--url", own_proc.base, "--token", token("supplier1", "supplier"), "--order", order)
    try:
        assert (await tail.line()).startswith(f"-- {order}: status open")
        async with client.connect(own_proc.base, BOT_TOKEN, reconnect_delay_s=0.05) as bot:
            await bot.send(order, "one")
            assert LINE.match(await tail.line()).group(4) == "one"
            await own_proc.arestart()
            await bot.send(order, "two")
        # joined again, before or after "two" was posted
        assert re.match(rf"-- {order}: status open, last seq [12];", await tail.line())
        assert LINE.match(await tail.line()).groups()[::3] == ("2", "two")
        assert await tail.stop() == 0
        assert "reconnecting" in tail.err and "reconnected" in tail.err
    finally:
        await tail.kill()
