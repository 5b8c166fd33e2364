"""Reply-by-e-mail tokens (chatd.mail.addresses): minted for a slot holder, revoked
when they leave the slot (`revoke`, called in the order upsert's own write)."""

from __future__ import annotations

import sqlite3

from chatd.store.records import ReplyToken
from chatd.store.rows import ORDER_COLS, now_ms, order_from_row
from chatd.store.sqlite.engine import StoreMixin, inline_read

_COLS = "id, user_id, order_id, created_ts, revoked_ts"


def revoke(db: sqlite3.Connection, order_id: str, user_ids: list[str]) -> int:
    """Revoke the users' live tokens on the order, inside the caller's transaction."""
    if not user_ids:
        return 0
    marks = ", ".join("?" * len(user_ids))
    cur = db.execute(
        f"UPDATE reply_tokens SET revoked_ts = ? WHERE order_id = ? AND user_id IN ({marks}) AND revoked_ts IS NULL",
        (now_ms(), order_id, *user_ids),
    )
    return cur.rowcount


class ReplyTokens(StoreMixin):
    """Mixed into SqliteStore."""

    async def mint_reply_token(self, user_id: str, order_id: str, new_id: str) -> str | None:
        def op(db: sqlite3.Connection) -> str | None:
            row = db.execute(f"SELECT {ORDER_COLS} FROM orders WHERE id = ?", (order_id,)).fetchone()
            if row is None or user_id not in order_from_row(row).roles():
                return None
            live = db.execute(
                "SELECT id FROM reply_tokens WHERE order_id = ? AND user_id = ? AND revoked_ts IS NULL",
                (order_id, user_id),
            ).fetchone()
            if live is not None:
                return str(live[0])
            db.execute(
                f"INSERT INTO reply_tokens ({_COLS}) VALUES (?, ?, ?, ?, NULL)", (new_id, user_id, order_id, now_ms())
            )
            return new_id

        return await self._write(op)

    @inline_read
    async def reply_token(self, token_id: str) -> ReplyToken | None:
        row = self.reader.execute(f"SELECT {_COLS} FROM reply_tokens WHERE id = ?", (token_id,)).fetchone()
        return ReplyToken(*row) if row else None

    async def revoke_reply_tokens(self, order_id: str, user_ids: list[str]) -> int:
        return await self._write(lambda db: revoke(db, order_id, user_ids))
