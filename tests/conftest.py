"""Fixtures: a real chatd app on a real port (127.0.0.1, port 0) over a real SQLite file."""

from __future__ import annotations

import aiohttp
import msgspec
import pytest

from chatd.app import create_app
from chatd.config import AuthConfig, Config, LimitsConfig, StoreConfig
from tests.helpers import API_KEY, SECRET, Client, token


class Server:
    def __init__(self, srv, cfg) -> None:
        self.srv = srv
        self.cfg = cfg
        self.base = f"http://127.0.0.1:{srv.port}"
        self.ws_url = f"ws://127.0.0.1:{srv.port}/ws"
        self.clients: list[Client] = []

    @property
    def app(self):
        return self.srv.app

    async def client(self, sub: str, role: str, **kw) -> Client:
        c = await Client.open(self.ws_url, token(sub, role, **kw))
        self.clients.append(c)
        return c

    async def raw_client(self) -> Client:
        c = await Client.open(self.ws_url)
        self.clients.append(c)
        return c

    async def api(self, method: str, path: str, json=None, auth: str | None = API_KEY, **kw):
        headers = {"Authorization": f"Bearer {auth}"} if auth else {}
        async with aiohttp.ClientSession() as s:
            async with s.request(method, self.base + path, json=json, headers=headers, **kw) as r:
                body = await r.read()
                # one JSON document; anything else (ndjson, text) comes back as bytes
                data = msgspec.json.decode(body) if r.content_type == "application/json" and body else body
                return r.status, data

    async def order(self, order: str, buyer="buyer1", supplier="supplier1", rep: str | None = "rep1", status=None):
        body = {"buyer": {"id": buyer, "name": buyer.title()}, "supplier": {"id": supplier, "name": supplier.title()},
                "sales_rep": {"id": rep, "name": rep.title()} if rep else None}
        if status:
            body["status"] = status
        st, data = await self.api("PUT", f"/api/v1/orders/{order}", body)
        assert st in (200, 201), data
        return data


def make_config(tmp_path, **limits) -> Config:
    return Config(
        auth=AuthConfig(secret=SECRET, api_key=API_KEY),
        store=StoreConfig(path=str(tmp_path / "chatd.sqlite3")),
        limits=LimitsConfig(**limits),
    )


@pytest.fixture
def limits():
    """Override in a test module to change limits."""
    return {}


@pytest.fixture
async def server(tmp_path, aiohttp_server, limits):
    cfg = make_config(tmp_path, **limits)
    srv = await aiohttp_server(create_app(cfg))
    s = Server(srv, cfg)
    yield s
    for c in s.clients:
        await c.close()
