"""The store's write cost per message, alone: no sockets, no fan-out.

    python scripts/bench_store.py [--url postgresql://...] [--messages 30000] [--orders 1000]
                                   [--offline] [--watched] [--reads] [--photos] [--bot]
                                   [--staff-reads]

Posts `messages` chat messages round-robin over `orders` orders (buyer,
supplier, sales rep each), `batch` at a time (what the writer groups into one
transaction under load), and prints the process CPU time per message (the
server's own share when PostgreSQL runs elsewhere; SQLite's whole cost) and
the wall time. Without --url a fresh SQLite file in a temporary folder.
--offline: webhooks and e-mail on and nobody joined, so each message also writes
a webhook event and a pending notification for each of the two others.
--watched: a staff member follows every order, so each message also reports the
staff queue's view of its order.
--reads: each message is followed, in the same batch, by another participant's
read of the order up to it (as an open widget sends one).
--photos: one message in ten carries a photo.
--bot: a bot that may read every order has read each one once (a side marker on
each), so each message also reports the bot's unread on its side markers, all
`orders` of them.
--staff-reads: after one message in ten, a staff member reads its order (the staff
queue's read, as the admin UI sends it).
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from collections.abc import Awaitable
from pathlib import Path

from chatd.notifications import Rules
from chatd.store.base import Store
from chatd.store.records import AttachmentRow, Person
from chatd.store.rows import Actor
from chatd.webhooks import message_events
from chatd.wire import AttachmentRef


def _store(url: str | None, folder: str) -> Store:
    if url:
        from chatd.store.postgres import PostgresStore

        return PostgresStore(url, pool_size=4)
    from chatd.store.sqlite import SqliteStore

    return SqliteStore(str(Path(folder) / "bench.db"))


async def run(
    url: str | None,
    messages: int,
    orders: int,
    batch: int,
    *,
    offline: bool = False,
    watched: bool = False,
    reads: bool = False,
    photos: bool = False,
    bot: bool = False,
    staff_reads: bool = False,
) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as folder:
        store = _store(url, folder)
        if offline:
            store.events_for_message = message_events
            store.notifications_for = Rules(60).plan
        await store.open()
        try:
            slots = (("b", "buyer"), ("s", "supplier"), ("r", "sales_rep"))
            roles = [[Actor(f"{tag}{i}", f"{tag} {i}", role) for tag, role in slots] for i in range(orders)]
            for i, people in enumerate(roles):
                await store.put_order(f"bench-{i}", None, *(Person(a.id, a.name) for a in people))
                if watched:
                    await store.follow(Actor("staff", "Staff", "staff"), f"bench-{i}", True)
                if bot:
                    status_bot = Actor("status-bot", "Status bot", "bot", "*")
                    await store.mark_read(status_bot, f"bench-{i}", status_bot.id, 0, backward=True)
                if photos:
                    await store.add_attachment(
                        AttachmentRow(f"p{i}", f"bench-{i}", people[1].id, "p.jpg", "image/jpeg", 1000, f"{i:064x}", 1)
                    )
            text = "Pallet 3 of 4 is loaded; the driver calls ahead, ETA Tuesday morning. "
            started, cpu = time.perf_counter(), time.process_time()
            for first in range(0, messages, batch):
                writes: list[Awaitable[object]] = []
                for n in range(first, min(first + batch, messages)):
                    order, people = f"bench-{n % orders}", roles[n % orders]
                    photo = (
                        [AttachmentRef(f"p{n % orders}", "p.jpg", "image/jpeg", 1000)]
                        if photos and n % 10 == 0
                        else None
                    )
                    writes.append(store.post(people[(n // orders) % 3], order, f"{text}{n}", f"c-{n}", "text", photo))
                    if reads:
                        reader = people[(n // orders + 1) % 3]
                        writes.append(store.mark_read(reader, order, reader.id, 1 << 40))
                    if staff_reads and n % 10 == 0:
                        writes.append(store.mark_staff_read([order], None, False, "staff"))
                await asyncio.gather(*writes)
            wall, cpu = time.perf_counter() - started, time.process_time() - cpu
        finally:
            await store.aclose()
    return {"cpu_us_per_msg": cpu / messages * 1e6, "wall_us_per_msg": wall / messages * 1e6}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--url", help="a PostgreSQL URL (default: SQLite in a temporary folder)")
    ap.add_argument("--messages", type=int, default=30000)
    ap.add_argument("--orders", type=int, default=1000)
    ap.add_argument("--batch", type=int, default=30)
    ap.add_argument("--offline", action="store_true", help="webhooks and e-mail on, nobody joined")
    ap.add_argument("--watched", action="store_true", help="a staff member follows every order")
    ap.add_argument("--reads", action="store_true", help="each message read by another participant")
    ap.add_argument("--photos", action="store_true", help="one message in ten with a photo")
    ap.add_argument("--bot", action="store_true", help="a bot has read every order (a side marker on each)")
    ap.add_argument("--staff-reads", action="store_true", help="a staff read after one message in ten")
    a = ap.parse_args()
    modes = {"offline": a.offline, "watched": a.watched, "reads": a.reads, "photos": a.photos, "bot": a.bot}
    modes["staff_reads"] = a.staff_reads
    out = asyncio.run(run(a.url, a.messages, a.orders, a.batch, **modes))
    print(" ".join(f"{k}={v:.1f}" for k, v in out.items()))


if __name__ == "__main__":
    main()
