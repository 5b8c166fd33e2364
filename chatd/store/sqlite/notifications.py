"""Pending and sent notifications (chatd.notifications, chatd.notifier) in SQLite:
scheduled inside a message's write (`schedule`), thinned by reads and by the
recipient's own posts (`on_read`),
claimed with a lease by one instance at a time, settled with their webhook
event in one transaction."""

from __future__ import annotations

import sqlite3
import uuid
from typing import Any

from chatd.notifications import Planned
from chatd.store.records import NotificationRow, NotifyPrefs, SentCounts
from chatd.store.sqlite import outbox
from chatd.store.sqlite.engine import StoreMixin, inline_read

_COLS = "id, user_id, order_id, role, reason, first_seq, last_seq, created_ts, due_ts, attempts"


# A user's pending notification for the order, made or joined, unless they muted it.
_SCHEDULE = (
    "INSERT INTO notifications (id, user_id, order_id, role, reason, first_seq, last_seq, created_ts, due_ts, "
    "deadline_ts) SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?6, ?7, ?8, ?9 "
    "WHERE NOT EXISTS (SELECT 1 FROM notify_muted WHERE user_id = ?2 AND order_id = ?3) "
    "ON CONFLICT (user_id, order_id) WHERE state = 0 DO UPDATE SET last_seq = excluded.last_seq, "
    "role = excluded.role, "
    "reason = CASE WHEN excluded.reason = 'messages' THEN notifications.reason ELSE excluded.reason END, "
    "due_ts = MIN(MAX(notifications.due_ts, excluded.due_ts), notifications.deadline_ts, excluded.deadline_ts)"
)


def schedule(db: sqlite3.Connection, order_id: str, seq: int, ts: int, planned: list[Planned]) -> None:
    """Create or join each user's pending notification for the order (muted orders: none)."""
    if planned:
        db.executemany(
            _SCHEDULE,
            [
                (uuid.uuid4().hex, p.user, order_id, p.role, p.reason, seq, ts, p.due_ts, p.latest_due_ts)
                for p in planned
            ],
        )


def on_read(db: sqlite3.Connection, user_id: str, order_id: str, read_seq: int) -> None:
    """Reading on any device takes what was read out of the pending notification;
    all of it read: the notification is gone."""
    db.execute(
        "DELETE FROM notifications WHERE user_id = ? AND order_id = ? AND state = 0 AND last_seq <= ?",
        (user_id, order_id, read_seq),
    )
    db.execute(
        "UPDATE notifications SET first_seq = ? WHERE user_id = ? AND order_id = ? AND state = 0 AND first_seq <= ?",
        (read_seq + 1, user_id, order_id, read_seq),
    )


def _row(r: Any) -> NotificationRow:
    return NotificationRow(*r)


