"""A real chatd server as a child process: `python -m chatd serve --config <tmp>`.

For tests that need what an in-process app cannot give: `kill -9` and a
restart on the same port and database file (durability, client reconnect),
or command-line tools talking to a separate process. Every wait is bounded
and polls the server itself (GET /healthz), never a fixed sleep.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from tests.support.client import API_KEY, SECRET

ROOT = Path(__file__).resolve().parents[2]  # the checkout (this file is tests/support/procs.py)
START_TIMEOUT_S = 20.0


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    return '"' + str(v).replace("\\", "\\\\").replace('"', '\\"') + '"'


def child_env(**extra: str) -> dict[str, str]:
    """The environment for a child process: this one without CHATD_* settings
    (they would override the config file), with the repo importable."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHATD_")}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    env.update(extra)
    return env


class ServerProc:
    """One chatd process on a fixed port and database file.

    `sections` add or override config keys, e.g. `{"limits": {"rate_burst": 5}}`.
    The same port and file are kept across `kill()` / `start()`, so a restart
    looks to clients like the server coming back.
    """

    def __init__(self, tmp_path: Path, sections: dict[str, dict] | None = None, port: int | None = None) -> None:
        self.dir = Path(tmp_path)
        self.port = port or free_port()
        self.db_path = self.dir / "chatd.sqlite3"
        self.config_path = self.dir / "chatd-test.toml"
        self.base = f"http://127.0.0.1:{self.port}"
        self.ws_url = f"ws://127.0.0.1:{self.port}/ws"
        self.proc: subprocess.Popen | None = None
        self.starts = 0
        self.args: list[str] = []  # extra `chatd serve` options, e.g. ["--workers", "2"]
        conf: dict[str, dict] = {
            "server": {"host": "127.0.0.1", "port": self.port, "shutdown_timeout_s": 1.0},
            "auth": {"secret": SECRET, "api_key": API_KEY},
            "store": {"path": str(self.db_path)},
        }
        for name, values in (sections or {}).items():
            conf.setdefault(name, {}).update(values)
        if "url" not in conf["store"]:
            from tests.support.postgres_server import store_url

            conf["store"]["url"] = store_url() or ""
        lines = []
        for name, values in conf.items():
            lines.append(f"[{name}]")
            lines += [f"{k} = {_toml_value(v)}" for k, v in values.items()]
            lines.append("")
        self.config_path.write_text("\n".join(lines))

    @property
    def log_path(self) -> Path:
        return self.dir / f"server-{self.starts}.log"

    def log(self) -> str:
        """The output of the current (or last) run, for assertion messages."""
        try:
            return self.log_path.read_text()
        except FileNotFoundError:
            return ""

    # --- lifecycle (sync) ---------------------------------------------------

    def spawn(self) -> None:
        """Start the process without waiting for it to serve."""
        assert self.proc is None or self.proc.poll() is not None, "already running"
        self.starts += 1
        with open(self.log_path, "wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "chatd", "serve", "--config", str(self.config_path), *self.args],
                cwd=ROOT,
                env=child_env(),
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(self.base + "/healthz", timeout=2) as r:
                return r.status == 200
        except (urllib.error.URLError, OSError):
            return False

    def _check_alive(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            code = None if self.proc is None else self.proc.returncode
            raise RuntimeError(f"chatd exited ({code}) before serving:\n{self.log()}")

    def wait_ready(self, timeout: float = START_TIMEOUT_S) -> None:
        deadline = time.monotonic() + timeout
        delay = 0.02
        while not self.healthy():
            self._check_alive()
            if time.monotonic() > deadline:
                raise TimeoutError(f"chatd did not answer /healthz within {timeout}s:\n{self.log()}")
            time.sleep(delay)
            delay = min(delay * 2, 0.2)

    def start(self) -> ServerProc:
        self.spawn()
        self.wait_ready()
        return self

    def kill(self) -> None:
        """SIGKILL: no shutdown, no flush, sockets torn down by the kernel."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM and wait (a graceful shutdown); SIGKILL if it hangs."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        return self.proc.returncode

    def restart(self) -> ServerProc:
        """kill -9, then start again on the same port and file."""
        self.kill()
        return self.start()

    # --- lifecycle (async: keeps the test's event loop running meanwhile) ---

    async def astart(self) -> ServerProc:
        self.spawn()
        await self.await_ready()
        return self

    async def await_ready(self, timeout: float = START_TIMEOUT_S) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        delay = 0.02
        while not await asyncio.to_thread(self.healthy):
            self._check_alive()
            if loop.time() > deadline:
                raise TimeoutError(f"chatd did not answer /healthz within {timeout}s:\n{self.log()}")
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.2)

    async def akill(self) -> None:
        await asyncio.to_thread(self.kill)

    async def arestart(self) -> ServerProc:
        await self.akill()
        return await self.astart()
