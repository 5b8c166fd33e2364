"""The admin threads list and full-text search: PostgreSQL's own `tsvector`
(messages.search, GIN-indexed, written with each message) and `tsquery`, found
as chatd.store.postgres.search says.

A page is one REPEATABLE READ, read-only transaction: one snapshot. Its
bound is the newest `log_id`. Mirrors chatd.store.sqlite.threads.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from chatd import attention
from chatd.errors import Conflict
from chatd.store.postgres import attention as staff
from chatd.store.postgres import messages
from chatd.store.postgres.engine import StoreMixin
from chatd.store.postgres.search import ACT as _ACT
from chatd.store.postgres.search import ACTIVITY as _ACTIVITY
from chatd.store.postgres.search import ORDER_SELECT as _ORDER_COLS
from chatd.store.postgres.search import Args as _Args
from chatd.store.postgres.search import Conditions, Search
from chatd.store.records import ThreadFilter, ThreadPage, ThreadRow
from chatd.store.rows import order_from_row

if TYPE_CHECKING:
    import asyncpg

MAX_CHANGED = 5000  # threads with news since the snapshot before a cursor is too old
MATCHES_PER_THREAD = 10


class Threads(StoreMixin):
    """Mixed into PostgresStore."""

    async def thread_page(self, filters: ThreadFilter, after: tuple[int, int, str] | None, limit: int) -> ThreadPage:
        async with self._reading() as db:
            async with db.transaction(isolation="repeatable_read", readonly=True):
                return await _page(db, filters, after, limit)


async def _page(
    db: asyncpg.Connection, filters: ThreadFilter, after: tuple[int, int, str] | None, limit: int
) -> ThreadPage:
    search = None
    if filters.words:
        search = Search(db, filters.words, filters.emails)
        await search.prepare()

    def conditions(p: _Args) -> str:
        return " AND ".join(_filters(filters, p)) or "TRUE"

    if after is not None:
        as_of, act, oid = after
        rows = await _after(db, conditions, as_of, act, oid, limit + 1, search)
    else:
        as_of = await db.fetchval("SELECT COALESCE(MAX(log_id), 0) FROM messages")
        if search is not None:
            rows = await search.select(conditions, None, limit + 1)
        else:
            p = _Args()
            cond = conditions(p)
            rows = await db.fetch(
                f"SELECT {_ORDER_COLS}, {_ACTIVITY} AS act FROM orders o WHERE {cond} "
                f"ORDER BY act DESC, o.id DESC LIMIT {p(limit + 1)}",
                *p.values,
            )
    more = len(rows) > limit
    rows = rows[:limit]
    out: list[ThreadRow] = []
    orders = [order_from_row(r[:_ACT]) for r in rows]
    lasts = await messages.by_keys(db, [(o.id, o.last_seq) for o in orders if o.last_seq])
    for r, order in zip(rows, orders, strict=True):
        last = lasts.get((order.id, order.last_seq))
        unread = None
        if filters.unread_for:
            unread = (
                await db.fetchval(
                    "SELECT unread FROM read_markers WHERE order_id = $1 AND user_id = $2", order.id, filters.unread_for
                )
                or 0
            )
        row = ThreadRow(order, r[_ACT], last, unread)
        if filters.attention:
            await _add_queue(db, row, filters.queue_user)
        out.append(row)
    if search is not None and out:
        await _add_matches(db, out, search)
    return ThreadPage(out, as_of, more)


def _filters(f: ThreadFilter, p: _Args) -> list[str]:
    where: list[str] = []
    if f.has_messages == "true":
        where.append("o.last_seq > 0")
    elif f.has_messages == "false":
        where.append("o.last_seq = 0")
    if f.dispute == "open":
        where.append("o.dispute_open = 1")
    elif f.dispute == "closed":
        where.append("o.dispute_open = 0 AND o.dispute_ts IS NOT NULL")
    elif f.dispute == "none":
        where.append("o.dispute_ts IS NULL")
    if f.unread_for:
        where.append(
            f"o.id IN (SELECT r.order_id FROM read_markers r WHERE r.user_id = {p(f.unread_for)} AND r.unread > 0)"
        )
    if f.scope_user is not None:  # participants hold a marker on each of their orders
        u = p(f.scope_user)
        where.append(
            f"o.id IN (SELECT r.order_id FROM read_markers r WHERE r.user_id = {u}) "
            f"AND (o.supplier_id = {u} OR o.rep_id = {u})"
        )
    if f.staff is not None:
        where.append(f"o.buyer_id <> {p(f.staff)}")
    if f.status is not None:
        where.append(f"o.status = {p(f.status)}")
    if f.awaiting_reply is not None:
        where.append("o.awaiting_seq IS NOT NULL" if f.awaiting_reply else "o.awaiting_seq IS NULL")
    if f.overdue:  # as escalated (awaiting_reply.overdue): the SLA job decides, none with reply_within_s = 0
        where.append("o.sla_escalated = 1")
    if f.attention:
        if f.queue_user is None:
            where.append(staff.SHARED)
        else:
            u = p(f.queue_user)
            where.append(f"({staff.SHARED} OR o.id IN (SELECT order_id FROM staff_follows WHERE user_id = {u}))")
            where.append(staff.NOT_IN_SLOT.format(u=u))
    return where


async def _add_queue(db: asyncpg.Connection, row: ThreadRow, user: str | None) -> None:
    """As chatd.store.sqlite.threads._add_queue."""
    order = row.order
    followed = user is not None and (
        await db.fetchval("SELECT 1 FROM staff_follows WHERE user_id = $1 AND order_id = $2", user, order.id)
        is not None
    )
    row.reasons = attention.reasons_for(attention.shared_reasons(order), followed)
    row.staff_unread = (await staff.marker(db, order.id))[1]


async def _after(
    db: asyncpg.Connection,
    conditions: Conditions,
    as_of: int,
    act: int,
    oid: str,
    n: int,
    search: Search | None,
) -> list[Any]:
    """The next `n` threads below (act, oid), ordered by activity as of log id `as_of`."""
    changed = dict(
        await db.fetch(
            "SELECT order_id, MIN(seq) FROM messages WHERE log_id > $1 GROUP BY order_id LIMIT $2",
            as_of,
            MAX_CHANGED + 1,
        )
    )
    if len(changed) > MAX_CHANGED:
        raise Conflict("the cursor is too old: start again from the first page")

    def unchanged(p: _Args) -> str:
        return f"{conditions(p)} AND NOT (o.id = ANY({p(list(changed), '::text[]')}))"

    # threads without news since the snapshot: their activity now is their activity then
    rows: list[Any]
    if search is not None:
        rows = await search.select(unchanged, (act, oid), n)
    else:
        p = _Args()
        cond = unchanged(p)
        a, o = p(act), p(oid)
        rows = list(
            await db.fetch(
                f"SELECT {_ORDER_COLS}, {_ACTIVITY} AS act FROM orders o WHERE {cond} "
                f"AND ({_ACTIVITY} < {a} OR ({_ACTIVITY} = {a} AND o.id < {o})) "
                f"ORDER BY act DESC, o.id DESC LIMIT {p(n)}",
                *p.values,
            )
        )
    if changed:
        p = _Args()
        cond = conditions(p)
        a, o = p(act), p(oid)
        keys, firsts = p(list(changed), "::text[]"), p(list(changed.values()), "::bigint[]")
        # threads with news: their activity as of the snapshot is their last
        # message before the first one after it (seq and log id grow together)
        news = await db.fetch(
            f"SELECT * FROM (SELECT {_ORDER_COLS}, COALESCE((SELECT m.ts FROM messages m "
            "WHERE m.order_id = o.id AND m.seq = c.first_seq - 1), o.created_ts) AS act "
            f"FROM unnest({keys}, {firsts}) AS c(key, first_seq) JOIN orders o ON o.id = c.key WHERE {cond}) t "
            f"WHERE t.act < {a} OR (t.act = {a} AND t.id < {o})",
            *p.values,
        )
        rows += await search.keep(list(news)) if search is not None else news
        rows.sort(key=lambda r: (r[_ACT], r[0]), reverse=True)
    return rows[:n]


async def _add_matches(db: asyncpg.Connection, rows: list[ThreadRow], search: Search) -> None:
    """The matching messages of each listed thread, newest first (at most 10 each)."""
    ask = [r.order.id for r in rows if r.order.id not in search.hits]
    if ask:
        await search.ask(ask)
    shown = {r.order.id: search.hits.get(r.order.id, []) for r in rows}
    found = await messages.by_keys(db, [(o, seq) for o, seqs in shown.items() for seq in seqs[:MATCHES_PER_THREAD]])
    for r in rows:
        seqs = shown[r.order.id]
        r.match_count = len(seqs)
        r.matches = [m for seq in seqs[:MATCHES_PER_THREAD] if (m := found.get((r.order.id, seq)))]
