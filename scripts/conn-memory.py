"""Memory per idle joined WebSocket connection, and who allocates it.

    .venv/bin/python scripts/conn-memory.py                 # RSS per connection (no tracing)
    .venv/bin/python scripts/conn-memory.py --trace 12      # + tracemalloc diff, tracebacks of 12 frames
    .venv/bin/python scripts/conn-memory.py --trace 1 --by lineno --top 40

Starts `chatd serve` in a child process (uvloop, as in production) with a
control thread reading commands on its stdin, registers the orders, opens
WARM connections (one-off caches, code paths run once), then N more from
this process, each one `auth` -> `ready` -> `join` -> `joined` like the
shared bench's idle scenario, and compares the server's RSS and (with
--trace) a tracemalloc snapshot before and after the N. The bench counts
the same bytes over 10,000 connections; this tells which line holds them.
"""

from __future__ import annotations

import argparse
import ast
import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import tracemalloc

import aiohttp
from local_config import write_config

from chatd.auth.tokens import issue

SECRET = "conn-memory-secret-0123456789abcdef0123"
API_KEY = "conn-memory-api-key"
ROLES = ("buyer", "supplier", "sales_rep")

# Runs in the server process: a thread that answers `rss` and `snap PATH`
# (gc.collect first, so only what is reachable counts), then chatd serve.
BOOT = r"""
import gc, sys, threading, tracemalloc
def rss():
    with open("/proc/self/status") as f:
        return next(int(x.split()[1]) for x in f if x.startswith("VmRSS"))
def control():
    for line in sys.stdin:
        cmd, _, arg = line.strip().partition(" ")
        gc.collect()
        if cmd == "snap" and tracemalloc.is_tracing():
            tracemalloc.take_snapshot().dump(arg)
        if cmd == "types":  # objects the collector sees, by type: count and sys.getsizeof
            counts = {}
            for o in gc.get_objects():
                c = counts.setdefault(type(o).__qualname__, [0, 0])
                c[0] += 1
                c[1] += sys.getsizeof(o)
            with open(arg, "w") as f:
                f.write(repr(counts))
        print("rss", rss(), flush=True)
threading.Thread(target=control, daemon=True).start()
from chatd.cli import main
main(["serve", "--config", sys.argv[1]])
"""


class Server:
    def __init__(self, cfg: str, trace: int, env: dict[str, str], cwd: str) -> None:
        """`cwd` is not a checkout: PYTHONPATH (or the installed package) decides which chatd runs."""
        cmd = [sys.executable]
        if trace:
            cmd += ["-X", f"tracemalloc={trace}"]
        self.proc = subprocess.Popen(
            [*cmd, "-c", BOOT, cfg], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env, cwd=cwd
        )

    def ask(self, line: str) -> int:
        assert self.proc.stdin and self.proc.stdout
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()
        while not (answer := self.proc.stdout.readline()).startswith("rss "):
            if not answer:
                raise SystemExit("server exited")
        return int(answer.split()[1])

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


async def wait_up(url: str) -> None:
    async with aiohttp.ClientSession() as s:
        for _ in range(600):
            try:
                async with s.get(url + "/healthz") as r:
                    if r.status < 500:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
    raise SystemExit("server did not start")


def user(room: int, k: int) -> tuple[str, str]:
    return f"u{room}-{ROLES[k]}", ROLES[k]


async def register(s: aiohttp.ClientSession, url: str, rooms: range) -> None:
    sem = asyncio.Semaphore(32)

    async def one(room: int) -> None:
        body = {"status": "pending"}
        for k, role in enumerate(ROLES):
            body[role] = {"id": user(room, k)[0], "name": f"User {room} {k}"}
        auth = {"Authorization": f"Bearer {API_KEY}"}
        async with sem, s.put(f"{url}/api/v1/orders/o{room}", json=body, headers=auth) as r:
            if r.status >= 300:
                raise SystemExit(f"order o{room}: {r.status} {await r.text()}")

    await asyncio.gather(*(one(r) for r in rooms))


Socket = aiohttp.ClientWebSocketResponse
readers: list[asyncio.Future[None]] = []


async def drain(ws: aiohttp.ClientWebSocketResponse) -> None:
    async for _ in ws:
        pass


async def connect(s: aiohttp.ClientSession, url: str, conns: range, keep: list[Socket]) -> None:
    sem = asyncio.Semaphore(200)

    async def one(i: int) -> None:
        room, k = divmod(i, 3)
        sub, role = user(room, k)
        async with sem:
            ws = await s.ws_connect(url + "/ws", autoping=True, compress=0)
            await ws.send_str(json.dumps({"type": "auth", "token": issue(SECRET, sub, role, ttl_s=3600)}))
            async for msg in ws:
                frame = json.loads(msg.data)
                if frame["type"] == "ready":
                    await ws.send_str(json.dumps({"type": "join", "order": f"o{room}"}))
                elif frame["type"] == "joined":
                    break
                elif frame["type"] == "error":
                    raise SystemExit(f"connection {i}: {frame}")
            keep.append(ws)
            readers.append(asyncio.ensure_future(drain(ws)))  # answers the server's pings

    await asyncio.gather(*(one(i) for i in conns))


