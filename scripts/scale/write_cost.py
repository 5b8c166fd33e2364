"""What a message costs the SQLite store to write: its own transaction (`post`, group commit,
every trigger) and, apart, the search indexer's bulk work for it (`index_search`).

    .venv/bin/python -m scripts.scale.write_cost                 # this checkout
    PYTHONPATH=OTHER_CHECKOUT .venv/bin/python -m scripts.scale.write_cost

1,000 orders of three participants; 30,000 posts queued 30 at a time (each batch one group
commit, as a busy server makes them), the indexer off meanwhile, then the index built in
its own chunks. CPU time of this process per message, best of `--runs` (a fresh file each).
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

from chatd.store.records import Person
from chatd.store.rows import Actor
from chatd.store.sqlite import SqliteStore

ORDERS = 1_000
TEXT = "The pallets leave our Hamburg warehouse on Tuesday, invoice follows with the delivery note."


async def run(path: str, messages: int, batch: int) -> tuple[float, float]:
    store = SqliteStore(path)
    await store.open()
    try:
        assert store._indexer_task is not None
        store._indexer_task.cancel()  # indexed below, on its own clock
        for i in range(ORDERS):
            await store.put_order(
                f"O-{i}", None, Person(f"b{i}", "Buyer"), Person(f"s{i % 50}", "Supplier"), Person("r", "Rep")
            )
        senders = [Actor("b{}", "Buyer", "buyer"), Actor("s{}", "Supplier", "supplier"), Actor("r", "Rep", "sales_rep")]
        started = time.process_time()
        for start in range(0, messages, batch):
            posts = []
            for k in range(start, min(messages, start + batch)):
                order = (k * 7919) % ORDERS
                who = senders[k % 3]
                actor = Actor(who.id.format(order if who.role == "buyer" else order % 50), who.name, who.role)
                posts.append(store.post(actor, f"O-{order}", f"{TEXT} {k}", f"c-{k}"))
            await asyncio.gather(*posts)
        post_s = time.process_time() - started
        started = time.process_time()
        await store.index_search()
        index_s = time.process_time() - started
    finally:
        await store.aclose()
    return post_s / messages * 1e6, index_s / messages * 1e6


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m scripts.scale.write_cost", description=__doc__.split("\n\n")[0])
    p.add_argument("--messages", type=int, default=30_000)
    p.add_argument("--batch", type=int, default=30)
    p.add_argument("--runs", type=int, default=3)
    a = p.parse_args()
    results = []
    for _ in range(a.runs):
        with tempfile.TemporaryDirectory(prefix="chatd-write-cost-") as tmp:
            results.append(asyncio.run(run(str(Path(tmp) / "chatd.sqlite3"), a.messages, a.batch)))
        print(f"  post {results[-1][0]:.1f} µs/message, indexer {results[-1][1]:.1f} µs/message")
    print(
        f"best: post {min(r[0] for r in results):.1f} µs/message, indexer {min(r[1] for r in results):.1f} µs/message"
    )


if __name__ == "__main__":
    main()
