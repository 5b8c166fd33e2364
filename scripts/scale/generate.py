"""Fill a new chatd database with the scale data set (scripts.scale.plan), through chatd's own store.

    .venv/bin/python -m scripts.scale.generate --store data/scale.sqlite3
    .venv/bin/python -m scripts.scale.generate --store postgresql://chatd@127.0.0.1:5432/scale

Every action is the store call chatd makes for that request (`put_order`, `post`,
`set_status`, `dispute`, `mark_read`), queued thousands at a time so group commit
puts hundreds in each transaction: the triggers and the store's own code keep every
derived table (markers, unread totals, the message log, the reply clock, staff
markers, order words, the search index) exactly as a server would. A message's
`ts` is the plan's: the store's injected clock is set by a write queued just
before it (the writer runs writes in the order queued), and every answer is
checked against it. PostgreSQL gets the SQLite result copied by `chatd
migrate-store`'s copy (the PostgreSQL migrations, COPY, every table's rows
compared): one writer of the truth, the same state on both backends.
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from chatd.store.copy import copy_store
from chatd.store.records import Person
from chatd.store.rows import Actor
from chatd.store.sqlite import SqliteStore
from scripts.scale.plan import Action, Dispute, NewOrder, Plan, Post, Read, Spec, Status, User

IN_FLIGHT = 8192  # actions queued before waiting for them: a few group commits' worth
MAX_BATCH = 2048  # writes per transaction while filling (the server's default is 512)


class Clock:
    """The store's wall clock (seconds), set to each action's time by a write queued before it."""

    def __init__(self) -> None:
        self.ms = 0

    def __call__(self) -> float:
        return self.ms / 1000

    def at(self, ms: int) -> Callable[[sqlite3.Connection], None]:
        def op(_db: sqlite3.Connection) -> None:
            self.ms = ms

        return op


def _actor(u: User) -> Actor:
    return Actor(u.id, u.name, u.role)


def _person(u: User | None) -> Person | None:
    return Person(u.id, u.name) if u is not None else None


async def _apply(store: SqliteStore, clock: Clock, a: Action) -> None:
    """One action as chatd's request handlers call the store; checks the time it got."""
    if isinstance(a, Read):
        await store.mark_read(_actor(a.user), a.order, a.user.id, a.seq)
        return
    store.write(clock.at(a.ts))  # runs just before the call below queues its write
    got: int
    if isinstance(a, NewOrder):
        change = await store.put_order(a.order, None, _person(a.buyer), _person(a.supplier), _person(a.rep))
        got = change.order.created_ts
    elif isinstance(a, Post):
        got = (await store.post(_actor(a.user), a.order, a.text, a.client_id, a.kind)).message.ts
    elif isinstance(a, Status):
        got = (await store.set_status(_actor(a.user), a.order, a.status, a.client_id, None)).message.ts
    else:
        assert isinstance(a, Dispute)
        got = (await store.dispute(_actor(a.user), a.order, a.action, a.client_id, a.reason)).message.ts
    if got != a.ts:
        raise RuntimeError(f"{a.order}: written at {got}, planned at {a.ts}")


async def fill_sqlite(path: str, plan: Plan, say: Callable[[str], None] = print) -> int:
    """Write `plan` into a new SQLite database at `path` (migrated by opening the store);
    the number of actions. Search is indexed to the end before it returns."""
    clock = Clock()
    store = SqliteStore(path, max_batch=MAX_BATCH, clock=clock)
    await store.open()
    started = last = time.monotonic()
    n = 0
    try:
        pending: list[Awaitable[Any]] = []
        for action in plan.actions():
            pending.append(asyncio.ensure_future(_apply(store, clock, action)))  # started in this order
            n += 1
            if len(pending) >= IN_FLIGHT:
                await asyncio.gather(*pending)
                pending.clear()
                if time.monotonic() - last > 10:
                    last = time.monotonic()
                    say(f"  {n:,} actions, {n / (last - started):,.0f}/s")
        await asyncio.gather(*pending)
        await store.index_search(chunk=20_000)
    finally:
        await store.aclose()
    return n


async def generate(store_url: str, spec: Spec, via: str | None = None, say: Callable[[str], None] = print) -> None:
    """Fill the new database `store_url` (a SQLite path, or a PostgreSQL URL: filled
    through the SQLite file `via`, a temporary one if None)."""
    postgres = store_url.startswith(("postgresql://", "postgres://"))
    with tempfile.TemporaryDirectory(prefix="chatd-scale-") as tmp:
        sqlite_path = _new_file((via or str(Path(tmp) / "scale.sqlite3")) if postgres else store_url)
        started = time.monotonic()
        plan = Plan(spec)
        say(f"plan: {spec.orders:,} orders, {spec.messages:,} messages ({time.monotonic() - started:.1f} s)")
        n = await fill_sqlite(sqlite_path, plan, say)
        say(f"sqlite: {n:,} actions into {sqlite_path} in {time.monotonic() - started:.1f} s")
        if postgres:
            copied = time.monotonic()
            report = await copy_store(sqlite_path, store_url)
            say(f"postgresql: copied in {time.monotonic() - copied:.1f} s ({report.target})")
        say(f"done in {time.monotonic() - started:.1f} s")


def _new_file(path: str) -> str:
    """The SQLite file to create, as an absolute path (what the copy takes); refused if it exists."""
    p = Path(path.removeprefix("sqlite://"))
    if p.exists():
        raise SystemExit(f"{p} exists: the data set goes into a new database")
    return str(p.resolve())


def main(argv: list[str] | None = None) -> None:
    d = Spec()
    p = argparse.ArgumentParser(prog="python -m scripts.scale.generate", description=__doc__.split("\n\n")[0])
    p.add_argument("--store", required=True, help="a new SQLite file, or an empty PostgreSQL database's URL")
    p.add_argument("--via", help="PostgreSQL: the SQLite file to write first (kept); default a temporary one")
    p.add_argument("--orders", type=int, default=d.orders)
    p.add_argument("--messages", type=int, default=d.messages)
    p.add_argument("--big-orders", type=int, default=d.big_orders, help="orders of the one busy sales rep")
    p.add_argument("--long-orders", type=int, default=d.long_orders)
    p.add_argument("--long-messages", type=int, default=d.long_messages, help="messages in each long order")
    p.add_argument("--dispute-share", type=float, default=d.dispute_share)
    p.add_argument("--seed", type=int, default=d.seed)
    a = p.parse_args(argv)
    spec = Spec(
        a.orders, a.messages, a.big_orders, a.long_orders, a.long_messages, a.seed, d.span_days, a.dispute_share
    )
    try:
        spec.check()
    except ValueError as exc:
        p.error(str(exc))
    asyncio.run(generate(a.store, spec, a.via))


if __name__ == "__main__":
    sys.exit(main())
