"""Numbered schema migrations, applied in order inside one transaction each.

`PRAGMA user_version` holds the number of the last one applied. Append new
migrations; never edit an applied one.
"""

from __future__ import annotations

import sqlite3

MIGRATIONS: list[str] = [
    # 1: orders, messages, per-(order, user) read markers and per-user totals.
    # Triggers keep unread counters and totals in step with every write, so
    # neither inbox nor an unread update ever scans the messages table.
    """
    CREATE TABLE orders (
        id TEXT PRIMARY KEY,
        status TEXT NOT NULL,
        buyer_id TEXT NOT NULL, buyer_name TEXT NOT NULL,
        supplier_id TEXT NOT NULL, supplier_name TEXT NOT NULL,
        rep_id TEXT, rep_name TEXT,
        dispute_open INTEGER NOT NULL DEFAULT 0,
        dispute_reason TEXT, dispute_by TEXT, dispute_ts INTEGER,
        last_seq INTEGER NOT NULL DEFAULT 0,
        last_ts INTEGER NOT NULL DEFAULT 0,
        created_ts INTEGER NOT NULL
    );
    CREATE TABLE messages (
        order_id TEXT NOT NULL,
        seq INTEGER NOT NULL,
        ts INTEGER NOT NULL,
        kind TEXT NOT NULL,
        sender_id TEXT NOT NULL, sender_name TEXT NOT NULL, sender_role TEXT NOT NULL,
        client_id TEXT,
        text TEXT NOT NULL,
        status TEXT,
        attachments TEXT,
        PRIMARY KEY (order_id, seq)
    ) WITHOUT ROWID;
    CREATE UNIQUE INDEX messages_client_id ON messages (order_id, sender_id, client_id)
        WHERE client_id IS NOT NULL;
    -- Clustered by order: a new message updates its order's few markers in
    -- one page. The user index changes only when markers come and go.
    CREATE TABLE read_markers (
        order_id TEXT NOT NULL,
        user_id TEXT NOT NULL,
        sees_notes INTEGER NOT NULL,
        read_seq INTEGER NOT NULL DEFAULT 0,
        unread INTEGER NOT NULL DEFAULT 0,
        last_seq INTEGER NOT NULL DEFAULT 0,   -- newest message this user may see
        activity_ts INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (order_id, user_id)
    ) WITHOUT ROWID;
    CREATE INDEX read_markers_user ON read_markers (user_id);
    CREATE TABLE user_stats (
        user_id TEXT PRIMARY KEY,
        unread_total INTEGER NOT NULL DEFAULT 0
    ) WITHOUT ROWID;

    CREATE TRIGGER messages_after_insert AFTER INSERT ON messages BEGIN
        UPDATE orders SET last_seq = NEW.seq, last_ts = NEW.ts WHERE id = NEW.order_id;
        UPDATE read_markers
           SET unread = unread + (user_id != NEW.sender_id),
               last_seq = NEW.seq, activity_ts = NEW.ts
         WHERE order_id = NEW.order_id AND (NEW.kind != 'note' OR sees_notes);
        UPDATE read_markers SET read_seq = NEW.seq, unread = 0
         WHERE order_id = NEW.order_id AND user_id = NEW.sender_id;
    END;
    CREATE TRIGGER markers_after_insert AFTER INSERT ON read_markers BEGIN
        INSERT OR IGNORE INTO user_stats (user_id) VALUES (NEW.user_id);
        UPDATE user_stats SET unread_total = unread_total + NEW.unread
         WHERE user_id = NEW.user_id AND NEW.unread != 0;
    END;
    CREATE TRIGGER markers_after_update AFTER UPDATE OF unread ON read_markers
    WHEN NEW.unread != OLD.unread BEGIN
        UPDATE user_stats SET unread_total = unread_total + NEW.unread - OLD.unread
         WHERE user_id = NEW.user_id;
    END;
    CREATE TRIGGER markers_after_delete AFTER DELETE ON read_markers
    WHEN OLD.unread != 0 BEGIN
        UPDATE user_stats SET unread_total = unread_total - OLD.unread
         WHERE user_id = OLD.user_id;
    END;
    CREATE TABLE health (id INTEGER PRIMARY KEY, ts INTEGER NOT NULL);
    """,
    # 2: admin threads, search, attachments, webhooks.
    # message_log numbers every message in commit order (writers are serialised
    # by BEGIN IMMEDIATE): its id is the snapshot bound of thread pagination and
    # the rowid of the contentless full-text index. The trigger keeps both in
    # the message's own transaction. Attachment metadata (files live on disk,
    # named by sha256), which messages carry which attachment, and the webhook
    # outbox, written in the same transaction as the message it announces.
    """
    CREATE TABLE message_log (
        id INTEGER PRIMARY KEY,
        order_id TEXT NOT NULL,
        seq INTEGER NOT NULL,
        ts INTEGER NOT NULL,
        kind TEXT NOT NULL
    );
    CREATE INDEX message_log_order ON message_log (order_id, id);
    -- no prefix index: it costs every insert ~10% more, and a prefix query
    -- works without one (a range of the sorted term list)
    CREATE VIRTUAL TABLE messages_fts USING fts5(
        text, content = '', tokenize = 'unicode61 remove_diacritics 2'
    );
    INSERT INTO message_log (order_id, seq, ts, kind)
        SELECT order_id, seq, ts, kind FROM messages ORDER BY ts, order_id, seq;
    INSERT INTO messages_fts (rowid, text)
        SELECT l.id, m.text FROM message_log l JOIN messages m ON m.order_id = l.order_id AND m.seq = l.seq;
    CREATE TRIGGER messages_after_insert_index AFTER INSERT ON messages BEGIN
        INSERT INTO message_log (order_id, seq, ts, kind) VALUES (NEW.order_id, NEW.seq, NEW.ts, NEW.kind);
        INSERT INTO messages_fts (rowid, text) VALUES (last_insert_rowid(), NEW.text);
    END;
    -- threads newest activity first: the last message's time, or the order's creation
    CREATE INDEX orders_activity ON orders ((CASE WHEN last_seq > 0 THEN last_ts ELSE created_ts END), id);
    CREATE TABLE attachments (
        id TEXT PRIMARY KEY,
        order_id TEXT NOT NULL,
        uploader_id TEXT NOT NULL,
        name TEXT NOT NULL,
        mime TEXT NOT NULL,
        size INTEGER NOT NULL,
        sha256 TEXT NOT NULL,
        created_ts INTEGER NOT NULL
    ) WITHOUT ROWID;
    CREATE INDEX attachments_sha256 ON attachments (sha256);
    CREATE INDEX attachments_created ON attachments (created_ts);
    CREATE TABLE message_attachments (
        attachment_id TEXT NOT NULL,
        order_id TEXT NOT NULL,
        seq INTEGER NOT NULL,
        kind TEXT NOT NULL,
        PRIMARY KEY (attachment_id, order_id, seq)
    ) WITHOUT ROWID;
    CREATE TABLE webhook_outbox (
        id INTEGER PRIMARY KEY,
        event_id TEXT NOT NULL UNIQUE,
        type TEXT NOT NULL,
        body BLOB NOT NULL,
        created_ts INTEGER NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        next_ts INTEGER NOT NULL,
        last_error TEXT,
        dead INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX webhook_outbox_due ON webhook_outbox (dead, next_ts);
    """,
    # 3: search is indexed in bulk by the store's indexer, not by a trigger in
    # every message's transaction: one FTS5 segment a round instead of one a
    # commit took the per-message write cost from ~99 to ~74 µs. Threads sort
    # by activity at query time, so no index is updated on every message.
    """
    DROP TRIGGER messages_after_insert_index;
    CREATE TRIGGER messages_after_insert_log AFTER INSERT ON messages BEGIN
        INSERT INTO message_log (order_id, seq, ts, kind) VALUES (NEW.order_id, NEW.seq, NEW.ts, NEW.kind);
    END;
    DROP INDEX orders_activity;
    CREATE TABLE search_state (id INTEGER PRIMARY KEY CHECK (id = 1), indexed_to INTEGER NOT NULL);
    INSERT INTO search_state (id, indexed_to) SELECT 1, COALESCE(MAX(id), 0) FROM message_log;
    """,
    # 4: message_log is read by id ranges only. Its (order_id, id) index put
    # one more page per message in every commit (4.2 -> 3.6 WAL frames a
    # message); threads pagination finds an order's activity as of a
    # snapshot through messages instead (seq and log id grow together).
    """
    DROP INDEX message_log_order;
    """,
    # 5: a marker outside the order's participant slots (a staff member's or a
    # bot's) is a *side* marker: shown only to tokens that cover the order, so an
    # id's staff or bot read state never reaches its buyer token. The partial
    # index finds a user's side markers (usually none) without a scan.
    """
    ALTER TABLE read_markers ADD COLUMN side INTEGER NOT NULL DEFAULT 0;
    UPDATE read_markers SET side = 1 WHERE NOT EXISTS (
        SELECT 1 FROM orders o WHERE o.id = read_markers.order_id
           AND read_markers.user_id IN (o.buyer_id, o.supplier_id, o.rep_id));
    CREATE INDEX read_markers_side ON read_markers (user_id) WHERE side = 1;
    """,
    # 6: order workflows (chatd.workflow): the order's pipeline, when its chat
    # closes to participants (a terminal status plus the grace period, ms), and
    # status messages the api key forced outside the pipeline.
    """
    ALTER TABLE orders ADD COLUMN workflow TEXT NOT NULL DEFAULT 'free';
    ALTER TABLE orders ADD COLUMN closes_at INTEGER;
    ALTER TABLE messages ADD COLUMN forced INTEGER NOT NULL DEFAULT 0;
    """,
    # 7: a buyer's sales rep (PUT /api/v1/buyers/{buyer}). An order's rep follows
    # its buyer's (rep_from_buyer = 1) unless its own upsert named a sales_rep
    # (an override, null included); orders stored before had no assignment to
    # follow: those without a rep follow it from now on, those with one keep it.
    """
    CREATE TABLE buyer_reps (buyer_id TEXT PRIMARY KEY, rep_id TEXT NOT NULL, rep_name TEXT NOT NULL);
    ALTER TABLE orders ADD COLUMN rep_from_buyer INTEGER NOT NULL DEFAULT 0;
    UPDATE orders SET rep_from_buyer = 1 WHERE rep_id IS NULL;
    CREATE INDEX orders_buyer ON orders (buyer_id);
    """,
    # 8: response times (chatd.responses). An order's buyer waits since message
    # awaiting_seq (at awaiting_since, ms) until the supplier side answers;
    # sla_escalated: this waiting period was escalated. `responses` keeps every
    # waiting period, with the supplier and rep of the order when it started,
    # for the report; one marked as needing no reply is deleted.
    """
    ALTER TABLE orders ADD COLUMN awaiting_seq INTEGER;
    ALTER TABLE orders ADD COLUMN awaiting_since INTEGER;
    ALTER TABLE orders ADD COLUMN sla_escalated INTEGER NOT NULL DEFAULT 0;
    CREATE INDEX orders_awaiting ON orders (awaiting_since) WHERE awaiting_since IS NOT NULL;
    CREATE TABLE responses (
        order_id TEXT NOT NULL,
        asked_seq INTEGER NOT NULL,
        asked_at INTEGER NOT NULL,
        supplier_id TEXT NOT NULL,
        rep_id TEXT,
        answered_seq INTEGER,
        answered_at INTEGER,
        answered_by TEXT,
        escalated_at INTEGER,
        PRIMARY KEY (order_id, asked_seq)
    );
    CREATE INDEX responses_supplier ON responses (supplier_id, asked_at);
    CREATE INDEX responses_rep ON responses (rep_id, asked_at);
    CREATE INDEX responses_asked ON responses (asked_at);
    """,
    # 9: contact data (PUT /api/v1/orders, /buyers). Avatars are shown with the
    # participants, so they live with each slot like the names; e-mail, phone
    # and locale are for notifications only, one row per user (the latest PUT
    # naming them wins), never sent to another participant.
    """
    ALTER TABLE orders ADD COLUMN buyer_avatar TEXT;
    ALTER TABLE orders ADD COLUMN supplier_avatar TEXT;
    ALTER TABLE orders ADD COLUMN rep_avatar TEXT;
    ALTER TABLE buyer_reps ADD COLUMN rep_avatar TEXT;
    CREATE TABLE contacts (user_id TEXT PRIMARY KEY, email TEXT, phone TEXT, locale TEXT);
    """,
    # 10: notifications (chatd.notifications, chatd.notifier): at most one pending
    # (state 0) per user and order, joined by later messages; due_ts moves with
    # them up to deadline_ts; sent ones (state 1) are kept two days for the caps.
    """
    CREATE TABLE notifications (
        id TEXT PRIMARY KEY,
        user_id TEXT NOT NULL,
        order_id TEXT NOT NULL,
        role TEXT NOT NULL,
        reason TEXT NOT NULL,
        first_seq INTEGER NOT NULL,
        last_seq INTEGER NOT NULL,
        created_ts INTEGER NOT NULL,
        due_ts INTEGER NOT NULL,
        deadline_ts INTEGER NOT NULL,
        state INTEGER NOT NULL DEFAULT 0,
        lease_until INTEGER NOT NULL DEFAULT 0,
        attempts INTEGER NOT NULL DEFAULT 0,
        sent_ts INTEGER
    );
    CREATE UNIQUE INDEX notifications_pending ON notifications (user_id, order_id) WHERE state = 0;
    CREATE INDEX notifications_due ON notifications (due_ts) WHERE state = 0;
    CREATE INDEX notifications_sent ON notifications (user_id, sent_ts) WHERE state = 1;
    CREATE TABLE notify_prefs (user_id TEXT PRIMARY KEY, email INTEGER NOT NULL DEFAULT 1);
    CREATE TABLE notify_muted (user_id TEXT NOT NULL, order_id TEXT NOT NULL, PRIMARY KEY (user_id, order_id));
    """,
    # 11: reply-by-e-mail tokens (chatd.mail.addresses). One live token per user and
    # order (the partial unique index); a revoked one is kept, so its address keeps
    # answering "revoked" rather than "unknown", and a later one is a new token.
    """
    CREATE TABLE reply_tokens (
        id TEXT PRIMARY KEY,
        user_id TEXT NOT NULL,
        order_id TEXT NOT NULL,
        created_ts INTEGER NOT NULL,
        revoked_ts INTEGER
    ) WITHOUT ROWID;
    CREATE UNIQUE INDEX reply_tokens_live ON reply_tokens (order_id, user_id) WHERE revoked_ts IS NULL;
    """,
    # 12: the staff attention queue (chatd.attention). Staff share one read marker per
    # order (staff_markers: `unread` counts what was not sent as staff after read_seq;
    # a staff message moves it, as sending moves a participant's). It exists for every
    # order in a queue (made when one enters it) and for every order staff read; the
    # trigger keeps it exact. An open help request is kept with the order (help_*:
    # the latest request); follows are per staff member. orders_attention finds the
    # orders every staff member's queue holds. Per-user staff markers are not
    # migrated (read_markers cannot tell a staff member's from a bot's): staff tokens
    # no longer read them, and the orders in the queue now start at their newest
    # staff message, where a staff reply would have put the shared marker.
    # order_words and email_words hold what `q` also searches besides messages (the
    # order id and participants' names; e-mails), each behind an FTS5 index of its
    # own, kept by triggers on orders and contacts.
    """
    ALTER TABLE orders ADD COLUMN help_by TEXT;
    ALTER TABLE orders ADD COLUMN help_ts INTEGER;
    ALTER TABLE orders ADD COLUMN help_seq INTEGER;
    CREATE INDEX orders_attention ON orders (id) WHERE dispute_open = 1 OR sla_escalated = 1 OR help_ts IS NOT NULL;
    CREATE TABLE staff_markers (
        order_id TEXT PRIMARY KEY,
        read_seq INTEGER NOT NULL DEFAULT 0,
        unread INTEGER NOT NULL DEFAULT 0
    ) WITHOUT ROWID;
    CREATE TABLE staff_follows (
        user_id TEXT NOT NULL,
        order_id TEXT NOT NULL,
        PRIMARY KEY (user_id, order_id)
    ) WITHOUT ROWID;
    CREATE INDEX staff_follows_order ON staff_follows (order_id);
    CREATE TRIGGER messages_after_insert_staff AFTER INSERT ON messages BEGIN
        UPDATE staff_markers
           SET read_seq = CASE WHEN NEW.sender_role = 'staff' THEN NEW.seq ELSE read_seq END,
               unread = CASE WHEN NEW.sender_role = 'staff' THEN 0 ELSE unread + 1 END
         WHERE order_id = NEW.order_id;
    END;
    INSERT INTO staff_markers (order_id, read_seq, unread)
        SELECT q.id, q.seq, (SELECT COUNT(*) FROM messages m
                              WHERE m.order_id = q.id AND m.seq > q.seq AND m.sender_role != 'staff')
          FROM (SELECT o.id, COALESCE((SELECT MAX(m.seq) FROM messages m
                                        WHERE m.order_id = o.id AND m.sender_role = 'staff'), 0) AS seq
                  FROM orders o WHERE o.dispute_open = 1 OR o.sla_escalated = 1) q;
    CREATE TABLE order_words (id INTEGER PRIMARY KEY, order_id TEXT NOT NULL UNIQUE, words TEXT NOT NULL);
    CREATE VIRTUAL TABLE order_words_fts USING fts5(
        words, content = 'order_words', content_rowid = 'id', tokenize = 'unicode61 remove_diacritics 2'
    );
    CREATE TABLE email_words (id INTEGER PRIMARY KEY, user_id TEXT NOT NULL UNIQUE, words TEXT NOT NULL);
    CREATE VIRTUAL TABLE email_words_fts USING fts5(
        words, content = 'email_words', content_rowid = 'id', tokenize = 'unicode61 remove_diacritics 2'
    );
    CREATE TRIGGER order_words_after_insert AFTER INSERT ON order_words BEGIN
        INSERT INTO order_words_fts (rowid, words) VALUES (NEW.id, NEW.words);
    END;
    CREATE TRIGGER order_words_after_update AFTER UPDATE OF words ON order_words BEGIN
        INSERT INTO order_words_fts (order_words_fts, rowid, words) VALUES ('delete', OLD.id, OLD.words);
        INSERT INTO order_words_fts (rowid, words) VALUES (NEW.id, NEW.words);
    END;
    CREATE TRIGGER email_words_after_insert AFTER INSERT ON email_words BEGIN
        INSERT INTO email_words_fts (rowid, words) VALUES (NEW.id, NEW.words);
    END;
    CREATE TRIGGER email_words_after_update AFTER UPDATE OF words ON email_words BEGIN
        INSERT INTO email_words_fts (email_words_fts, rowid, words) VALUES ('delete', OLD.id, OLD.words);
        INSERT INTO email_words_fts (rowid, words) VALUES (NEW.id, NEW.words);
    END;
    CREATE TRIGGER orders_after_insert_words AFTER INSERT ON orders BEGIN
        INSERT INTO order_words (order_id, words)
        VALUES (NEW.id,
                NEW.id || ' ' || NEW.buyer_name || ' ' || NEW.supplier_name || ' ' || COALESCE(NEW.rep_name, ''));
    END;
    CREATE TRIGGER orders_after_update_words AFTER UPDATE OF buyer_name, supplier_name, rep_name ON orders
    WHEN NEW.buyer_name IS NOT OLD.buyer_name OR NEW.supplier_name IS NOT OLD.supplier_name
      OR NEW.rep_name IS NOT OLD.rep_name BEGIN
        UPDATE order_words
           SET words = NEW.id || ' ' || NEW.buyer_name || ' ' || NEW.supplier_name || ' ' || COALESCE(NEW.rep_name, '')
         WHERE order_id = NEW.id;
    END;
    CREATE TRIGGER contacts_after_insert_words AFTER INSERT ON contacts WHEN NEW.email IS NOT NULL BEGIN
        INSERT INTO email_words (user_id, words) VALUES (NEW.user_id, NEW.email)
            ON CONFLICT (user_id) DO UPDATE SET words = excluded.words;
    END;
    CREATE TRIGGER contacts_after_update_words AFTER UPDATE OF email ON contacts
    WHEN NEW.email IS NOT OLD.email BEGIN
        INSERT INTO email_words (user_id, words) VALUES (NEW.user_id, COALESCE(NEW.email, ''))
            ON CONFLICT (user_id) DO UPDATE SET words = excluded.words;
    END;
    INSERT INTO order_words (order_id, words)
        SELECT id, id || ' ' || buyer_name || ' ' || supplier_name || ' ' || COALESCE(rep_name, '') FROM orders;
    INSERT INTO email_words (user_id, words) SELECT user_id, email FROM contacts WHERE email IS NOT NULL;
    """,
    # 13: the search index knows each message's order: column `ord` holds one token, 'o' and
    # the order's order_words id. A threads search for a common word then asks the index
    # about the orders of the page it is filling (chatd.store.sqlite.search) instead of
    # reading every match and its message_log row (163,000 for "pallet" in 1 M messages).
    # Written by the indexer, in bulk, never in a message's transaction. The index is
    # rebuilt here up to where the indexer had come (1 M messages: about 25 s, once).
    """
    DROP TABLE messages_fts;
    CREATE VIRTUAL TABLE messages_fts USING fts5(
        text, ord, content = '', tokenize = 'unicode61 remove_diacritics 2'
    );
    INSERT INTO messages_fts (rowid, text, ord)
        SELECT l.id, m.text, COALESCE('o' || w.id, '') FROM message_log l
          JOIN messages m ON m.order_id = l.order_id AND m.seq = l.seq
          LEFT JOIN order_words w ON w.order_id = l.order_id
         WHERE l.id <= (SELECT indexed_to FROM search_state WHERE id = 1);
    """,
    # 14: one trigger per message instead of three, and one UPDATE of read_markers instead
    # of two (the sender's row is set in the statement that counts the others' unread),
    # as PostgreSQL's migration 9. Same effect as migrations 1, 3 and 12.
    """
    DROP TRIGGER messages_after_insert;
    DROP TRIGGER messages_after_insert_log;
    DROP TRIGGER messages_after_insert_staff;
    CREATE TRIGGER messages_after_insert AFTER INSERT ON messages BEGIN
        UPDATE orders SET last_seq = NEW.seq, last_ts = NEW.ts WHERE id = NEW.order_id;
        UPDATE read_markers
           SET unread = CASE WHEN user_id = NEW.sender_id THEN 0 ELSE unread + 1 END,
               read_seq = CASE WHEN user_id = NEW.sender_id THEN NEW.seq ELSE read_seq END,
               last_seq = CASE WHEN NEW.kind != 'note' OR sees_notes THEN NEW.seq ELSE last_seq END,
               activity_ts = CASE WHEN NEW.kind != 'note' OR sees_notes THEN NEW.ts ELSE activity_ts END
         WHERE order_id = NEW.order_id AND (NEW.kind != 'note' OR sees_notes OR user_id = NEW.sender_id);
        INSERT INTO message_log (order_id, seq, ts, kind) VALUES (NEW.order_id, NEW.seq, NEW.ts, NEW.kind);
        UPDATE staff_markers
           SET read_seq = CASE WHEN NEW.sender_role = 'staff' THEN NEW.seq ELSE read_seq END,
               unread = CASE WHEN NEW.sender_role = 'staff' THEN 0 ELSE unread + 1 END
         WHERE order_id = NEW.order_id;
    END;
    """,
    # 15: each user's unread on side markers kept beside their total, by the marker
    # triggers, as PostgreSQL's migration 10. Each message reported it by summing
    # the reader's side markers: a bot that had read 10,000 orders made every message
    # in them cost 5 ms (scripts/bench_store.py --bot).
    """
    ALTER TABLE user_stats ADD COLUMN side_unread INTEGER NOT NULL DEFAULT 0;
    UPDATE user_stats SET side_unread = (
        SELECT COALESCE(SUM(unread), 0) FROM read_markers h WHERE h.user_id = user_stats.user_id AND h.side = 1);
    DROP TRIGGER markers_after_insert;
    DROP TRIGGER markers_after_update;
    DROP TRIGGER markers_after_delete;
    CREATE TRIGGER markers_after_insert AFTER INSERT ON read_markers BEGIN
        INSERT OR IGNORE INTO user_stats (user_id) VALUES (NEW.user_id);
        UPDATE user_stats SET unread_total = unread_total + NEW.unread,
               side_unread = side_unread + CASE WHEN NEW.side = 1 THEN NEW.unread ELSE 0 END
         WHERE user_id = NEW.user_id AND NEW.unread != 0;
    END;
    CREATE TRIGGER markers_after_update AFTER UPDATE OF unread ON read_markers
    WHEN NEW.unread != OLD.unread BEGIN
        UPDATE user_stats SET unread_total = unread_total + NEW.unread - OLD.unread,
               side_unread = side_unread + CASE WHEN NEW.side = 1 THEN NEW.unread - OLD.unread ELSE 0 END
         WHERE user_id = NEW.user_id;
    END;
    CREATE TRIGGER markers_after_delete AFTER DELETE ON read_markers
    WHEN OLD.unread != 0 BEGIN
        UPDATE user_stats SET unread_total = unread_total - OLD.unread,
               side_unread = side_unread - CASE WHEN OLD.side = 1 THEN OLD.unread ELSE 0 END
         WHERE user_id = OLD.user_id;
    END;
    """,
    # 16: the name of who opened (or closed) the dispute, beside their id: a staff
    # member is no participant, so a client that has not loaded the dispute message
    # had only the id to show. Earlier disputes take the name their message carries.
    """
    ALTER TABLE orders ADD COLUMN dispute_by_name TEXT;
    UPDATE orders SET dispute_by_name = (
        SELECT m.sender_name FROM messages m WHERE m.order_id = orders.id AND m.kind = 'dispute'
         ORDER BY m.seq DESC LIMIT 1)
     WHERE dispute_ts IS NOT NULL;
    """,
]


def migrate(db: sqlite3.Connection) -> int:
    """Bring the schema up to date; return the version now in place.

    Each step reads the version inside its own write transaction, so several
    processes starting on one file at once apply every migration exactly once.
    """
    while True:
        db.execute("BEGIN IMMEDIATE")
        try:
            version: int = db.execute("PRAGMA user_version").fetchone()[0]
            if version >= len(MIGRATIONS):
                db.execute("COMMIT")
                return version
            # executescript would commit first; run statements one by one instead.
            for statement in _statements(MIGRATIONS[version]):
                db.execute(statement)
            db.execute(f"PRAGMA user_version = {version + 1}")
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise


def _statements(script: str) -> list[str]:
    """Split a script on complete statements (triggers contain semicolons)."""
    out, buf = [], ""
    for line in script.splitlines(keepends=True):
        buf += line
        if sqlite3.complete_statement(buf):
            if buf.strip():
                out.append(buf.strip())
            buf = ""
    if buf.strip():
        out.append(buf.strip())
    return out
