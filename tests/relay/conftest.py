"""Fixtures of the relay tests: a Redis of each test's own (these tests stop
and restart it), and clusters of chatd processes on it (tests/support/cluster.py)."""

from __future__ import annotations

import pytest

from tests.support.cluster import Cluster
from tests.support.redis_server import RedisProc


@pytest.fixture
def redis_proc(tmp_path):
    d = tmp_path / "redis"
    d.mkdir()
    r = RedisProc(d)
    r.start()
    yield r
    r.stop()


@pytest.fixture
async def cluster_factory(tmp_path, redis_proc):
    made: list[Cluster] = []

    async def make(n: int, limits: dict | None = None, store: dict | None = None) -> Cluster:
        c = Cluster(tmp_path, redis_proc.url, n, limits, store)
        made.append(c)
        await c.start()
        return c

    yield make
    for c in made:
        await c.stop()
