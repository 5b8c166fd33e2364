"""Fixtures: a real chatd app on a real port (127.0.0.1, port 0) over a real SQLite file
(or, with CHATD_TEST_STORE=postgres, a fresh database on a real PostgreSQL server:
tests/support/postgres_server.py).

Modules that set `BACKENDS = ("single", "cluster")` run every test twice: once
against one in-process server, once against two chatd processes sharing one
database and relaying through a real Redis server, with each new client
connected to the next instance in turn. Participants spread over instances
must not be able to tell. A test that reaches into the in-process app (its
clock, its store) is marked `@pytest.mark.single_only("why")`.
"""

from __future__ import annotations

import aiohttp
import msgspec
import pytest

from chatd.app import create_app
from chatd.config import AuthConfig, Config, FilterConfig, LimitsConfig, StoreConfig
from tests.support.client import API_KEY, SECRET, Client, token


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

    def next_ws_url(self) -> str:
        return self.ws_url

    @property
    def bases(self) -> list[str]:
        """Every instance's base URL (one here), e.g. to add up their /metrics."""
        return [self.base]

    async def outbox_counts(self) -> tuple[int, int]:
        """(webhook events waiting, given up on) in the store, read now."""
        from chatd.edge.keys import WEBHOOKS

        return await self.app[WEBHOOKS].backlog()

    async def client(self, sub: str, role: str, **kw) -> Client:
        c = await Client.open(self.next_ws_url(), token(sub, role, **kw))
        self.clients.append(c)
        return c

    async def raw_client(self) -> Client:
        c = await Client.open(self.next_ws_url())
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
        body = {
            "buyer": {"id": buyer, "name": buyer.title()},
            "supplier": {"id": supplier, "name": supplier.title()},
            "sales_rep": {"id": rep, "name": rep.title()} if rep else None,
        }
        if status:
            body["status"] = status
        st, data = await self.api("PUT", f"/api/v1/orders/{order}", body)
        assert st in (200, 201), data
        return data


def with_sections(cfg, sections: dict):
    """`cfg` with these sections' values replaced: {section: {key: value}}."""
    for name, values in sections.items():
        cfg = msgspec.structs.replace(cfg, **{name: msgspec.structs.replace(getattr(cfg, name), **values)})
    return cfg


def make_config(tmp_path, store: StoreConfig | None = None, **limits) -> Config:
    # the contact filter off (the shipped default is "block"): tests of other features
    # send links and numbers across the line; tests of the filter set their mode
    from tests.support.postgres_server import store_url

    return Config(
        auth=AuthConfig(secret=SECRET, api_key=API_KEY),
        store=store or StoreConfig(path=str(tmp_path / "chatd.sqlite3"), url=store_url() or ""),
        limits=LimitsConfig(**limits),
        filter=FilterConfig(mode="off"),
    )


@pytest.fixture
def limits():
    """Override in a test module to change limits."""
    return {}


@pytest.fixture
def sections():
    """Extra config sections for `server`: {section: {key: value}}. Override in a
    module (e.g. `{"filter": {"mode": "block"}}`) or parametrize it."""
    return {}


@pytest.fixture
def inbound_port():
    """A free port on 127.0.0.1 for the inbound SMTP listener (`[email] inbound_port`)."""
    from tests.support.procs import free_port

    return free_port()


@pytest.fixture
async def receiver():
    """A webhook receiver on a real port."""
    from tests.support.receiver import Receiver

    r = await Receiver().start()
    yield r
    await r.stop()
    r.assert_verified()  # every delivery passed the standardwebhooks library


class ClusterServer(Server):
    """Two chatd processes over one SQLite file and one Redis, behind the `Server` face.

    REST goes to the first instance; WebSocket clients alternate between them.
    `cfg` is the nodes' own: their store, and the attachments folder beside it.
    """

    def __init__(self, nodes, cfg) -> None:
        self.nodes = nodes
        self.cfg = cfg
        self.base = nodes[0].base
        self.ws_url = nodes[0].ws_url
        self.clients = []
        self._turn = 0

    @property
    def app(self):
        raise RuntimeError("a cluster test cannot reach into an app")

    def next_ws_url(self) -> str:
        url = self.nodes[self._turn % len(self.nodes)].ws_url
        self._turn += 1
        return url

    @property
    def bases(self) -> list[str]:
        return [n.base for n in self.nodes]

    async def outbox_counts(self) -> tuple[int, int]:
        """Read from the shared store itself: no one instance's app holds it."""
        sql = "SELECT COUNT(*) FILTER (WHERE dead = 0), COUNT(*) FILTER (WHERE dead = 1) FROM webhook_outbox"
        if self.cfg.store.url:
            import asyncpg

            conn = await asyncpg.connect(self.cfg.store.url)
            try:
                row = await conn.fetchrow(sql)
            finally:
                await conn.close()
        else:
            import contextlib
            import sqlite3

            with contextlib.closing(sqlite3.connect(f"file:{self.cfg.store.path}?mode=ro", uri=True)) as db:
                row = db.execute(sql).fetchone()
        return row[0], row[1]


def pytest_configure(config):
    config.addinivalue_line(
        "markers",
        "single_only(reason): in a module with BACKENDS, run this test on "
        "the in-process server only (skipped on the cluster before it starts)",
    )


def pytest_generate_tests(metafunc):
    if "server" in metafunc.fixturenames and "backend" in metafunc.fixturenames:
        backends = getattr(metafunc.module, "BACKENDS", ("single",))
        only = metafunc.definition.get_closest_marker("single_only")
        if only is not None:
            skip = pytest.mark.skip(reason=f"single only: {only.args[0]}")
            backends = [b if b == "single" else pytest.param(b, marks=skip) for b in backends]
        metafunc.parametrize("backend", backends, scope="function")


@pytest.fixture
def backend():
    return "single"


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory):
    """The session's one Redis server: the functional suite's clusters, the relay
    contract and the relay's unit tests (each test picks a db number of its own;
    tests that stop Redis start their own: tests/relay/conftest.py)."""
    from tests.support.redis_server import RedisProc

    r = RedisProc(tmp_path_factory.mktemp("redis"))
    r.start()
    yield r.url
    r.stop()


_db_numbers = iter(range(1, 1 << 30))


async def _cluster(tmp_path, request, limits, extra: dict) -> ClusterServer:
    import redis

    from tests.support.cluster import Cluster

    url = request.getfixturevalue("redis_url").rsplit("/", 1)[0] + f"/{next(_db_numbers) % 16}"
    # the 16 dbs are used again and again: an earlier test's instance killed there is still
    # registered, and the first node to find it dead would end its holdings ("buyer1 left
    # r1") in this test's rooms
    redis.Redis.from_url(url).flushdb()
    cluster = Cluster(tmp_path, url, 2, limits, sections=extra)
    await cluster.start()
    # the config the nodes share: their store (file or database), so the attachments folder beside it
    store = StoreConfig(**cluster.store)
    return ClusterServer(cluster.nodes, with_sections(make_config(tmp_path, store, **limits), extra))


@pytest.fixture
async def server(tmp_path, aiohttp_server, limits, sections, backend, request):
    if backend == "cluster":
        s = await _cluster(tmp_path, request, limits, sections)
    else:
        cfg = with_sections(make_config(tmp_path, **limits), sections)
        s = Server(await aiohttp_server(create_app(cfg)), cfg)
    yield s
    for c in s.clients:
        await c.close()
    for n in getattr(s, "nodes", ()):
        n.stop()
