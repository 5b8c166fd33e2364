"""Fixtures for the SDK and CLI tests: a real chatd process per module, orders over REST."""

from __future__ import annotations

import asyncio
import itertools
import sys

import aiohttp
import msgspec
import pytest

from tests.support.client import API_KEY, TIMEOUT
from tests.support.procs import ROOT, ServerProc, child_env

_ids = itertools.count(1)


class Api:
    """REST calls with the api key against one server."""

    def __init__(self, base: str) -> None:
        self.base = base

    async def call(self, method: str, path: str, json=None, auth: str = API_KEY):
        async with aiohttp.ClientSession() as s:
            async with s.request(method, self.base + path, json=json, headers={"Authorization": f"Bearer {auth}"}) as r:
                body = await r.read()
                return r.status, (msgspec.json.decode(body) if r.content_type == "application/json" else body)

    async def order(self, prefix: str = "o", buyer="buyer1", supplier="supplier1", status=None) -> str:
        """A new order with a unique id; returns the id."""
        order = f"{prefix}-{next(_ids)}"
        body = {"buyer": {"id": buyer, "name": buyer.title()}, "supplier": {"id": supplier, "name": supplier.title()}}
        if status:
            body["status"] = status
        st, data = await self.call("PUT", f"/api/v1/orders/{order}", body)
        assert st == 201, data
        return order

    async def messages(self, order: str) -> list[dict]:
        """The whole stored history (ndjson export)."""
        st, body = await self.call("GET", f"/api/v1/orders/{order}/messages?format=ndjson")
        assert st == 200, body
        return [msgspec.json.decode(line) for line in body.splitlines() if line.strip()]

    async def get_order(self, order: str) -> dict:
        st, data = await self.call("GET", f"/api/v1/orders/{order}")
        assert st == 200, data
        return data


@pytest.fixture(scope="module")
def chatd_proc(tmp_path_factory):
    """One chatd process for the module (orders differ per test)."""
    proc = ServerProc(tmp_path_factory.mktemp("chatd"))
    proc.start()
    yield proc
    proc.kill()


@pytest.fixture
def own_proc(tmp_path):
    """A chatd process of the test's own, for tests that kill it."""
    proc = ServerProc(tmp_path)
    proc.start()
    yield proc
    proc.kill()


@pytest.fixture
def api(chatd_proc) -> Api:
    return Api(chatd_proc.base)


class Run:
    """A finished child process: exit status and decoded output."""

    def __init__(self, code: int, out: str, err: str) -> None:
        self.code, self.out, self.err = code, out, err

    def __repr__(self) -> str:
        return f"Run(code={self.code}, out={self.out!r}, err={self.err!r})"


async def run_py(*args: str, env: dict | None = None, timeout: float = 3 * TIMEOUT) -> Run:
    """Run `python <args>` from the repo root and wait for it (bounded)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        *args,
        cwd=ROOT,
        env=child_env(**(env or {})),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        async with asyncio.timeout(timeout):
            out, err = await proc.communicate()
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    return Run(proc.returncode, out.decode(), err.decode())
