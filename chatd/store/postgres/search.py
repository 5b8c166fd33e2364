"""Which threads a full-text search finds, without reading every match of a common word;
as chatd.store.sqlite.search, in PostgreSQL's terms.

A word in few messages (the planner's estimate from the GIN statistics says so) is read
whole through the GIN index; a word in many ("pallet" in one of six) walks the threads
newest activity first and asks only about each part's orders (their messages through
the primary key, each one's `search` vector checked), until the page is full.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from chatd.store.rows import ORDER_COLS

if TYPE_CHECKING:
    import asyncpg

ORDER_SELECT = ", ".join("o." + c.strip() for c in ORDER_COLS.split(","))
ACT = ORDER_COLS.count(",") + 1  # the activity column after them
ACTIVITY = "(CASE WHEN o.last_seq > 0 THEN o.last_ts ELSE o.created_ts END)"
# what the index of migration 8 holds for each contact: its e-mail split into words
EMAIL_SEARCH = "to_tsvector('chatd_search', translate(COALESCE(c.email, ''), '@._+/:#-', '        '))"
READ_WHOLE = 6_000  # a search whose words are in at most this many messages and names is read whole
SCAN = 1_000  # threads ranked by one scan of the orders while walking
ASK = 400  # threads asked about at once; the first time: two pages' worth
SCANS = 2  # scans walked before the rest of the search is read whole
_SLOTS = (2, 4, 6)  # buyer_id, supplier_id, rep_id in ORDER_COLS


def ts_query(words: tuple[str, ...]) -> str:
    """A tsquery: every word required, as a word or (longer than one character)
    a prefix. The words are letters and digits only (chatd.threads.search_words),
    so no tsquery syntax passes through; each is quoted all the same."""
    return " & ".join(f"'{t}'" + (":*" if len(t) > 1 else "") for t in words)


class Args:
    """Positional parameters ($1, $2, ...) in the order they are added."""

    def __init__(self) -> None:
        self.values: list[object] = []

    def __call__(self, value: object, cast: str = "") -> str:
        self.values.append(value)
        return f"${len(self.values)}{cast}"


Conditions = Callable[[Args], str]  # the other filters, their values added to the Args given


class Search:
    """One page's search, in one read transaction."""

    def __init__(self, db: asyncpg.Connection, words: tuple[str, ...], emails: bool) -> None:
        self.db = db
        self.query = ts_query(words)
        self.emails = emails
        self.named: set[str] = set()  # orders whose id or participants' names match
        self.mailed: set[str] = set()  # users whose e-mail matches
        self.hits: dict[str, list[int]] = {}  # order -> its matching seqs, newest first (orders asked about)
        self.in_messages = READ_WHOLE  # the estimate, once `select` made it

    async def prepare(self) -> None:
        q = self.query
        rows = await self.db.fetch("SELECT order_id FROM order_words WHERE search @@ to_tsquery('chatd_search', $1)", q)
        self.named = {r[0] for r in rows}
        if self.emails:
            rows = await self.db.fetch(
                f"SELECT c.user_id FROM contacts c WHERE {EMAIL_SEARCH} @@ to_tsquery('chatd_search', $1)", q
            )
            self.mailed = {r[0] for r in rows}

    async def _in_messages(self) -> int:
        """About how many messages match: the planner's estimate (GIN statistics), no rows read."""
        plan = await self.db.fetchval(
            "EXPLAIN (FORMAT JSON) SELECT 1 FROM messages WHERE search @@ to_tsquery('chatd_search', $1)", self.query
        )
        return int(json.loads(plan)[0]["Plan"]["Plan Rows"])

    async def select(self, conditions: Conditions, below: tuple[int, str] | None, n: int) -> list[Any]:
        """Up to `n` matching threads under the other filters, newest activity first, below
        (activity, order id) if given: order columns and activity."""
        self.in_messages = await self._in_messages()
        if self.in_messages + len(self.named) <= READ_WHOLE:
            return await self._whole(conditions, below, n)
        out: list[Any] = []
        size = min(ASK, 2 * n)
        for _ in range(SCANS):
            ranked = await self._ranked(conditions, below)
            start = 0
            while start < len(ranked):
                part = await self._rows([r[0] for r in ranked[start : start + size]])
                hits = await self.ask([r[0] for r in part])
                for r in part:
                    if self._matches(r, hits):
                        out.append(r)
                        if len(out) == n:
                            return out
                start, size = start + size, ASK
            if len(ranked) < SCAN:
                return out
            below = (ranked[-1][1], ranked[-1][0])
        return out + await self._whole(conditions, below, n - len(out))

    def _matches(self, r: Any, hits: dict[str, list[int]]) -> bool:
        return r[0] in hits or r[0] in self.named or any(r[i] in self.mailed for i in _SLOTS)

    async def keep(self, rows: list[Any]) -> list[Any]:
        """Those of these threads (order columns first) that match."""
        hits = await self.ask([r[0] for r in rows])
        return [r for r in rows if self._matches(r, hits)]

    async def ask(self, orders: list[str]) -> dict[str, list[int]]:
        """The matching messages of these orders: seqs, newest first."""
        found: dict[str, list[int]] = {}
        for start in range(0, len(orders), ASK):
            part = orders[start : start + ASK]
            for order_id, seq in await self.db.fetch(self._ask_sql(), part, self.query):
                found.setdefault(order_id, []).append(seq)
            for order_id in part:
                self.hits[order_id] = found.get(order_id, [])
        return found

    def _ask_sql(self) -> str:
        if self.in_messages <= READ_WHOLE:  # a rare word: the GIN index lists its few matches
            return (
                "SELECT order_id, seq FROM messages WHERE order_id = ANY($1::text[]) "
                "AND search @@ to_tsquery('chatd_search', $2) ORDER BY log_id DESC"
            )
        # a common one: the orders' own messages through the primary key, each vector checked
        # (OFFSET 0 keeps the planner from ANDing in the GIN index, which would list every match)
        return (
            "SELECT order_id, seq FROM (SELECT order_id, seq, log_id, search FROM messages "
            "WHERE order_id = ANY($1::text[]) OFFSET 0) m "
            "WHERE search @@ to_tsquery('chatd_search', $2) ORDER BY log_id DESC"
        )

    @staticmethod
    def _keyset(p: Args, below: tuple[int, str] | None) -> str:
        if below is None:
            return ""
        a, o = p(below[0]), p(below[1])
        return f" AND ({ACTIVITY} < {a} OR ({ACTIVITY} = {a} AND o.id < {o}))"

    async def _ranked(self, conditions: Conditions, below: tuple[int, str] | None) -> list[Any]:
        """The next SCAN threads under the filters, newest activity first: (id, activity)."""
        p = Args()
        cond = conditions(p) + self._keyset(p, below)
        return list(
            await self.db.fetch(
                f"SELECT o.id, {ACTIVITY} AS act FROM orders o WHERE {cond} "
                f"ORDER BY act DESC, o.id DESC LIMIT {p(SCAN)}",
                *p.values,
            )
        )

    async def _rows(self, ids: list[str]) -> list[Any]:
        """These threads' rows, in the same order: order columns and activity."""
        rows = await self.db.fetch(
            f"SELECT {ORDER_SELECT}, {ACTIVITY} AS act FROM orders o WHERE o.id = ANY($1::text[])", ids
        )
        got = {r[0]: r for r in rows}
        return [got[i] for i in ids if i in got]

    async def _whole(self, conditions: Conditions, below: tuple[int, str] | None, n: int) -> list[Any]:
        """Every matching order found first (through the GIN indexes), then the first `n`
        of them under the filters."""
        if n <= 0:
            return []
        rows = await self.db.fetch(
            "SELECT DISTINCT order_id FROM messages WHERE search @@ to_tsquery('chatd_search', $1)", self.query
        )
        ids = {r[0] for r in rows} | self.named
        if self.mailed:  # participants hold a marker on each of their orders
            rows = await self.db.fetch(
                "SELECT r.order_id FROM read_markers r JOIN orders o ON o.id = r.order_id "
                "WHERE r.user_id = ANY($1::text[]) AND r.user_id IN (o.buyer_id, o.supplier_id, o.rep_id)",
                sorted(self.mailed),
            )
            ids.update(r[0] for r in rows)
        p = Args()
        listed = p(sorted(ids), "::text[]")
        cond = conditions(p) + self._keyset(p, below)
        return list(
            await self.db.fetch(
                f"SELECT {ORDER_SELECT}, {ACTIVITY} AS act FROM orders o WHERE o.id = ANY({listed}) AND {cond} "
                f"ORDER BY act DESC, o.id DESC LIMIT {p(n)}",
                *p.values,
            )
        )