class Notifications(StoreMixin):
    """Mixed into SqliteStore."""

    async def claim_notifications(self, now_ms: int, lease_until_ms: int, limit: int) -> list[NotificationRow]:
        def op(db: sqlite3.Connection) -> list[NotificationRow]:
            rows = db.execute(
                f"SELECT {_COLS} FROM notifications WHERE state = 0 AND due_ts <= ? AND lease_until <= ? "
                "ORDER BY due_ts LIMIT ?",
                (now_ms, now_ms, limit),
            ).fetchall()
            db.executemany(
                "UPDATE notifications SET lease_until = ? WHERE id = ?", [(lease_until_ms, r[0]) for r in rows]
            )
            return [_row(r) for r in rows]

        return await self._write(op)

    @inline_read
    async def sent_counts(self, user_id: str, order_id: str, since_ms: int) -> SentCounts:
        user = self.reader.execute(
            "SELECT COUNT(*), MIN(sent_ts) FROM notifications WHERE user_id = ? AND state = 1 AND sent_ts > ?",
            (user_id, since_ms),
        ).fetchone()
        order = self.reader.execute(
            "SELECT COUNT(*), MIN(sent_ts) FROM notifications "
            "WHERE user_id = ? AND order_id = ? AND state = 1 AND sent_ts > ?",
            (user_id, order_id, since_ms),
        ).fetchone()
        return SentCounts(user[0], user[1], order[0], order[1])

    async def postpone_notification(self, notification_id: str, due_ts: int, failed: bool = False) -> None:
        def op(db: sqlite3.Connection) -> None:
            db.execute(
                "UPDATE notifications SET due_ts = ?, lease_until = 0, attempts = attempts + ? "
                "WHERE id = ? AND state = 0",
                (due_ts, int(failed), notification_id),
            )

        await self._write(op)

    async def finish_notification(
        self, notification_id: str, sent_ts: int, last_seq: int, events: list[tuple[str, dict[str, Any]]]
    ) -> bool:
        def op(db: sqlite3.Connection) -> bool:
            cur = db.execute(
                "UPDATE notifications SET state = 1, sent_ts = ?, lease_until = 0 WHERE id = ? AND state = 0",
                (sent_ts, notification_id),
            )
            if cur.rowcount == 0:  # read meanwhile (gone): nothing more to say
                return False
            self._outbox_written += outbox.enqueue(db, events)
            # messages stored after the claim stay pending, in a notification of their own
            row = db.execute(
                "SELECT user_id, order_id, role, reason, last_seq, created_ts, due_ts, deadline_ts "
                "FROM notifications WHERE id = ?",
                (notification_id,),
            ).fetchone()
            if row[4] > last_seq:
                db.execute("UPDATE notifications SET last_seq = ? WHERE id = ?", (last_seq, notification_id))
                db.execute(
                    "INSERT INTO notifications (id, user_id, order_id, role, reason, first_seq, last_seq, "
                    "created_ts, due_ts, deadline_ts) VALUES (?, ?, ?, ?, 'messages', ?, ?, ?, ?, ?)",
                    (uuid.uuid4().hex, row[0], row[1], row[2], last_seq + 1, row[4], sent_ts, row[6], row[7]),
                )
            return True

        return await self._write(op)

    @inline_read
    async def notify_prefs(self, user_id: str) -> NotifyPrefs:
        row = self.reader.execute("SELECT email FROM notify_prefs WHERE user_id = ?", (user_id,)).fetchone()
        muted = [
            r[0]
            for r in self.reader.execute(
                "SELECT order_id FROM notify_muted WHERE user_id = ? ORDER BY order_id", (user_id,)
            )
        ]
        return NotifyPrefs(email=bool(row[0]) if row else True, muted=muted)

    async def set_notify_prefs(self, user_id: str, prefs: NotifyPrefs) -> None:
        def op(db: sqlite3.Connection) -> None:
            db.execute(
                "INSERT INTO notify_prefs (user_id, email) VALUES (?, ?) "
                "ON CONFLICT (user_id) DO UPDATE SET email = excluded.email",
                (user_id, int(prefs.email)),
            )
            db.execute("DELETE FROM notify_muted WHERE user_id = ?", (user_id,))
            db.executemany(
                "INSERT INTO notify_muted (user_id, order_id) VALUES (?, ?)", [(user_id, o) for o in prefs.muted]
            )
            # a muted order's pending notification goes too
            db.executemany(
                "DELETE FROM notifications WHERE user_id = ? AND order_id = ? AND state = 0",
                [(user_id, o) for o in prefs.muted],
            )

        await self._write(op)

    async def prune_notifications(self, sent_before_ms: int) -> int:
        def op(db: sqlite3.Connection) -> int:
            return db.execute("DELETE FROM notifications WHERE state = 1 AND sent_ts < ?", (sent_before_ms,)).rowcount

        return await self._write(op)

    @inline_read
    async def notification_backlog(self, now_ms: int) -> tuple[int, int]:
        row = self.reader.execute(
            "SELECT COUNT(*), COUNT(*) FILTER (WHERE due_ts <= ?) FROM notifications WHERE state = 0", (now_ms,)
        ).fetchone()
        return row[0], row[1]

    @inline_read
    async def pending_notifications(self, user_id: str) -> list[NotificationRow]:
        """The user's pending notifications (tests and operators: what will go out)."""
        rows = self.reader.execute(
            f"SELECT {_COLS} FROM notifications WHERE user_id = ? AND state = 0 ORDER BY order_id", (user_id,)
        ).fetchall()
        return [_row(r) for r in rows]
