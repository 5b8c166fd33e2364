"""Numbered schema migrations for PostgreSQL, applied on start.

`chatd_schema.version` holds the number of the last one applied. Every host
runs `migrate` when it starts; a transaction-scoped advisory lock makes the
others wait while one applies them, after which they find nothing to do.
Append new migrations; never edit an applied one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import asyncpg

LOCK_KEY = 0x63686174  # "chat": the advisory lock migrations hold

MIGRATIONS: list[str] = [
    # 1: the SQLite schema as of its migration 5, in PostgreSQL's terms.
    # Triggers keep unread counters and per-user totals in step with every
    # write (as in SQLite), so neither an inbox page nor an unread update
    # scans messages. Each message carries its commit-log number (`log_id`:
    # the snapshot bound of thread pagination) and its search vector, kept
    # by PostgreSQL in the message's own transaction and found through a GIN
    # index. The text search configuration folds case and diacritics
    # (unaccent, a trusted extension) like SQLite's unicode61 tokenizer.
    """
    CREATE EXTENSION IF NOT EXISTS unaccent;
    CREATE TEXT SEARCH CONFIGURATION chatd_search (COPY = simple);
    ALTER TEXT SEARCH CONFIGURATION chatd_search
        ALTER MAPPING FOR asciiword, asciihword, hword_asciipart, word, hword, hword_part,
                          numword, numhword, hword_numpart
        WITH unaccent, simple;
    CREATE TABLE orders (
        id TEXT PRIMARY KEY,
        status TEXT NOT NULL,
        buyer_id TEXT NOT NULL, buyer_name TEXT NOT NULL,
        supplier_id TEXT NOT NULL, supplier_name TEXT NOT NULL,
        rep_id TEXT, rep_name TEXT,
        dispute_open INTEGER NOT NULL DEFAULT 0,
        dispute_reason TEXT, dispute_by TEXT, dispute_ts BIGINT,
        last_seq BIGINT NOT NULL DEFAULT 0,
        last_ts BIGINT NOT NULL DEFAULT 0,
        created_ts BIGINT NOT NULL
    );
    CREATE TABLE messages (
        order_id TEXT NOT NULL,
        seq BIGINT NOT NULL,
        ts BIGINT NOT NULL,
        kind TEXT NOT NULL,
        sender_id TEXT NOT NULL, sender_name TEXT NOT NULL, sender_role TEXT NOT NULL,
        client_id TEXT,
        text TEXT NOT NULL,
        status TEXT,
        attachments TEXT,
        log_id BIGINT GENERATED ALWAYS AS IDENTITY,
        search TSVECTOR GENERATED ALWAYS AS (to_tsvector('chatd_search', text)) STORED,
        PRIMARY KEY (order_id, seq)
    );
    CREATE UNIQUE INDEX messages_client_id ON messages (order_id, sender_id, client_id)
        WHERE client_id IS NOT NULL;
    CREATE INDEX messages_log ON messages (log_id);
    CREATE INDEX messages_search ON messages USING GIN (search);
    CREATE TABLE read_markers (
        order_id TEXT NOT NULL,
        user_id TEXT NOT NULL,
        sees_notes INTEGER NOT NULL,
        read_seq BIGINT NOT NULL DEFAULT 0,
        unread BIGINT NOT NULL DEFAULT 0,
        last_seq BIGINT NOT NULL DEFAULT 0,
        activity_ts BIGINT NOT NULL DEFAULT 0,
        side INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (order_id, user_id)
    );
    CREATE INDEX read_markers_user ON read_markers (user_id);
    CREATE INDEX read_markers_side ON read_markers (user_id) WHERE side = 1;
    CREATE TABLE user_stats (
        user_id TEXT PRIMARY KEY,
        unread_total BIGINT NOT NULL DEFAULT 0
    );
    CREATE FUNCTION chatd_message_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        UPDATE orders SET last_seq = NEW.seq, last_ts = NEW.ts WHERE id = NEW.order_id;
        UPDATE read_markers
           SET unread = unread + (user_id <> NEW.sender_id)::int,
               last_seq = NEW.seq, activity_ts = NEW.ts
         WHERE order_id = NEW.order_id AND (NEW.kind <> 'note' OR sees_notes <> 0);
        UPDATE read_markers SET read_seq = NEW.seq, unread = 0
         WHERE order_id = NEW.order_id AND user_id = NEW.sender_id;
        RETURN NULL;
    END $$;
    CREATE TRIGGER messages_after_insert AFTER INSERT ON messages
        FOR EACH ROW EXECUTE FUNCTION chatd_message_inserted();
    CREATE FUNCTION chatd_marker_changed() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF TG_OP = 'INSERT' THEN
            INSERT INTO user_stats (user_id, unread_total) VALUES (NEW.user_id, NEW.unread)
                ON CONFLICT (user_id) DO UPDATE SET unread_total = user_stats.unread_total + EXCLUDED.unread_total;
        ELSIF TG_OP = 'UPDATE' THEN
            IF NEW.unread <> OLD.unread THEN
                UPDATE user_stats SET unread_total = unread_total + NEW.unread - OLD.unread
                 WHERE user_id = NEW.user_id;
            END IF;
        ELSIF OLD.unread <> 0 THEN
            UPDATE user_stats SET unread_total = unread_total - OLD.unread WHERE user_id = OLD.user_id;
        END IF;
        RETURN NULL;
    END $$;
    CREATE TRIGGER markers_after_change AFTER INSERT OR UPDATE OF unread OR DELETE ON read_markers
        FOR EACH ROW EXECUTE FUNCTION chatd_marker_changed();
    CREATE TABLE health (id INTEGER PRIMARY KEY, ts BIGINT NOT NULL);
    CREATE TABLE attachments (
        id TEXT PRIMARY KEY,
        order_id TEXT NOT NULL,
        uploader_id TEXT NOT NULL,
        name TEXT NOT NULL,
        mime TEXT NOT NULL,
        size BIGINT NOT NULL,
        sha256 TEXT NOT NULL,
        created_ts BIGINT NOT NULL
    );
    CREATE INDEX attachments_sha256 ON attachments (sha256);
    CREATE INDEX attachments_created ON attachments (created_ts);
    CREATE TABLE message_attachments (
        attachment_id TEXT NOT NULL,
        order_id TEXT NOT NULL,
        seq BIGINT NOT NULL,
        kind TEXT NOT NULL,
        PRIMARY KEY (attachment_id, order_id, seq)
    );
    CREATE TABLE webhook_outbox (
        id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        event_id TEXT NOT NULL UNIQUE,
        type TEXT NOT NULL,
        body BYTEA NOT NULL,
        created_ts BIGINT NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        next_ts BIGINT NOT NULL,
        last_error TEXT,
        dead INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX webhook_outbox_due ON webhook_outbox (dead, next_ts);
    """,
    # 2: order workflows, as SQLite's migration 6.
    """
    ALTER TABLE orders ADD COLUMN workflow TEXT NOT NULL DEFAULT 'free';
    ALTER TABLE orders ADD COLUMN closes_at BIGINT;
    ALTER TABLE messages ADD COLUMN forced INTEGER NOT NULL DEFAULT 0;
    """,
    # 3: buyers' sales reps, as SQLite's migration 7.
    """
    CREATE TABLE buyer_reps (buyer_id TEXT PRIMARY KEY, rep_id TEXT NOT NULL, rep_name TEXT NOT NULL);
    ALTER TABLE orders ADD COLUMN rep_from_buyer INTEGER NOT NULL DEFAULT 0;
    UPDATE orders SET rep_from_buyer = 1 WHERE rep_id IS NULL;
    CREATE INDEX orders_buyer ON orders (buyer_id);
    """,
    # 4: response times, as SQLite's migration 8.
    """
    ALTER TABLE orders ADD COLUMN awaiting_seq BIGINT;
    ALTER TABLE orders ADD COLUMN awaiting_since BIGINT;
    ALTER TABLE orders ADD COLUMN sla_escalated INTEGER NOT NULL DEFAULT 0;
    CREATE INDEX orders_awaiting ON orders (awaiting_since) WHERE awaiting_since IS NOT NULL;
    CREATE TABLE responses (
        order_id TEXT NOT NULL,
        asked_seq BIGINT NOT NULL,
        asked_at BIGINT NOT NULL,
        supplier_id TEXT NOT NULL,
        rep_id TEXT,
        answered_seq BIGINT,
        answered_at BIGINT,
        answered_by TEXT,
        escalated_at BIGINT,
        PRIMARY KEY (order_id, asked_seq)
    );
    CREATE INDEX responses_supplier ON responses (supplier_id, asked_at);
    CREATE INDEX responses_rep ON responses (rep_id, asked_at);
    CREATE INDEX responses_asked ON responses (asked_at);
    """,
    # 5: contact data, as SQLite's migration 9.
    """
    ALTER TABLE orders ADD COLUMN buyer_avatar TEXT;
    ALTER TABLE orders ADD COLUMN supplier_avatar TEXT;
    ALTER TABLE orders ADD COLUMN rep_avatar TEXT;
    ALTER TABLE buyer_reps ADD COLUMN rep_avatar TEXT;
    CREATE TABLE contacts (user_id TEXT PRIMARY KEY, email TEXT, phone TEXT, locale TEXT);
    """,
    # 6: notifications, as SQLite's migration 10.
    """
    CREATE TABLE notifications (
        id TEXT PRIMARY KEY,
        user_id TEXT NOT NULL,
        order_id TEXT NOT NULL,
        role TEXT NOT NULL,
        reason TEXT NOT NULL,
        first_seq BIGINT NOT NULL,
        last_seq BIGINT NOT NULL,
        created_ts BIGINT NOT NULL,
        due_ts BIGINT NOT NULL,
        deadline_ts BIGINT NOT NULL,
        state INTEGER NOT NULL DEFAULT 0,
        lease_until BIGINT NOT NULL DEFAULT 0,
        attempts INTEGER NOT NULL DEFAULT 0,
        sent_ts BIGINT
    );
    CREATE UNIQUE INDEX notifications_pending ON notifications (user_id, order_id) WHERE state = 0;
    CREATE INDEX notifications_due ON notifications (due_ts) WHERE state = 0;
    CREATE INDEX notifications_sent ON notifications (user_id, sent_ts) WHERE state = 1;
    CREATE TABLE notify_prefs (user_id TEXT PRIMARY KEY, email INTEGER NOT NULL DEFAULT 1);
    CREATE TABLE notify_muted (user_id TEXT NOT NULL, order_id TEXT NOT NULL, PRIMARY KEY (user_id, order_id));
    """,
    # 7: reply-by-e-mail tokens, as SQLite's migration 11.
    """
    CREATE TABLE reply_tokens (
        id TEXT PRIMARY KEY,
        user_id TEXT NOT NULL,
        order_id TEXT NOT NULL,
        created_ts BIGINT NOT NULL,
        revoked_ts BIGINT
    );
    CREATE UNIQUE INDEX reply_tokens_live ON reply_tokens (order_id, user_id) WHERE revoked_ts IS NULL;
    """,
    # 8: the staff attention queue and the search of order ids, names and e-mails, as
    # SQLite's migration 12. What `q` also searches is one tsvector per order (its id
    # and participants' names, in order_words, kept by a trigger on orders) and an
    # expression index on contacts' e-mails; '@', '.', '_', '+', '/', ':', '#' and '-'
    # become spaces first, so an e-mail or a host splits into words as SQLite's
    # tokenizer splits it (PostgreSQL's parser would keep it as one token).
    """
    ALTER TABLE orders ADD COLUMN help_by TEXT;
    ALTER TABLE orders ADD COLUMN help_ts BIGINT;
    ALTER TABLE orders ADD COLUMN help_seq BIGINT;
    CREATE INDEX orders_attention ON orders (id) WHERE dispute_open = 1 OR sla_escalated = 1 OR help_ts IS NOT NULL;
    CREATE TABLE staff_markers (
        order_id TEXT PRIMARY KEY,
        read_seq BIGINT NOT NULL DEFAULT 0,
        unread BIGINT NOT NULL DEFAULT 0
    );
    CREATE TABLE staff_follows (
        user_id TEXT NOT NULL,
        order_id TEXT NOT NULL,
        PRIMARY KEY (user_id, order_id)
    );
    CREATE INDEX staff_follows_order ON staff_follows (order_id);
    CREATE FUNCTION chatd_staff_marker() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF NEW.sender_role = 'staff' THEN
            UPDATE staff_markers SET read_seq = NEW.seq, unread = 0 WHERE order_id = NEW.order_id;
        ELSE
            UPDATE staff_markers SET unread = unread + 1 WHERE order_id = NEW.order_id;
        END IF;
        RETURN NULL;
    END $$;
    CREATE TRIGGER messages_after_insert_staff AFTER INSERT ON messages
        FOR EACH ROW EXECUTE FUNCTION chatd_staff_marker();
    INSERT INTO staff_markers (order_id, read_seq, unread)
        SELECT q.id, q.seq, (SELECT COUNT(*) FROM messages m
                              WHERE m.order_id = q.id AND m.seq > q.seq AND m.sender_role <> 'staff')
          FROM (SELECT o.id, COALESCE((SELECT MAX(m.seq) FROM messages m
                                        WHERE m.order_id = o.id AND m.sender_role = 'staff'), 0) AS seq
                  FROM orders o WHERE o.dispute_open = 1 OR o.sla_escalated = 1) q;
    CREATE TABLE order_words (
        order_id TEXT PRIMARY KEY,
        words TEXT NOT NULL,
        search TSVECTOR GENERATED ALWAYS AS
            (to_tsvector('chatd_search', translate(words, '@._+/:#-', '        '))) STORED
    );
    CREATE INDEX order_words_search ON order_words USING GIN (search);
    CREATE FUNCTION chatd_order_words() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        INSERT INTO order_words (order_id, words)
        VALUES (NEW.id,
                NEW.id || ' ' || NEW.buyer_name || ' ' || NEW.supplier_name || ' ' || COALESCE(NEW.rep_name, ''))
        ON CONFLICT (order_id) DO UPDATE SET words = EXCLUDED.words;
        RETURN NULL;
    END $$;
    CREATE TRIGGER orders_after_insert_words AFTER INSERT ON orders
        FOR EACH ROW EXECUTE FUNCTION chatd_order_words();
    CREATE TRIGGER orders_after_update_words AFTER UPDATE OF buyer_name, supplier_name, rep_name ON orders
        FOR EACH ROW WHEN (NEW.buyer_name IS DISTINCT FROM OLD.buyer_name
                           OR NEW.supplier_name IS DISTINCT FROM OLD.supplier_name
                           OR NEW.rep_name IS DISTINCT FROM OLD.rep_name)
        EXECUTE FUNCTION chatd_order_words();
    INSERT INTO order_words (order_id, words)
        SELECT id, id || ' ' || buyer_name || ' ' || supplier_name || ' ' || COALESCE(rep_name, '') FROM orders;
    CREATE INDEX contacts_email_search ON contacts
        USING GIN (to_tsvector('chatd_search', translate(COALESCE(email, ''), '@._+/:#-', '        ')));
    """,
    # 9: one trigger per message instead of two, and one UPDATE of read_markers instead
    # of two (the sender's row is read in the same statement that counts the others'
    # unread). Same effect as migrations 1 and 8; a post costs fewer statements, rows
    # versions and trigger calls, which is most of PostgreSQL's CPU per message.
    """
    DROP TRIGGER messages_after_insert_staff ON messages;
    DROP FUNCTION chatd_staff_marker();
    CREATE OR REPLACE FUNCTION chatd_message_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        UPDATE orders SET last_seq = NEW.seq, last_ts = NEW.ts WHERE id = NEW.order_id;
        UPDATE read_markers
           SET unread = CASE WHEN user_id = NEW.sender_id THEN 0 ELSE unread + 1 END,
               read_seq = CASE WHEN user_id = NEW.sender_id THEN NEW.seq ELSE read_seq END,
               last_seq = CASE WHEN NEW.kind <> 'note' OR sees_notes <> 0 THEN NEW.seq ELSE last_seq END,
               activity_ts = CASE WHEN NEW.kind <> 'note' OR sees_notes <> 0 THEN NEW.ts ELSE activity_ts END
         WHERE order_id = NEW.order_id
           AND (NEW.kind <> 'note' OR sees_notes <> 0 OR user_id = NEW.sender_id);
        IF NEW.sender_role = 'staff' THEN
            UPDATE staff_markers SET read_seq = NEW.seq, unread = 0 WHERE order_id = NEW.order_id;
        ELSE
            UPDATE staff_markers SET unread = unread + 1 WHERE order_id = NEW.order_id;
        END IF;
        RETURN NULL;
    END $$;
    """,
    # 10: each user's unread on side markers (the part of their total a token covering
    # no order outside its slots does not count) kept beside their total, by the same
    # trigger. A write reads both from one row it locks, so another writer cannot
    # change them before it commits (chatd.store.postgres.batch); before, it summed
    # the user's side markers, which a lock on one row does not hold still, and which
    # cost a row per side marker (a bot's that has read thousands of orders) on every
    # message.
    """
    ALTER TABLE user_stats ADD COLUMN side_unread BIGINT NOT NULL DEFAULT 0;
    UPDATE user_stats s SET side_unread = h.n
      FROM (SELECT user_id, SUM(unread) AS n FROM read_markers WHERE side = 1 GROUP BY user_id) h
     WHERE s.user_id = h.user_id;
    CREATE OR REPLACE FUNCTION chatd_marker_changed() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF TG_OP = 'INSERT' THEN
            INSERT INTO user_stats (user_id, unread_total, side_unread)
                VALUES (NEW.user_id, NEW.unread, CASE WHEN NEW.side = 1 THEN NEW.unread ELSE 0 END)
                ON CONFLICT (user_id) DO UPDATE SET unread_total = user_stats.unread_total + EXCLUDED.unread_total,
                    side_unread = user_stats.side_unread + EXCLUDED.side_unread;
        ELSIF TG_OP = 'UPDATE' THEN
            IF NEW.unread <> OLD.unread THEN
                UPDATE user_stats SET unread_total = unread_total + NEW.unread - OLD.unread,
                       side_unread = side_unread + CASE WHEN NEW.side = 1 THEN NEW.unread - OLD.unread ELSE 0 END
                 WHERE user_id = NEW.user_id;
            END IF;
        ELSIF OLD.unread <> 0 THEN
            UPDATE user_stats SET unread_total = unread_total - OLD.unread,
                   side_unread = side_unread - CASE WHEN OLD.side = 1 THEN OLD.unread ELSE 0 END
             WHERE user_id = OLD.user_id;
        END IF;
        RETURN NULL;
    END $$;
    """,
    # 11: the name of who opened (or closed) the dispute, beside their id, as SQLite's
    # migration 16: a staff member is no participant a client could look the id up in.
    """
    ALTER TABLE orders ADD COLUMN dispute_by_name TEXT;
    UPDATE orders o SET dispute_by_name = (
        SELECT m.sender_name FROM messages m WHERE m.order_id = o.id AND m.kind = 'dispute'
         ORDER BY m.seq DESC LIMIT 1)
     WHERE o.dispute_ts IS NOT NULL;
    """,
]


async def migrate(conn: asyncpg.Connection) -> int:
    """Bring the schema up to date in one transaction; return the version now in place."""
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", LOCK_KEY)
        await conn.execute("CREATE TABLE IF NOT EXISTS chatd_schema (version INTEGER NOT NULL)")
        version: int | None = await conn.fetchval("SELECT version FROM chatd_schema")
        if version is None:
            await conn.execute("INSERT INTO chatd_schema (version) VALUES (0)")
            version = 0
        for script in MIGRATIONS[version:]:
            await conn.execute(script)
        if version < len(MIGRATIONS):
            await conn.execute("UPDATE chatd_schema SET version = $1", len(MIGRATIONS))
        return len(MIGRATIONS)
