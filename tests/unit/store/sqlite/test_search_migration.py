"""SQLite migration 13 over a store that has data: the search index is rebuilt with each
message's order (`ord`) up to where the indexer had come, and the messages it had not
reached yet are left to it, so every message is indexed once, with its order."""

from __future__ import annotations

import asyncio
import sqlite3

from chatd.store.sqlite import SqliteStore, migrations


def test_an_upgraded_store_searches_each_order_and_indexes_the_rest(tmp_path):
    path = tmp_path / "old.sqlite3"
    db = sqlite3.connect(path, isolation_level=None)
    for script in migrations.MIGRATIONS[:12]:  # the schema before the index knew orders
        db.execute("BEGIN")
        for statement in migrations._statements(script):
            db.execute(statement)
        db.execute("COMMIT")
    db.execute("PRAGMA user_version = 12")
    for oid in ("PO-1", "PO-2"):
        db.execute(
            "INSERT INTO orders (id, status, buyer_id, buyer_name, supplier_id, supplier_name, created_ts) "
            "VALUES (?, 'open', 'b1', 'Bea', 's1', 'Berg Tools', 1)",
            (oid,),
        )
        for seq, text in enumerate(("two pallets", "the invoice", "pallets again"), start=1):
            db.execute(
                "INSERT INTO messages (order_id, seq, ts, kind, sender_id, sender_name, sender_role, text) "
                "VALUES (?, ?, ?, 'text', 'b1', 'Bea', 'buyer', ?)",
                (oid, seq, seq, f"{text} {oid}"),
            )
    # the indexer had come as far as the first four messages (the old index: text only)
    db.execute(
        "INSERT INTO messages_fts (rowid, text) SELECT l.id, m.text FROM message_log l "
        "JOIN messages m ON m.order_id = l.order_id AND m.seq = l.seq WHERE l.id <= 4"
    )
    db.execute("UPDATE search_state SET indexed_to = 4")
    db.close()

    async def upgrade() -> None:
        store = SqliteStore(str(path))
        await store.open()  # migrates
        try:
            await store.index_search()
        finally:
            await store.aclose()

    asyncio.run(upgrade())
    db = sqlite3.connect(path, isolation_level=None)
    assert db.execute("PRAGMA user_version").fetchone()[0] == len(migrations.MIGRATIONS)
    ords = dict(db.execute("SELECT order_id, 'o' || id FROM order_words"))

    def hits(query: str) -> list[tuple[str, int]]:
        return db.execute(
            "SELECT l.order_id, l.seq FROM message_log l WHERE l.id IN "
            "(SELECT rowid FROM messages_fts WHERE messages_fts MATCH ?) ORDER BY l.id",
            (query,),
        ).fetchall()

    both = [("PO-1", 1), ("PO-1", 3), ("PO-2", 1), ("PO-2", 3)]
    assert hits('text : ("pallets"*)') == both  # the rebuilt messages and those indexed after
    assert hits(f'text : ("pallets"*) AND ord : "{ords["PO-2"]}"') == [("PO-2", 1), ("PO-2", 3)]
    assert hits(f'ord : "{ords["PO-1"]}"') == [("PO-1", 1), ("PO-1", 2), ("PO-1", 3)]
    assert hits(f'text : ("{ords["PO-1"]}")') == []  # a word never matches an order's token
    db.close()
