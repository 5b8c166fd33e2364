"""`chatd serve --workers N`: N server processes on one port (SO_REUSEPORT).

Python runs one core per process; the kernel spreads new connections over the
workers, which share one SQLite file and relay through Redis. This parent only
starts them, forwards SIGTERM/SIGINT, and exits when they have.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time


def check(workers: int, relay_url: str) -> None:
    if workers < 1:
        raise SystemExit("chatd: --workers must be at least 1")
    if workers > 1 and not relay_url:
        raise SystemExit(
            "chatd: --workers > 1 needs a Redis relay: set [relay] url = \"redis://host:port/db\" "
            "(or CHATD_RELAY_URL), so that participants on different workers see each other"
        )
    if workers > 1 and not hasattr(socket, "SO_REUSEPORT"):
        raise SystemExit("chatd: --workers > 1 needs SO_REUSEPORT, which this OS does not have")


def run(workers: int, child_args: list[str], grace_s: float = 20.0) -> int:
    """Run `workers` children of `python -m chatd serve <child_args> --reuse-port`.

    SIGTERM/SIGINT are passed on; a worker still running `grace_s` after that
    is killed (what it acknowledged is already stored), so a stop is bounded.
    """
    cmd = [sys.executable, "-m", "chatd", "serve", *child_args, "--reuse-port"]
    procs = [subprocess.Popen(cmd) for _ in range(workers)]
    stop_by: list[float] = []

    def forward(signum, _frame):
        if not stop_by:
            stop_by.append(time.monotonic() + grace_s)
        for p in procs:
            if p.poll() is None:
                p.send_signal(signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    while any(p.poll() is None for p in procs):
        if stop_by and time.monotonic() > stop_by[0]:
            for p in procs:
                if p.poll() is None:
                    print(f"chatd: worker {p.pid} did not stop in {grace_s:.0f}s; killing it",
                          file=sys.stderr, flush=True)
                    p.kill()
        time.sleep(0.2)
    return max((abs(p.returncode) for p in procs), default=0)
