"""SQLite migration 12 over a store that has data: the orders in the staff queue
at the upgrade get the shared staff marker at their newest staff message, and the
order ids, names and e-mails already stored become searchable."""

from __future__ import annotations

import sqlite3

from chatd.store.sqlite import migrations


def test_an_upgraded_store_queues_open_disputes_and_searches_what_it_held(tmp_path):
    db = sqlite3.connect(tmp_path / "old.sqlite3", isolation_level=None)
    for script in migrations.MIGRATIONS[:11]:  # the schema before the staff queue
        db.execute("BEGIN")
        for statement in migrations._statements(script):
            db.execute(statement)
        db.execute("COMMIT")
    db.execute("PRAGMA user_version = 11")
    for oid, dispute in (("PO-1", 1), ("PO-2", 0)):
        db.execute(
            "INSERT INTO orders (id, status, buyer_id, buyer_name, supplier_id, supplier_name, dispute_open, "
            "dispute_ts, created_ts) VALUES (?, 'open', 'b1', 'Zoë Müller', 's1', 'Berg Tools', ?, 1, 1)",
            (oid, dispute),
        )
        for seq, role in enumerate(("buyer", "staff", "supplier", "buyer"), start=1):
            db.execute(
                "INSERT INTO messages (order_id, seq, ts, kind, sender_id, sender_name, sender_role, text) "
                "VALUES (?, ?, ?, 'text', ?, ?, ?, 'hello')",
                (oid, seq, seq, role, role, role),
            )
    db.execute("INSERT INTO contacts (user_id, email) VALUES ('b1', 'zoe@example.com')")
    assert migrations.migrate(db) == len(migrations.MIGRATIONS)
    # only the disputed order is in the queue: read up to its staff message, two after it
    assert db.execute("SELECT order_id, read_seq, unread FROM staff_markers").fetchall() == [("PO-1", 2, 2)]
    found = db.execute(
        "SELECT w.order_id FROM order_words w WHERE w.id IN "
        '(SELECT rowid FROM order_words_fts WHERE order_words_fts MATCH \'"muller" "po"\') ORDER BY 1'
    ).fetchall()
    assert found == [("PO-1",), ("PO-2",)]
    mailed = db.execute(
        "SELECT user_id FROM email_words WHERE id IN "
        "(SELECT rowid FROM email_words_fts WHERE email_words_fts MATCH 'zoe')"
    ).fetchall()
    assert mailed == [("b1",)]
    # the trigger keeps the marker from here on: a staff message reads it, a buyer's counts
    db.execute(
        "INSERT INTO messages (order_id, seq, ts, kind, sender_id, sender_name, sender_role, text) "
        "VALUES ('PO-1', 5, 5, 'text', 'st', 'St', 'staff', 'x'), ('PO-1', 6, 6, 'note', 's1', 'S', 'supplier', 'y')"
    )
    assert db.execute("SELECT read_seq, unread FROM staff_markers").fetchone() == (5, 1)
    db.close()
