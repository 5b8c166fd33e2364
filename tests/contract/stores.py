"""Store backends for the contract suite: how to open one, by name.

Each name in BACKENDS has a branch in `make_store`; every test in
test_store_contract.py runs against each. `where` is a SQLite file or a
PostgreSQL URL (a fresh database of tests.support.postgres_server per test).
Also runnable as a separate writer process:
`python -m tests.contract.stores <backend> <where> <order> <count> <prefix>`
posts `count` messages and prints their seqs as JSON.
"""

from __future__ import annotations

import asyncio
import sys

import msgspec

from chatd.store.base import Store
from chatd.store.records import Person
from chatd.store.rows import Actor

BACKENDS = ["sqlite", "postgres"]
BUYER = Actor("b1", "Buyer", "buyer")
SUPPLIER = Actor("s1", "Supplier", "supplier")
REP = Actor("r1", "Rep", "sales_rep")


def make_store(backend: str, where: str, **hooks) -> Store:
    """A store over the database named by `where` (one per test), with these hooks
    (events_for_message, notifications_for, ...); not opened yet. `pool_size`, for
    PostgreSQL only: 2 leaves one writer, so that every write shares one batch."""
    pool_size = hooks.pop("pool_size", 4)
    if backend == "sqlite":
        from chatd.store.sqlite import SqliteStore

        return SqliteStore(where, **hooks)
    if backend == "postgres":
        from chatd.store.postgres import PostgresStore

        return PostgresStore(where, pool_size=pool_size, **hooks)
    raise ValueError(f"unknown store backend {backend}")


async def put_order(store: Store, order_id: str) -> None:
    await store.put_order(
        order_id, None, Person(BUYER.id, BUYER.name), Person(SUPPLIER.id, SUPPLIER.name), Person(REP.id, REP.name)
    )


async def _write(backend: str, where: str, order_id: str, count: int, prefix: str) -> list[int]:
    store = make_store(backend, where)
    await store.open()
    try:
        posted = await asyncio.gather(
            *(store.post(SUPPLIER, order_id, f"{prefix} {i}", f"{prefix}-{i}") for i in range(count))
        )
        return [p.message.seq for p in posted]
    finally:
        await store.aclose()


if __name__ == "__main__":
    backend, where, order_id, count, prefix = sys.argv[1:6]
    print(msgspec.json.encode(asyncio.run(_write(backend, where, order_id, int(count), prefix))).decode())