def types(before: str, after: str, n: int, top: int, what: str = "per connection") -> None:
    with open(before) as f:
        a = ast.literal_eval(f.read())
    with open(after) as f:
        b = ast.literal_eval(f.read())
    diff = [(b[k][1] - a.get(k, [0, 0])[1], b[k][0] - a.get(k, [0, 0])[0], k) for k in b]
    diff.sort(reverse=True)
    print(f"\ngc-tracked objects: {sum(d[0] for d in diff) / n:.0f} B (getsizeof) {what}, per connection")
    for size, count, name in diff[:top]:
        print(f"{size / n:8.0f} B {count / n:6.2f}  {name}")


def report(before: str, after: str, n: int, by: str, top: int) -> None:
    a, b = tracemalloc.Snapshot.load(before), tracemalloc.Snapshot.load(after)
    stats = b.compare_to(a, by)
    total = sum(s.size_diff for s in stats)
    print(f"\ntracemalloc: {total / n:.0f} B per connection traced, {sum(s.count_diff for s in stats) / n:.1f} blocks")
    for s in stats[:top]:
        if s.size_diff <= 0:
            continue
        print(f"{s.size_diff / n:8.0f} B {s.count_diff / n:6.2f} blk  ", end="")
        if by == "traceback":
            print()
            for line in s.traceback.format(limit=None, most_recent_first=True)[:24]:
                print("      " + line)
        else:
            print(s.traceback[0])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-n", type=int, default=2000, help="connections measured")
    ap.add_argument("--warm", type=int, default=300, help="connections opened before the first measure")
    ap.add_argument("--trace", type=int, default=0, help="tracemalloc frames (0: RSS only)")
    ap.add_argument("--by", default="traceback", choices=["traceback", "lineno", "filename"])
    ap.add_argument("--top", type=int, default=25)
    ap.add_argument("--port", type=int, default=18765)
    ap.add_argument("--toml", default="", help="more config lines")
    ap.add_argument("--types", action="store_true", help="objects the collector sees, by type")
    ap.add_argument("--keep", action="store_true", help="keep the snapshots (a.snap, b.snap) and print where")
    args = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="conn-memory-")
    cfg = write_config(tmp, args.port, SECRET, API_KEY, args.toml)
    server = Server(cfg, args.trace, {**os.environ, "PYTHONUNBUFFERED": "1"}, tmp)
    try:
        asyncio.run(measure(args, server, tmp))
    finally:
        server.stop()
        if args.keep:
            print("snapshots in", tmp)
        else:
            shutil.rmtree(tmp)


async def measure(args: argparse.Namespace, server: Server, tmp: str) -> None:
    n, warm = args.n - args.n % 3, args.warm - args.warm % 3
    url = f"http://127.0.0.1:{args.port}"
    keep: list[Socket] = []
    await wait_up(url)
    rss0 = server.ask("rss")
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as s:
        await register(s, url, range((warm + n) // 3))
        rss1 = server.ask("rss")
        await connect(s, url, range(warm), keep)
        await asyncio.sleep(1)
        if args.types:
            server.ask(f"types {tmp}/a.types")
        rss2 = server.ask(f"snap {tmp}/a.snap")
        t = time.monotonic()
        await connect(s, url, range(warm, warm + n), keep)
        secs = time.monotonic() - t
        await asyncio.sleep(2)
        rss3 = server.ask(f"snap {tmp}/b.snap")
        if args.types:
            server.ask(f"types {tmp}/b.types")
        print(f"orders registered: {rss1 - rss0} KB for {(warm + n) // 3} orders")
        print(f"{n} connections in {secs:.1f} s: RSS {rss3 - rss2} KB, {(rss3 - rss2) / n:.2f} KB per connection")
        if args.types:
            types(f"{tmp}/a.types", f"{tmp}/b.types", n, args.top)
        if args.trace:
            report(f"{tmp}/a.snap", f"{tmp}/b.snap", n, args.by, args.top)
        for ws in keep[len(keep) - n :]:
            await ws.close()
        await asyncio.sleep(2)
        rss4 = server.ask("rss")
        print(f"after closing them: RSS {rss4 - rss2:+} KB against before they opened")
        if args.types:
            server.ask(f"types {tmp}/c.types")
            types(f"{tmp}/a.types", f"{tmp}/c.types", n, 8, "left after they closed")
        for ws in keep[: len(keep) - n]:
            await ws.close()


if __name__ == "__main__":
    main()
