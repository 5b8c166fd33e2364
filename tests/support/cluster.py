"""The one cluster builder: `n` chatd processes relaying through one Redis,
each with its own directory and config, sharing one store.

The store is a SQLite file in `tmp_path` (or CHATD_TEST_STORE's PostgreSQL
database), or the `[store]` values given, e.g. `{"url": "postgresql://..."}`.
The functional suite's `cluster` backend (tests/conftest.py) and the relay
tests (tests/relay/) both build theirs here.
"""

from __future__ import annotations

import asyncio
import json
import urllib.request
from pathlib import Path
from typing import Any

import aiohttp

from tests.support.client import API_KEY, Client, token
from tests.support.postgres_server import store_url
from tests.support.procs import ServerProc
from tests.support.wait import wait_for


def health(base: str) -> dict[str, Any]:
    """GET /healthz of a node, {} while it does not answer."""
    try:
        with urllib.request.urlopen(base + "/healthz", timeout=2) as r:
            return json.loads(r.read())  # type: ignore[no-any-return]
    except OSError:
        return {}


class Cluster:
    def __init__(
        self,
        tmp_path: Path,
        redis_url: str,
        n: int,
        limits: dict | None = None,
        store: dict | None = None,
        sections: dict | None = None,
    ) -> None:
        if store is None:
            store = {"path": str(tmp_path / "shared.sqlite3"), "url": store_url() or ""}
        self.store = store
        self.nodes: list[ServerProc] = []
        for i in range(n):
            d = tmp_path / f"node{i}"
            d.mkdir()
            conf: dict[str, dict] = {"store": dict(store), "relay": {"url": redis_url}}
            if limits:
                conf["limits"] = dict(limits)
            for name, values in (sections or {}).items():
                conf.setdefault(name, {}).update(values)
            self.nodes.append(ServerProc(d, conf))
        self.clients: list[Client] = []

    async def start(self) -> None:
        """Every node up, and its relay healthy (the canary came back through Redis)."""
        try:
            for n in self.nodes:
                n.spawn()
            for n in self.nodes:
                await n.await_ready()
            for n in self.nodes:
                await wait_for(lambda n=n: health(n.base).get("relay") == "ok", what=f"relay on {n.base}")
        except BaseException:
            for n in self.nodes:
                n.stop()
            raise

    async def client(self, i: int, sub: str, role: str, **kw: Any) -> Client:
        c = await Client.open(self.nodes[i].ws_url, token(sub, role, **kw))
        self.clients.append(c)
        return c

    async def api(self, i: int, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        async with aiohttp.ClientSession() as s:
            async with s.request(
                method, self.nodes[i].base + path, json=body, headers={"Authorization": f"Bearer {API_KEY}"}
            ) as r:
                return r.status, await r.json(content_type=None)

    async def stop(self) -> None:
        for c in self.clients:
            await c.close()
        for n in self.nodes:
            await asyncio.to_thread(n.stop)
