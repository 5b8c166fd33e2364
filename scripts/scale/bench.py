"""Replay, inbox and search over the scale data set (scripts.scale.generate), through a real
chatd server on 127.0.0.1, over real sockets.

    .venv/bin/python -m scripts.scale.bench --store data/scale.sqlite3
    .venv/bin/python -m scripts.scale.bench --store postgresql://chatd@127.0.0.1:5432/scale

It starts `chatd serve` (embedded defaults; `replay_max` raised to the replay measured,
the read rate limits raised so repetitions are not refused, SLA escalation off so the
server writes nothing while it is measured) and times, after warm-up rounds:

* `join` with `since` 10,000 below the newest message of the first long order, as its
  supplier: from sending `join` until the last replayed `message` frame arrived;
* the first `inbox` page of the sales rep with 10,000 orders;
* `GET /api/v1/threads?q=...` (the api key, a staff token, the busy rep's own scope).

Each figure is the median and p95 of `--rounds` repetitions, in milliseconds.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp

from chatd.auth.tokens import issue
from scripts.scale.plan import BIG_USER_ID, STAFF_IDS
from scripts.scale.wsclient import connect

SECRET = "scale-bench-secret-0123456789abcdef"
API_KEY = "scale-bench-api-key"
LONG_ORDER = "PO-100000"  # the plan's first order, one of its long ones
QUERIES = ("pallet", "invoice damaged", "forklift", "Lindqvist")
TARGETS_MS = {"replay": 150.0, "inbox": 30.0, "search": 100.0}


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _config(store: str, port: int, replay: int) -> str:
    where = f'url = "{store}"' if store.startswith(("postgresql://", "postgres://")) else f'path = "{store}"'
    return (
        f'[server]\nhost = "127.0.0.1"\nport = {port}\n'
        f'[auth]\nsecret = "{SECRET}"\napi_key = "{API_KEY}"\n'
        f"[store]\n{where}\n"
        f"[limits]\nreplay_max = {replay}\nread_rate_per_s = 10000.0\nread_burst = 10000\n"
        "[sla]\nreply_within_s = 0.0\n"
    )


class Server:
    """`chatd serve` as a child process, in a directory of its own."""

    def __init__(self, store: str, replay: int) -> None:
        self.dir = tempfile.TemporaryDirectory(prefix="chatd-scale-bench-")
        self.port = _free_port()
        store = store if "://" in store else str(Path(store).resolve())
        cfg = Path(self.dir.name) / "chatd.toml"
        cfg.write_text(_config(store, self.port, replay))
        env = {k: v for k, v in os.environ.items() if not k.startswith("CHATD_")}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "chatd", "serve", "--config", str(cfg)],
            cwd=self.dir.name,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=open(Path(self.dir.name) / "server.log", "wb"),  # noqa: SIM115 - the child holds it
        )
        self.base = f"http://127.0.0.1:{self.port}"

    def wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("chatd exited:\n" + self.log())
            try:
                with urllib.request.urlopen(self.base + "/healthz", timeout=2):
                    return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("chatd did not answer /healthz in time")

    def log(self) -> str:
        return (Path(self.dir.name) / "server.log").read_text(errors="replace")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.dir.cleanup()


def summary(name: str, samples: list[float], target: float) -> str:
    ms = sorted(s * 1000 for s in samples)
    p95 = ms[min(len(ms) - 1, max(0, round(0.95 * len(ms)) - 1))]
    median = statistics.median(ms)
    verdict = "met" if p95 < target else ("median met, p95 missed" if median < target else "MISSED")
    return (
        f"{name:<44} median {median:7.1f}  p95 {p95:7.1f}  min {ms[0]:7.1f}  max {ms[-1]:7.1f} ms"
        f"  (n={len(ms)}, target < {target:g} ms: {verdict})"
    )


async def _rounds(fn: Callable[[], Awaitable[float]], warmup: int, rounds: int) -> list[float]:
    for _ in range(warmup):
        await fn()
    return [await fn() for _ in range(rounds)]


async def bench(store: str, replay: int, warmup: int, rounds: int, say: Callable[[str], None] = print) -> None:
    server = Server(store, replay)
    try:
        server.wait_ready()
        async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {API_KEY}"}) as http:
            async with http.get(f"{server.base}/api/v1/orders/{LONG_ORDER}") as r:
                order = await r.json()
            last, supplier = order["last_seq"], order["supplier"]
            since = max(0, last - replay)
            say(f"{LONG_ORDER}: last_seq {last}, replaying {last - since} after seq {since} as {supplier['id']}")

            ws = await connect(server.port, issue(SECRET, supplier["id"], "supplier", supplier["name"]))

            async def join() -> float:
                took = await ws.request(
                    {"type": "join", "order": LONG_ORDER, "since": since, "limit": replay}, replay + 1
                )
                assert ws.first is not None and ws.last is not None
                joined, newest = json.loads(ws.first), json.loads(ws.last)
                assert joined["type"] == "joined" and not joined["truncated"], joined
                assert newest["type"] == "message" and newest["seq"] == last, newest
                return took

            say(summary(f"replay {last - since:,} on join", await _rounds(join, warmup, rounds), TARGETS_MS["replay"]))
            ws.close()

            rep = await connect(server.port, issue(SECRET, BIG_USER_ID, "sales_rep", "Mara Lindqvist"))

            async def inbox() -> float:
                took = await rep.request({"type": "inbox"}, 1)
                assert rep.first is not None
                page = json.loads(rep.first)
                assert page["type"] == "inbox" and len(page["orders"]) == 50, page.get("type")
                return took

            say(summary("inbox, first page (50 entries)", await _rounds(inbox, warmup, rounds), TARGETS_MS["inbox"]))
            rep.close()

            callers = {
                "api key": API_KEY,
                "staff": issue(SECRET, STAFF_IDS[0], "staff", "Support 1"),
                "busy rep": issue(SECRET, BIG_USER_ID, "sales_rep", "Mara Lindqvist"),
            }
            for who, key in callers.items():
                for q in QUERIES if who == "api key" else QUERIES[:1]:

                    async def search(q: str = q, key: str = key) -> float:
                        started = time.perf_counter()
                        async with http.get(
                            f"{server.base}/api/v1/threads", params={"q": q}, headers={"Authorization": f"Bearer {key}"}
                        ) as r:
                            body = await r.read()
                        took = time.perf_counter() - started
                        assert r.status == 200, body[:200]
                        return took

                    found = 0
                    async with http.get(
                        f"{server.base}/api/v1/threads", params={"q": q}, headers={"Authorization": f"Bearer {key}"}
                    ) as r:
                        found = len((await r.json())["threads"])
                    samples = await _rounds(search, warmup, rounds)
                    say(summary(f"threads q={q!r} ({who}, {found} on page 1)", samples, TARGETS_MS["search"]))
    except BaseException:
        say("server log (tail):\n" + server.log()[-3000:])
        raise
    finally:
        server.stop()


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m scripts.scale.bench", description=__doc__.split("\n\n")[0])
    p.add_argument("--store", required=True, help="the SQLite file or PostgreSQL URL the generator filled")
    p.add_argument("--replay", type=int, default=10_000, help="messages replayed on join (replay_max is set to it)")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--rounds", type=int, default=20)
    a = p.parse_args(argv)
    asyncio.run(bench(a.store, a.replay, a.warmup, a.rounds))


if __name__ == "__main__":
    main()
