"""The checkpointer keeps the WAL short while writes never stop.

A checkpoint beside a busy writer never catches up, and SQLite rewinds the
WAL only after one that did: without the checkpointer's short pause of the
writer the file would grow for as long as messages keep coming.
"""

from __future__ import annotations

import asyncio
import struct
import uuid

from chatd.store.records import Person
from chatd.store.rows import Actor
from chatd.store.sqlite import SqliteStore

ORDERS = 200


def wal_salt(path) -> int:
    """Salt-1 of the WAL header: SQLite changes it each time the WAL rewinds."""
    with open(path, "rb") as f:
        header = f.read(32)
    return struct.unpack(">I", header[16:20])[0] if len(header) == 32 else -1


async def test_the_wal_rewinds_while_writes_never_stop(tmp_path):
    store = SqliteStore(str(tmp_path / "chat.db"))
    store.checkpoint_interval_s = 0.01
    await store.open()
    try:
        for i in range(ORDERS):
            await store.put_order(f"o{i}", None, Person(f"b{i}", "B"), Person(f"s{i}", "S"), None)
        wal = tmp_path / "chat.db-wal"
        salts = {wal_salt(wal)}
        written = 0

        async def writer(i: int) -> None:  # always one write in flight per order: the writer never idles
            nonlocal written
            while len(salts) < 4 and written < 100_000:
                await store.post(Actor(f"b{i}", "B", "buyer"), f"o{i}", "x" * 500, uuid.uuid4().hex)
                written += 1
                salts.add(wal_salt(wal))

        await asyncio.gather(*(writer(i) for i in range(ORDERS)))
        assert len(salts) >= 4, f"the WAL rewound {len(salts) - 1} times in {written} writes"
        # it is reused from the start, so the file stays at about one interval's writes
        assert wal.stat().st_size < 32 * 1024 * 1024
        assert store.reader.execute("SELECT COUNT(*) FROM messages").fetchone()[0] == written
    finally:
        await store.aclose()
