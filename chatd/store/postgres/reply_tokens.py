"""Reply-by-e-mail tokens (chatd.mail.addresses), as chatd.store.sqlite.reply_tokens:
minted for a slot holder, revoked in the order upsert's own write."""

from __future__ import annotations

from typing import TYPE_CHECKING

from chatd.store.postgres.engine import StoreMixin, pooled_read
from chatd.store.records import ReplyToken
from chatd.store.rows import ORDER_COLS, now_ms, order_from_row

if TYPE_CHECKING:
    import asyncpg

_COLS = "id, user_id, order_id, created_ts, revoked_ts"


async def revoke(db: asyncpg.Connection, order_id: str, user_ids: list[str]) -> int:
    """Revoke the users' live tokens on the order, inside the caller's transaction."""
    if not user_ids:
        return 0
    status: str = await db.execute(
        "UPDATE reply_tokens SET revoked_ts = $1 WHERE order_id = $2 AND user_id = ANY($3::text[]) "
        "AND revoked_ts IS NULL",
        now_ms(),
        order_id,
        user_ids,
    )
    return int(status.rsplit(" ", 1)[-1])  # "UPDATE <n>"


class ReplyTokens(StoreMixin):
    """Mixed into PostgresStore."""

    async def mint_reply_token(self, user_id: str, order_id: str, new_id: str) -> str | None:
        async def op(db: asyncpg.Connection) -> str | None:
            # FOR SHARE: an upsert of the order (which revokes) waits for this write, or this for it
            row = await db.fetchrow(f"SELECT {ORDER_COLS} FROM orders WHERE id = $1 FOR SHARE", order_id)
            if row is None or user_id not in order_from_row(row).roles():
                return None
            # two hosts minting at once: the second insert meets the live index and does nothing
            await db.execute(
                f"INSERT INTO reply_tokens ({_COLS}) SELECT $1, $2, $3, $4, NULL WHERE NOT EXISTS "
                "(SELECT 1 FROM reply_tokens WHERE order_id = $3 AND user_id = $2 AND revoked_ts IS NULL) "
                "ON CONFLICT DO NOTHING",
                new_id,
                user_id,
                order_id,
                now_ms(),
            )
            live: str | None = await db.fetchval(
                "SELECT id FROM reply_tokens WHERE order_id = $1 AND user_id = $2 AND revoked_ts IS NULL",
                order_id,
                user_id,
            )
            return live

        return await self._write(op, key=order_id)

    @pooled_read
    async def reply_token(self, db: asyncpg.Connection, token_id: str) -> ReplyToken | None:
        row = await db.fetchrow(f"SELECT {_COLS} FROM reply_tokens WHERE id = $1", token_id)
        return ReplyToken(*row) if row else None

    async def revoke_reply_tokens(self, order_id: str, user_ids: list[str]) -> int:
        async def op(db: asyncpg.Connection) -> int:
            return await revoke(db, order_id, user_ids)

        return await self._write(op, key=order_id)
