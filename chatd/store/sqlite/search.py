"""Which threads a full-text search finds, without reading every match of a common word.

A thread matches when one of its messages does (`messages_fts`), or its order id or a
participant's name (`order_words_fts`), or, for operators, a participant's e-mail
(`email_words_fts`). The threads list wants the newest matching threads first, and
the cost of finding them depends on the word:

* a word in few messages (the index's own counts say so: `fts5vocab`) is read whole:
  every matching message's order, then those orders sorted by activity;
* a word in many messages ("pallet" in one of six) is never read whole: the threads
  are walked newest activity first, a chunk at a time, and the index is asked only
  about each chunk's orders (every message is indexed with its order as a token of the
  `ord` column, migration 13), until the page is full. A chunk's answer also holds
  every match of its threads, so the page's `matches` come without another search.

Either way the page is the same: every thread that matches, in activity order.
"""

from __future__ import annotations

import sqlite3
import unicodedata
from typing import Any

import msgspec

from chatd.store.rows import ORDER_COLS

ORDER_SELECT = ", ".join("o." + c.strip() for c in ORDER_COLS.split(","))
ACT = ORDER_COLS.count(",") + 1  # the activity column after them; the order's `ord` number after that
# a thread's activity: the last message's time, or the order's creation
ACTIVITY = "(CASE WHEN o.last_seq > 0 THEN o.last_ts ELSE o.created_ts END)"
# a search whose words are in at most this many messages and names is read whole (the index
# answers ~5 µs a match that way, ~30 ms a chunk walking: 6,000 is where they meet at 100k orders)
READ_WHOLE = 6_000
SCAN = 400  # threads ranked by one scan of the orders while walking (100k orders: 34 ms at 300, 37 at 400, 58 at 700)
ASK = 400  # threads asked about at once (one index query each); the first time: two pages' worth
SCANS = 2  # scans walked before the rest of the search is read whole (a common word of few threads)
_SLOTS = (2, 4, 6)  # buyer_id, supplier_id, rep_id in ORDER_COLS


def fts_query(words: tuple[str, ...]) -> str:
    """An FTS5 expression over the message text: every word required, as a word or
    (longer than one character: as a prefix it would match much of the vocabulary) a
    prefix. The words are letters and digits only, so no FTS syntax passes through."""
    return " ".join(f'"{t}"' + ("*" if len(t) > 1 else "") for t in words)


def _folded(word: str) -> str:
    """The word about as the tokenizer stores it (lower case, diacritics removed): exactly so for
    ASCII, an estimate's key otherwise."""
    if word.isascii():
        return word.lower()
    return "".join(c for c in unicodedata.normalize("NFKD", word.lower()) if not unicodedata.combining(c))


