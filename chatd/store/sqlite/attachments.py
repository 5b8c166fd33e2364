"""Attachment metadata and message links. The files are chatd.attachments' business;
the links are side rows of a message, written in its transaction."""

from __future__ import annotations

import sqlite3

from chatd.store.records import AttachmentRow
from chatd.store.sqlite.engine import StoreMixin, inline_read
from chatd.wire import AttachmentRef, Message

_COLS = "id, order_id, uploader_id, name, mime, size, sha256, created_ts"
# the row of `attachment`: _COLS, then whether a message carries it
_Row = tuple[str, str, str, str, str, int, str, int, int]


def missing(db: sqlite3.Connection, refs: list[AttachmentRef]) -> str | None:
    """An upload that no longer exists (a clean-up may have removed it since it was
    resolved), if any: then the message is not written."""
    for att in refs:
        if db.execute("SELECT 1 FROM attachments WHERE id = ?", (att.id,)).fetchone() is None:
            return att.id
    return None


def link(db: sqlite3.Connection, msg: Message) -> None:
    db.executemany(
        "INSERT OR IGNORE INTO message_attachments (attachment_id, order_id, seq, kind) VALUES (?, ?, ?, ?)",
        [(att.id, msg.order, msg.seq, msg.kind) for att in msg.attachments],
    )


class Attachments(StoreMixin):
    """Mixed into SqliteStore."""

    async def add_attachment(self, row: AttachmentRow) -> None:
        def op(db: sqlite3.Connection) -> None:
            db.execute(
                f"INSERT INTO attachments ({_COLS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (row.id, row.order_id, row.uploader_id, row.name, row.mime, row.size, row.sha256, row.created_ts),
            )

        await self._write(op)

    async def delete_attachment(self, att_id: str) -> None:
        await self._write(lambda db: db.execute("DELETE FROM attachments WHERE id = ?", (att_id,)))

    @inline_read
    async def attachment(self, att_id: str) -> AttachmentRow | None:
        row: _Row | None = self.reader.execute(
            f"SELECT {_COLS}, EXISTS (SELECT 1 FROM message_attachments m WHERE m.attachment_id = a.id) "
            "FROM attachments a WHERE id = ?",
            (att_id,),
        ).fetchone()
        return AttachmentRow(*row[:8], linked=bool(row[8])) if row else None

    @inline_read
    async def attachment_links(self, att_id: str) -> list[tuple[str, str]]:
        return [
            tuple(r)
            for r in self.reader.execute(
                "SELECT order_id, kind FROM message_attachments WHERE attachment_id = ?", (att_id,)
            ).fetchall()
        ]

    async def delete_unreferenced(self, created_before_ms: int, limit: int = 1000) -> tuple[int, list[str]]:
        def op(db: sqlite3.Connection) -> tuple[int, list[str]]:
            rows = db.execute(
                "SELECT id, sha256 FROM attachments a WHERE created_ts < ? AND NOT EXISTS "
                "(SELECT 1 FROM message_attachments m WHERE m.attachment_id = a.id) LIMIT ?",
                (created_before_ms, limit),
            ).fetchall()
            for att_id, _ in rows:
                db.execute("DELETE FROM attachments WHERE id = ?", (att_id,))
            orphans = [
                sha
                for sha in {sha for _, sha in rows}
                if db.execute("SELECT 1 FROM attachments WHERE sha256 = ? LIMIT 1", (sha,)).fetchone() is None
            ]
            return len(rows), orphans

        return await self._write(op)

    async def delete_expired(self, closed_before_ms: int, limit: int = 1000) -> tuple[int, list[str]]:
        def op(db: sqlite3.Connection) -> tuple[int, list[str]]:
            rows = db.execute(
                "SELECT a.id, a.sha256 FROM attachments a JOIN orders o ON o.id = a.order_id "
                "WHERE o.closes_at IS NOT NULL AND o.closes_at < ? AND o.dispute_open = 0 LIMIT ?",
                (closed_before_ms, limit),
            ).fetchall()
            for att_id, _ in rows:
                db.execute("DELETE FROM message_attachments WHERE attachment_id = ?", (att_id,))
                db.execute("DELETE FROM attachments WHERE id = ?", (att_id,))
            orphans = [
                sha
                for sha in {sha for _, sha in rows}
                if db.execute("SELECT 1 FROM attachments WHERE sha256 = ? LIMIT 1", (sha,)).fetchone() is None
            ]
            return len(rows), orphans

        return await self._write(op)

    @inline_read
    async def sha256_in_use(self, sha256: str) -> bool:
        return (
            self.reader.execute("SELECT 1 FROM attachments WHERE sha256 = ? LIMIT 1", (sha256,)).fetchone() is not None
        )
