"""Attachment metadata and message links (the files are chatd.attachments');
the links are side rows of a message, written in its transaction."""

from __future__ import annotations

from typing import TYPE_CHECKING

from chatd.store.postgres import batch
from chatd.store.postgres.engine import StoreMixin, pooled_read
from chatd.store.records import AttachmentRow
from chatd.wire import AttachmentRef, Message

if TYPE_CHECKING:
    import asyncpg

_COLS = "id, order_id, uploader_id, name, mime, size, sha256, created_ts"


async def missing(db: asyncpg.Connection, refs: list[AttachmentRef]) -> str | None:
    """An upload that no longer exists, if any: then the message is not written.
    `FOR SHARE`: a clean-up on another host cannot delete the others before this commits.
    Within a batch that holds messages, read beside them: what they hold does not touch uploads."""
    ids = [att.id for att in refs]
    h = batch.held()
    conn = h.conn if h is not None else db
    found = {r[0] for r in await conn.fetch("SELECT id FROM attachments WHERE id = ANY($1::text[]) FOR SHARE", ids)}
    return next((att_id for att_id in ids if att_id not in found), None)


async def link(db: asyncpg.Connection, msg: Message) -> None:
    await batch.write(
        db,
        "INSERT INTO message_attachments (attachment_id, order_id, seq, kind) "
        "SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], $4::text[]) ON CONFLICT DO NOTHING",
        [(att.id, msg.order, msg.seq, msg.kind) for att in msg.attachments],
    )


class Attachments(StoreMixin):
    """Mixed into PostgresStore."""

    async def add_attachment(self, row: AttachmentRow) -> None:
        async def op(db: asyncpg.Connection) -> None:
            await db.execute(
                f"INSERT INTO attachments ({_COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                row.id,
                row.order_id,
                row.uploader_id,
                row.name,
                row.mime,
                row.size,
                row.sha256,
                row.created_ts,
            )

        await self._write(op)

    async def delete_attachment(self, att_id: str) -> None:
        async def op(db: asyncpg.Connection) -> None:
            await db.execute("DELETE FROM attachments WHERE id = $1", att_id)

        await self._write(op)

    @pooled_read
    async def attachment(self, db: asyncpg.Connection, att_id: str) -> AttachmentRow | None:
        row = await db.fetchrow(
            f"SELECT {_COLS}, EXISTS (SELECT 1 FROM message_attachments m WHERE m.attachment_id = a.id) "
            "FROM attachments a WHERE id = $1",
            att_id,
        )
        return AttachmentRow(*row[:8], linked=bool(row[8])) if row else None  # type: ignore[misc]  # row: 8 fields, then linked

    @pooled_read
    async def attachment_links(self, db: asyncpg.Connection, att_id: str) -> list[tuple[str, str]]:
        return [
            tuple(r)
            for r in await db.fetch("SELECT order_id, kind FROM message_attachments WHERE attachment_id = $1", att_id)
        ]

    async def delete_unreferenced(self, created_before_ms: int, limit: int = 1000) -> tuple[int, list[str]]:
        async def op(db: asyncpg.Connection) -> tuple[int, list[str]]:
            rows = await db.fetch(
                "DELETE FROM attachments WHERE id IN (SELECT id FROM attachments a WHERE created_ts < $1 "
                "AND NOT EXISTS (SELECT 1 FROM message_attachments m WHERE m.attachment_id = a.id) "
                "LIMIT $2 FOR UPDATE SKIP LOCKED) RETURNING sha256",
                created_before_ms,
                limit,
            )
            shas = sorted({r[0] for r in rows})
            in_use = {
                r[0]
                for r in await db.fetch("SELECT DISTINCT sha256 FROM attachments WHERE sha256 = ANY($1::text[])", shas)
            }
            return len(rows), [sha for sha in shas if sha not in in_use]

        return await self._write(op)

    async def delete_expired(self, closed_before_ms: int, limit: int = 1000) -> tuple[int, list[str]]:
        async def op(db: asyncpg.Connection) -> tuple[int, list[str]]:
            rows = await db.fetch(
                "DELETE FROM attachments WHERE id IN (SELECT a.id FROM attachments a "
                "JOIN orders o ON o.id = a.order_id "
                "WHERE o.closes_at IS NOT NULL AND o.closes_at < $1 AND o.dispute_open = 0 "
                "LIMIT $2 FOR UPDATE OF a SKIP LOCKED) RETURNING id, sha256",
                closed_before_ms,
                limit,
            )
            await db.execute(
                "DELETE FROM message_attachments WHERE attachment_id = ANY($1::text[])", [r[0] for r in rows]
            )
            shas = sorted({r[1] for r in rows})
            in_use = {
                r[0]
                for r in await db.fetch("SELECT DISTINCT sha256 FROM attachments WHERE sha256 = ANY($1::text[])", shas)
            }
            return len(rows), [sha for sha in shas if sha not in in_use]

        return await self._write(op)

    @pooled_read
    async def sha256_in_use(self, db: asyncpg.Connection, sha256: str) -> bool:
        return await db.fetchval("SELECT 1 FROM attachments WHERE sha256 = $1 LIMIT 1", sha256) is not None
