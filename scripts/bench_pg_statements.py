"""What a message costs PostgreSQL, by the shape of the statement that stores it.

    python scripts/bench_pg_statements.py --url postgresql://.../<fresh db> [--messages 6000] [--batch 40]

Sets up `orders` orders through the store (buyer, supplier and sales rep, one
message each, so every order has its three read markers), then, on one
connection, stores `messages` more messages in transactions of `batch`, four
ways: a trivial statement per message (the floor of a round trip), chatd's own
post statement (`_post_sql`: the insert, its triggers and the reads that give the
unread counts), a plain INSERT per message (its triggers fire) and one INSERT of
`batch` rows from arrays (the triggers fire per row). It prints, per message, the
CPU of the PostgreSQL backend serving the connection (read from /proc: PostgreSQL
on this machine, as the shared bench runs it), the client's CPU and the wall time.
The difference between the last two rows is what a statement per message costs
over a statement per batch.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
from collections.abc import Awaitable, Callable

import asyncpg

from chatd.store.postgres import PostgresStore
from chatd.store.postgres.messages import _post_sql
from chatd.store.records import Person
from chatd.store.rows import Actor

_TEXT = "Pallet 3 of 4 is loaded; the driver calls ahead, ETA Tuesday morning. "
_SLOTS = (("b", "buyer"), ("s", "supplier"), ("r", "sales_rep"))
_COLS = "order_id, seq, ts, kind, sender_id, sender_name, sender_role, client_id, text, status, attachments, forced"


def _backend_cpu_s(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _setup(url: str, orders: int) -> None:
    store = PostgresStore(url, pool_size=4)
    await store.open()
    try:
        for i in range(orders):
            people = [Actor(f"{t}{i}", f"{t} {i}", r) for t, r in _SLOTS]
            await store.put_order(f"bench-{i}", None, *(Person(a.id, a.name) for a in people))
            for a in people:
                await store.post(a, f"bench-{i}", f"{_TEXT}{a.id}", f"setup-{a.id}")
    finally:
        await store.aclose()


async def run(url: str, messages: int, orders: int, batch: int) -> list[tuple[str, float, float, float]]:
    await _setup(url, orders)
    conn = await asyncpg.connect(url)
    try:
        pid = await conn.fetchval("SELECT pg_backend_pid()")
        last = {r[0]: r[1] for r in await conn.fetch("SELECT id, last_seq FROM orders")}
        ids = sorted(last)

        def next_rows(first: int) -> list[tuple[str, int, str]]:
            rows = []
            for n in range(first, first + batch):
                order = ids[n % len(ids)]
                last[order] += 1
                rows.append((order, last[order], f"b{order.removeprefix('bench-')}"))
            return rows

        async def per_message(call: Callable[[str, int, str], Awaitable[object]]) -> None:
            for first in range(0, messages, batch):
                rows = next_rows(first)
                async with conn.transaction():
                    for order, seq, buyer in rows:
                        await call(order, seq, buyer)

        def args(order: str, seq: int, buyer: str) -> tuple[object, ...]:
            return (order, seq, 1, "text", buyer, "Buyer", "buyer", f"c-{order}-{seq}", f"{_TEXT}{seq}", None, None, 0)

        post_sql = _post_sql(2, False, "")
        insert = f"INSERT INTO messages ({_COLS}) VALUES ({', '.join(f'${k}' for k in range(1, 13))})"
        many = (
            f"INSERT INTO messages ({_COLS}) SELECT o, s, 1, 'text', b, 'Buyer', 'buyer', c, t, NULL, NULL, 0 "
            "FROM unnest($1::text[], $2::bigint[], $3::text[], $4::text[], $5::text[]) AS u(o, s, b, c, t)"
        )

        async def arrays() -> None:
            for first in range(0, messages, batch):
                rows = next_rows(first)
                async with conn.transaction():
                    await conn.execute(
                        many,
                        [r[0] for r in rows],
                        [r[1] for r in rows],
                        [r[2] for r in rows],
                        [f"c-{r[0]}-{r[1]}" for r in rows],
                        [f"{_TEXT}{r[1]}" for r in rows],
                    )

        shapes: list[tuple[str, Callable[[], Awaitable[None]]]] = [
            ("SELECT $1, one a message", lambda: per_message(lambda *r: conn.fetchval("SELECT $1::int", 1))),
            ("chatd's post statement, one a message", lambda: per_message(lambda *r: conn.fetch(post_sql, *args(*r)))),
            ("plain INSERT, one a message", lambda: per_message(lambda *r: conn.execute(insert, *args(*r)))),
            (f"one INSERT of {batch} rows from arrays", arrays),
        ]
        out = []
        for label, shape in shapes:
            cpu, backend, wall = time.process_time(), _backend_cpu_s(pid), time.perf_counter()
            await shape()
            cpu, backend = time.process_time() - cpu, _backend_cpu_s(pid) - backend
            wall = time.perf_counter() - wall
            out.append((label, backend / messages * 1e6, cpu / messages * 1e6, wall / messages * 1e6))
        return out
    finally:
        await conn.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--url", required=True, help="a fresh PostgreSQL database on this machine")
    ap.add_argument("--messages", type=int, default=6000)
    ap.add_argument("--orders", type=int, default=1000)
    ap.add_argument("--batch", type=int, default=40)
    a = ap.parse_args()
    try:
        import uvloop
    except ImportError:  # the server's loop where it has one
        pass
    else:
        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    for label, backend, client, wall in asyncio.run(run(a.url, a.messages, a.orders, a.batch)):
        print(f"{label:40} backend {backend:6.1f} µs  client {client:6.1f} µs  wall {wall:6.1f} µs  a message")


if __name__ == "__main__":
    main()
