"""Server CPU per inbound WebSocket frame on the edge alone, without the store.

    .venv/bin/python scripts/ws-cpu.py                      # this checkout
    PYTHONPATH=$OTHER_CHECKOUT .venv/bin/python scripts/ws-cpu.py

Starts `chatd serve` (uvloop), opens CONNS authenticated connections and
has each send FRAMES `ping` frames, WINDOW at a time without waiting, each
answered with a `pong`: the frame is read, parsed, dispatched and answered
through the hub's outbound path, as every frame is. Prints the server
process's CPU time (utime + stime from /proc) per frame. On a shared
machine run it a few times and alternate the checkouts.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

import aiohttp
from local_config import write_config

from chatd.auth.tokens import issue

SECRET = "ws-cpu-secret-0123456789abcdef0123456789"
PING = json.dumps({"type": "ping"})


def cpu_s(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def client(s: aiohttp.ClientSession, url: str, i: int, frames: int, window: int, go: asyncio.Event) -> None:
    async with s.ws_connect(url, compress=0) as ws:
        await ws.send_str(json.dumps({"type": "auth", "token": issue(SECRET, f"u{i}", "buyer")}))
        while json.loads((await ws.receive()).data)["type"] != "ready":
            pass
        await go.wait()
        for _ in range(frames // window):
            for _ in range(window):
                await ws.send_str(PING)
            for _ in range(window):
                await ws.receive()


async def run(port: int, pid: int, conns: int, frames: int, window: int) -> None:
    url = f"http://127.0.0.1:{port}"
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as s:
        for _ in range(300):
            try:
                async with s.get(url + "/healthz"):
                    break
            except aiohttp.ClientError:
                await asyncio.sleep(0.1)
        go = asyncio.Event()
        tasks = [asyncio.ensure_future(client(s, url + "/ws", i, frames, window, go)) for i in range(conns)]
        await asyncio.sleep(1.0 + conns / 200)
        cpu0, t0 = cpu_s(pid), time.monotonic()
        go.set()
        await asyncio.gather(*tasks)
        cpu, wall = cpu_s(pid) - cpu0, time.monotonic() - t0
    n = conns * (frames // window) * window
    print(f"{n} frames in {wall:.1f} s: server CPU {cpu:.2f} s, {cpu / n * 1e6:.1f} us per frame")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--conns", type=int, default=100)
    ap.add_argument("--frames", type=int, default=500, help="per connection")
    ap.add_argument("--window", type=int, default=10)
    ap.add_argument("--port", type=int, default=18766)
    args = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="ws-cpu-")
    cfg = write_config(tmp, args.port, SECRET)
    # run from the temporary folder, not a checkout: PYTHONPATH (or the installed package) picks the chatd
    cmd = [sys.executable, "-m", "chatd", "serve", "--config", cfg]
    proc = subprocess.Popen(cmd, stderr=subprocess.DEVNULL, cwd=tmp)
    try:
        asyncio.run(run(args.port, proc.pid, args.conns, args.frames, args.window))
    finally:
        proc.terminate()
        proc.wait(10)
        shutil.rmtree(tmp)


if __name__ == "__main__":
    main()
