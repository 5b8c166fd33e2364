"""The `chatd` command (issue 2, points 1 and 2): embedded defaults, ./config.toml, `chatd token`."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from chatd.auth.tokens import verify
from tests.support.client import SECRET, Client
from tests.support.procs import child_env, free_port

WARNING = "no [auth] secret configured"


class Proc:
    """`python -m chatd ARGS` in a directory of its own, output kept in a file."""

    def __init__(self, cwd: Path, *args: str) -> None:
        self.cwd = cwd
        self.out = cwd / f"out-{time.monotonic_ns()}.log"
        with open(self.out, "wb") as f:
            self.p = subprocess.Popen(
                [sys.executable, "-m", "chatd", *args], cwd=cwd, env=child_env(), stdout=f, stderr=subprocess.STDOUT
            )

    def log(self) -> str:
        return self.out.read_text()

    async def ready(self, port: int, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                with await asyncio.to_thread(urllib.request.urlopen, f"http://127.0.0.1:{port}/healthz", None, 2) as r:
                    if r.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            assert self.p.poll() is None, f"exited {self.p.returncode}:\n{self.log()}"
            assert time.monotonic() < deadline, f"not serving after {timeout}s:\n{self.log()}"
            await asyncio.sleep(0.05)

    async def stop(self) -> int:
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
        try:
            return await asyncio.to_thread(self.p.wait, 20)
        finally:
            if self.p.poll() is None:
                self.p.kill()


def run(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "chatd", *args], cwd=cwd, env=child_env(), capture_output=True, text=True, timeout=30
    )


async def test_serve_without_config_uses_embedded_defaults(tmp_path):
    port = free_port()
    server = Proc(tmp_path, "serve", "--port", str(port))
    try:
        await server.ready(port)
        assert (tmp_path / "data" / "chatd.sqlite3").exists()
        assert (tmp_path / "data" / "dev-secrets.json").exists()
        assert server.log().count(WARNING) == 1, server.log()
        # `chatd token` in the same directory signs with the same development secret
        tok = run(tmp_path, "token", "--sub", "dev1", "--role", "supplier", "--name", "Dev One")
        assert tok.returncode == 0, tok.stderr
        c = await Client.open(f"ws://127.0.0.1:{port}/ws", tok.stdout.strip())
        assert c.frames[0]["user"] == {"id": "dev1", "name": "Dev One", "role": "supplier"}
        await c.close()
    finally:
        code = await server.stop()
    assert code == 0, server.log()
    # a second start keeps the generated secret (and warns once again)
    again = Proc(tmp_path, "serve", "--port", str(port))
    try:
        await again.ready(port)
        assert again.log().count(WARNING) == 1
        c = await Client.open(f"ws://127.0.0.1:{port}/ws", tok.stdout.strip())
        await c.close()
    finally:
        assert await again.stop() == 0


async def test_serve_reads_config_toml_in_cwd(tmp_path):
    port = free_port()
    (tmp_path / "config.toml").write_text(
        f'[server]\nport = {port}\n[auth]\nsecret = "{SECRET}"\napi_key = "k"\n[store]\npath = "db/x.sqlite3"\n'
    )
    server = Proc(tmp_path, "serve")
    try:
        await server.ready(port)
        assert (tmp_path / "db" / "x.sqlite3").exists() and not (tmp_path / "data").exists()
        assert WARNING not in server.log()
    finally:
        assert await server.stop() == 0


def test_serve_with_missing_config_file_fails(tmp_path):
    r = run(tmp_path, "serve", "--config", "nope.toml")
    assert r.returncode != 0 and "nope.toml" in r.stderr


def test_bad_config_is_refused(tmp_path):
    (tmp_path / "c.toml").write_text("[limits]\nmax_frame_bites = 5\n")
    r = run(tmp_path, "serve", "--config", "c.toml")
    assert r.returncode != 0 and "max_frame_bites" in r.stderr


@pytest.mark.parametrize("orders", [None, "*", "o1,o2"])
def test_token_command(tmp_path, orders):
    (tmp_path / "c.toml").write_text(f'[auth]\nsecret = "{SECRET}"\napi_key = "k"\n')
    args = ["token", "--config", "c.toml", "--sub", "u1", "--role", "bot" if orders else "buyer", "--ttl-s", "60"]
    if orders:
        args += ["--orders", orders]
    r = run(tmp_path, *args)
    assert r.returncode == 0, r.stderr
    ident = verify(r.stdout.strip(), SECRET)
    assert ident.id == "u1" and ident.name == "u1" and 0 < ident.exp - time.time() <= 61
    assert ident.orders == ({"*": "*", "o1,o2": frozenset({"o1", "o2"})}[orders] if orders else None)
    r = run(tmp_path, "token", "--config", "c.toml", "--sub", "u1", "--role", "emperor")
    assert r.returncode != 0


def test_env_overrides_configured_secret(tmp_path):
    (tmp_path / "c.toml").write_text('[auth]\nsecret = "from-the-file-0123456789abcdef01"\napi_key = "k"\n')
    r = subprocess.run(
        [sys.executable, "-m", "chatd", "token", "--config", "c.toml", "--sub", "u1", "--role", "buyer"],
        cwd=tmp_path,
        env=child_env(CHATD_AUTH_SECRET=SECRET),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert r.returncode == 0, r.stderr
    assert verify(r.stdout.strip(), SECRET).id == "u1"