class Search:
    """One page's search, on one read transaction of the search connection."""

    def __init__(self, db: sqlite3.Connection, words: tuple[str, ...], emails: bool) -> None:
        self.db = db
        self.words = words
        self.fts = fts_query(words)
        self.text = f"text : ({self.fts})"  # only the text column: a word never matches an `ord` token
        named = db.execute("SELECT rowid FROM order_words_fts WHERE order_words_fts MATCH ?", (self.fts,))
        self.named = {r[0] for r in named}  # order_words ids: an order's `ord` number
        self.mailed: set[str] = set()
        if emails:
            self.mailed = {
                r[0]
                for r in db.execute(
                    "SELECT user_id FROM email_words WHERE id IN "
                    "(SELECT rowid FROM email_words_fts WHERE email_words_fts MATCH ?)",
                    (self.fts,),
                )
            }
        self.hits: dict[str, list[int]] = {}  # order -> its matching seqs, newest first (orders asked about)

    def _in_messages(self) -> int:
        """At most how many messages hold every word (the vocabulary's count of the rarest)."""
        counts = []
        for word in self.words:
            w = _folded(word)
            if len(word) > 1:
                sql = "SELECT COALESCE(SUM(doc), 0) FROM messages_vocab WHERE col = 'text' AND term >= ? AND term < ?"
                counts.append(self.db.execute(sql, (w, w + "\U0010ffff")).fetchone()[0])
            else:
                sql = "SELECT COALESCE(SUM(doc), 0) FROM messages_vocab WHERE col = 'text' AND term = ?"
                counts.append(self.db.execute(sql, (w,)).fetchone()[0])
        return int(min(counts))

    def select(self, cond: str, args: list[Any], below: tuple[int, str] | None, n: int) -> list[Any]:
        """Up to `n` matching threads under the other filters (`cond`), newest activity first,
        below (activity, order id) if given: order columns, activity, `ord` number."""
        in_messages = self._in_messages()  # for ASCII words exact: none means no message matches
        ascii_words = all(w.isascii() for w in self.words)
        if in_messages + len(self.named) <= READ_WHOLE:
            return self._whole(cond, args, below, n)
        out: list[Any] = []
        size = min(ASK, 2 * n)  # a common word fills the page from the first threads
        for _ in range(SCANS):
            ranked = self._ranked(cond, args, below)
            start = 0
            while start < len(ranked):
                part = self._rows(ranked[start : start + size])
                hits = self.ask([(r[0], r[-1]) for r in part]) if in_messages or not ascii_words else {}
                for r in part:
                    if self._matches(r, hits):
                        out.append(r)
                        if len(out) == n:
                            return out
                start, size = start + size, ASK
            if len(ranked) < SCAN:
                return out
            below = (ranked[-1][1], ranked[-1][2])
        return out + self._whole(cond, args, below, n - len(out))

    def keep(self, rows: list[Any]) -> list[Any]:
        """Those of these threads (order columns, activity, `ord` number) that match."""
        hits = self.ask([(r[0], r[-1]) for r in rows])
        return [r for r in rows if self._matches(r, hits)]

    def _matches(self, r: Any, hits: dict[str, list[int]]) -> bool:
        return r[0] in hits or r[-1] in self.named or any(r[i] in self.mailed for i in _SLOTS)

    def ask(self, orders: list[tuple[str, int]]) -> dict[str, list[int]]:
        """The matching messages of these orders ((id, ord number)): seqs, newest first."""
        found: dict[str, list[int]] = {}
        for start in range(0, len(orders), ASK):
            part = orders[start : start + ASK]
            ords = " OR ".join(f'"o{num}"' for _, num in part)
            for order_id, seq in self.db.execute(
                "SELECT l.order_id, l.seq FROM message_log l WHERE l.id IN "
                "(SELECT rowid FROM messages_fts WHERE messages_fts MATCH ?) ORDER BY l.id DESC",
                (f"{self.text} AND ord : ({ords})",),
            ):
                found.setdefault(order_id, []).append(seq)
            for order_id, _ in part:
                self.hits[order_id] = found.get(order_id, [])
        return found

    def _keyset(self, below: tuple[int, str] | None) -> tuple[str, list[Any]]:
        if below is None:
            return "", []
        return f" AND ({ACTIVITY} < ? OR ({ACTIVITY} = ? AND o.id < ?))", [below[0], below[0], below[1]]

    def _ranked(self, cond: str, args: list[Any], below: tuple[int, str] | None) -> list[tuple[int, int, str]]:
        """The next SCAN threads under the filters, newest activity first: (rowid, activity, id).
        Narrow rows: the scan of every order is what a walk costs, so it is done once for many."""
        keyset, more = self._keyset(below)
        return self.db.execute(
            f"SELECT o.rowid, {ACTIVITY} AS act, o.id FROM orders o WHERE {cond}{keyset} "
            "ORDER BY act DESC, o.id DESC LIMIT ?",
            (*args, *more, SCAN),
        ).fetchall()

    def _rows(self, ranked: list[tuple[int, int, str]]) -> list[Any]:
        """These threads' rows, in the same order: order columns, activity, `ord` number."""
        got = {
            r[0]: r
            for r in self.db.execute(
                f"SELECT {ORDER_SELECT}, 0, w.id FROM json_each(?) j CROSS JOIN orders o ON o.rowid = j.value "
                "LEFT JOIN order_words w ON w.order_id = o.id",
                (msgspec.json.encode([r[0] for r in ranked]).decode(),),
            )
        }
        return [(*got[i][:ACT], act, got[i][-1]) for _, act, i in ranked if i in got]

    def _whole(self, cond: str, args: list[Any], below: tuple[int, str] | None, n: int) -> list[Any]:
        """Every matching order found first (each matching message's, each matching name's and
        e-mail's), then the first `n` of them under the filters."""
        if n <= 0:
            return []
        db = self.db
        ids = {
            r[0]
            for r in db.execute(
                "SELECT l.order_id FROM message_log l WHERE l.id IN "
                "(SELECT rowid FROM messages_fts WHERE messages_fts MATCH ?)",
                (self.text,),
            )
        }
        named = msgspec.json.encode(sorted(self.named)).decode()
        in_names = db.execute("SELECT order_id FROM order_words WHERE id IN (SELECT value FROM json_each(?))", (named,))
        ids.update(r[0] for r in in_names)
        if self.mailed:  # participants hold a marker on each of their orders
            users = msgspec.json.encode(sorted(self.mailed)).decode()
            ids.update(
                r[0]
                for r in db.execute(
                    "SELECT r.order_id FROM read_markers r JOIN orders o ON o.id = r.order_id "
                    "WHERE r.user_id IN (SELECT value FROM json_each(?)) "
                    "AND r.user_id IN (o.buyer_id, o.supplier_id, o.rep_id)",
                    (users,),
                )
            )
        keyset, more = self._keyset(below)
        return db.execute(  # CROSS JOIN: each order looked up by id, never every order scanned
            f"SELECT {ORDER_SELECT}, {ACTIVITY} AS act, w.id FROM json_each(?) j CROSS JOIN orders o ON o.id = j.value "
            f"LEFT JOIN order_words w ON w.order_id = o.id WHERE {cond}{keyset} ORDER BY act DESC, o.id DESC LIMIT ?",
            (msgspec.json.encode(sorted(ids)).decode(), *args, *more, n),
        ).fetchall()
