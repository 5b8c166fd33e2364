"""A batch's messages, written to PostgreSQL in one statement at the end of the batch.

A statement per message costs PostgreSQL far more than its row: binding, the plan's
checks, the executor's start and end, and the same again for each statement of the
row's trigger. One INSERT of 40 rows from arrays costs it about a third of what
40 one-message statements did, and the client a seventh
(scripts/bench_pg_statements.py). So a message
posted within a batch is not written by its own statement. `Held.post` works out
from the batch's read markers, unread totals and staff markers (read once, in one
statement) what the message's statement would have returned, keeps those figures as
the triggers would leave them, and holds the row. That read locks each reader's
totals, so no other writer changes them before the batch commits: what it reports is
what it stores. The held rows, and the reply-clock
writes they bring, are written in one statement (`flush`) when the batch commits,
and before any other statement of the batch runs: an op's connection (`Statements`)
writes them first, so every statement still sees what the writes before it left.
While the batch holds, outbox events (webhooks) go into that statement too, and
pending notifications are made or joined right after it, from arrays too: one
statement for the batch, or one per wave where a user and order come more than once
(two rows of one pending notification join each other, which one upsert cannot do;
`write`). With webhooks or e-mail on, a message is still no statement of its own. A
message's attachment links are written after it likewise (`write`), and the check that
its uploads still exist reads them beside the held rows, which do not touch uploads.

A read that moves its marker to the newest message its reader may see (what an open
chat sends) is held too (`Held.read`), in a batch that posts: nothing is unread after
it, and what else it reports comes from the figures, but for the newest non-note
message up to where its marker was, which the statement that writes the held rows
looks up (from its snapshot: the stored messages). Its marker is written after the
held messages, by one UPDATE of the markers as the batch leaves them (the messages'
triggers moved them too), and the pending notification it thins in its place among
the `later` rows.

After an op's statement of its own, the figures read may be stale (it may have moved
a marker, a total or the staff marker), so the rest of that op runs a statement per
write. When it is done and two posts or more follow (a read to an older message, a staff read, a
help request, an order put amid a batch's messages), the batch reads the figures again
and holds again (`resume`); else the rest of the batch writes its messages and reads
a statement each.
Posts declare their (sender, client_id) to the batch (`Engine._write`), which looks
up in one statement which are taken: a repeat (a client's retry), or a message whose
client_id was not declared, is written by a statement of its own. Should a held row
still meet a taken client_id, the write of the held rows says so and the batch runs
again with none held: the seqs after a repeat must not leave a gap.

Both reads look up each order's rows through its index (a LATERAL subquery, kept
one by OFFSET 0 or LIMIT), whatever the table statistics say: before they are
gathered, a join's plan may scan a whole table.
"""

from __future__ import annotations

import contextvars
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from chatd.store.records import ReadMarker, Waiting

if TYPE_CHECKING:
    import asyncpg

    from chatd.wire import Message

_COLS = "order_id, seq, ts, kind, sender_id, sender_name, sender_role, client_id, text, status, attachments, forced"
_TYPES = ("text", "bigint", "bigint", "text", "text", "text", "text", "text", "text", "text", "text", "int")
# What the batch's messages' statements would read: per order its staff marker and
# staff followers, and its read markers, with each reader's unread total and the part
# of it on side markers. Those two are locked: another writer's change to them (the
# reader's other orders) waits for this batch's commit, and one that was under way
# when this read came is read as it committed, so what the batch reports is what it
# stores.
_READ = (
    "SELECT o.id, s.marker, s.follows, r.user_id, r.side, r.unread, r.sees_notes, r.read_seq, r.last_seq, "
    "(SELECT ARRAY[t.unread_total, t.side_unread] FROM user_stats t WHERE t.user_id = r.user_id "
    "FOR NO KEY UPDATE) "
    "FROM unnest($1::text[]) AS o(id) CROSS JOIN LATERAL (SELECT "
    "(SELECT ARRAY[read_seq, unread] FROM staff_markers WHERE order_id = o.id) AS marker, "
    "ARRAY(SELECT user_id FROM staff_follows WHERE order_id = o.id) AS follows OFFSET 0) s "
    "LEFT JOIN LATERAL (SELECT user_id, side, unread, sees_notes, read_seq, last_seq FROM read_markers "
    "WHERE order_id = o.id OFFSET 0) r ON true"
)

# Which of the batch's (order, sender, client_id) are stored already (a client's retry).
_TAKEN = (
    "SELECT k.o, k.s, k.c FROM unnest($1::text[], $2::text[], $3::text[]) AS k(o, s, c) CROSS JOIN LATERAL "
    "(SELECT 1 FROM messages m WHERE m.order_id = k.o AND m.sender_id = k.s AND m.client_id = k.c LIMIT 1) m"
)

# For a held read: the newest message that is not a note up to the reader's marker,
# and in the whole order (what a buyer may learn of the order's seqs).
_PLAIN = (
    "SELECT (SELECT COALESCE(MAX(seq), 0) FROM messages WHERE order_id = $1 AND seq <= $2 AND kind <> 'note'), "
    "(SELECT COALESCE(MAX(seq), 0) FROM messages WHERE order_id = $1 AND kind <> 'note')"
)
# The markers held reads moved, as the batch leaves them (after the messages' triggers).
_MARKERS = (
    "UPDATE read_markers SET read_seq = u.s, unread = u.n FROM unnest($1::text[], $2::text[], $3::bigint[], "
    "$4::int[]) AS u(o, w, s, n) WHERE read_markers.order_id = u.o AND read_markers.user_id = u.w"
)

Row = tuple[Any, ...]
"""As the message's statement (chatd.store.postgres.messages) returns it, per reader:
(the sender's unread before, user, unread, total, side, hidden, staff marker)."""


class Replay(Exception):
    """A held message repeats a stored one: run the batch again, holding none."""


class _Marker:
    __slots__ = ("last_seq", "plain", "read_seq", "side", "sees_notes", "unread", "user")

    def __init__(self, user: str, side: int, unread: int, sees_notes: int, read_seq: int, last_seq: int) -> None:
        self.user, self.side, self.unread, self.sees_notes = user, side, unread, sees_notes
        self.read_seq, self.last_seq = read_seq, last_seq
        self.plain: int | None = None  # the newest non-note seq up to read_seq, once this batch moved it


class Held:
    """The messages one batch holds back, and what it read to stand in for their statements."""

    def __init__(self, conn: asyncpg.Connection, ops: list[tuple[str, tuple[str, str] | None]]) -> None:
        self.conn = conn
        self.orders = sorted({order for order, _ in ops})  # the figures are read for all at once
        # (order, sender, client_id) of the batch's posts that said so (Engine._write)
        self._declared = [(order, *client) for order, client in ops if client is not None]
        self._new: set[tuple[str, str, str]] = set()  # of those, the ones not stored yet
        self.open = True  # False once an op ran a statement of its own
        self._read = False
        self._markers: dict[str, list[_Marker]] = {}
        self._staff: dict[str, list[int] | None] = {}
        self._follows: dict[str, list[str]] = {}
        self._totals: dict[str, int | None] = {}
        self._hidden: dict[str, int] = {}
        self._rows: list[tuple[Any, ...]] = []
        self._asks: dict[tuple[str, int], list[Any]] = {}  # responses rows to insert
        self._answers: list[tuple[str, int, int, int, str]] = []  # responses rows to update
        self._clocks: dict[str, Waiting | None] = {}  # orders' reply clocks as they end
        self.events: list[tuple[str, str, bytes, int, int]] = []  # webhook outbox rows (chatd.store.postgres.outbox)
        # statements run after the held rows, in order: (sql, key, waves, rows, their (user, order) pairs)
        self._later: list[_Run] = []
        self._plain: dict[str, int] = {}  # per order, its newest seq that is not a note, once known
        self._moved: dict[tuple[str, str], _Marker] = {}  # markers held reads moved, by (order, user)
        # held reads whose plain_before is the newest non-note stored up to (order, seq)
        self._befores: list[tuple[ReadMarker, str, int]] = []

    async def post(self, msg: Message, sees_notes_only: bool, attachments: str | None) -> list[Row] | None:
        """Hold `msg` (its seq allocated by the caller under the order's row lock;
        `attachments` as stored, JSON): the rows its statement would have returned.
        None if it may repeat a stored message (its client_id not declared, or taken):
        the caller writes it itself."""
        if msg.order not in self._markers:
            await self._load(msg.order)
        sender, role = msg.sender.id, msg.sender.role
        if msg.client_id is not None:
            key = (msg.order, sender, msg.client_id)
            if key not in self._new:
                return None
            self._new.discard(key)  # a second one in this batch repeats this one
        markers = self._markers[msg.order]
        staff = self._staff[msg.order]
        if staff is not None:
            staff = [msg.seq, 0] if role == "staff" else [staff[0], staff[1] + 1]
            self._staff[msg.order] = staff
        had = next((m.unread for m in markers if m.user == sender), None)
        rows: list[Row] = []
        if msg.kind != "note":
            self._plain[msg.order] = msg.seq
        for m in markers:  # as the message trigger and the marker trigger leave them
            if msg.kind == "note" and not m.sees_notes and m.user != sender:
                continue
            if msg.kind != "note" or m.sees_notes:
                m.last_seq = msg.seq
            if m.user == sender:
                m.read_seq, m.plain = msg.seq, self._plain.get(msg.order)
            after = 0 if m.user == sender else m.unread + 1
            delta, m.unread = after - m.unread, after
            total = self._totals.get(m.user)
            if total is not None:
                total = self._totals[m.user] = total + delta
            if m.side == 1:
                self._hidden[m.user] += delta
            if not sees_notes_only or m.sees_notes:
                rows.append((had, m.user, after, total, m.side, self._hidden[m.user], staff))
        if not rows:
            rows.append((had, None, None, None, None, None, staff))
        self._rows.append(
            (msg.order, msg.seq, msg.ts, msg.kind, sender, msg.sender.name, role, msg.client_id, msg.text)
            + (msg.status, attachments, int(msg.forced))
        )
        return rows

    async def read(
        self, order_id: str, user: str, seq: int, backward: bool, role: str
    ) -> tuple[bool, ReadMarker | None]:
        """Hold a read by `user` to `seq`: (True, the ReadMarker it reports, or None
        if it moves nothing) when it moves the marker to the newest message the user
        may see, the read an open chat sends. (False, None) when it needs a statement
        of its own: a user with no marker yet, a move to an older message (its unread
        count needs the messages), a total not read; or when the batch posts nothing
        that holding could save a statement of: then the read's one statement is the
        cheapest."""
        if not self._declared:
            return False, None
        if order_id not in self._markers:
            await self._load(order_id)
        m = next((m for m in self._markers[order_id] if m.user == user), None)
        total = self._totals.get(user)
        if m is None or total is None:
            return False, None
        target = max(0, min(seq, m.last_seq))
        if target == m.read_seq or (target < m.read_seq and not backward):
            return True, None
        if target != m.last_seq:
            return False, None
        top, before, was = self._plain.get(order_id), m.plain, m.read_seq
        if top is None:  # no held message tells: the stored ones do
            stored_before, top = await self.conn.fetchrow(_PLAIN, order_id, was)
            self._plain[order_id] = top
            before = stored_before if before is None else before
        delta = -m.unread
        m.read_seq, m.unread, m.plain = target, 0, top  # everything up to the newest visible: nothing after it
        total = self._totals[user] = total + delta
        if m.side == 1:
            self._hidden[user] += delta
        self._moved[(order_id, user)] = m
        moved = ReadMarker(target, 0, total, role, bool(m.side), self._hidden[user], top, before or 0)
        if before is None:  # up to a stored message: looked up with the held rows' INSERT (`flush`)
            self._befores.append((moved, order_id, was))
        return True, moved

    def resume(self) -> None:
        """Hold again after an op's statement of its own (which wrote what was held):
        the figures are read afresh when the next held write needs them."""
        assert not (self._rows or self._moved or self._later or self.events or self._befores), "held writes not written"
        for figures in (self._markers, self._staff, self._follows, self._totals, self._hidden, self._plain):
            figures.clear()
        self.open = True

    def followers(self, order_id: str) -> list[str]:
        """The staff who follow an order a message was held for, as the batch read them."""
        return list(self._follows[order_id])

    def ask(self, order_id: str, waiting: Waiting, supplier_id: str, rep_id: str | None) -> None:
        """The message held last starts the order's reply clock."""
        row = [order_id, waiting.seq, waiting.since, supplier_id, rep_id, None, None, None]  # answered: none yet
        self._asks[(order_id, waiting.seq)] = row
        self._clocks[order_id] = waiting

    def answer(self, order_id: str, asked_seq: int, msg: Message) -> None:
        """The message held last answers the order's waiting buyer."""
        ask = self._asks.get((order_id, asked_seq))
        if ask is not None:  # asked in this batch: its row is not written yet
            ask[5:8] = [msg.seq, msg.ts, msg.sender.id]
        else:
            self._answers.append((order_id, asked_seq, msg.seq, msg.ts, msg.sender.id))
        self._clocks[order_id] = None

    def later(self, sql: str, rows: list[tuple[Any, ...]], key: int | None = None, waves: bool = False) -> None:
        """Run `sql`, which takes its rows' columns as arrays, when the held messages are
        written, after them and in the order given: for rows that may meet each other's
        conflicts (chatd.store.postgres.notifications). `key`: where a row's (user, order)
        starts; the rows of other statements for other pairs never meet it, so it joins
        the last run of `sql` that no row for its pair follows (one round trip for a
        batch's notifications and reads). `waves`: see `write`."""
        for row in rows:
            pair = row[key : key + 2] if key is not None else None
            run: _Run | None = None
            for group in reversed(self._later):
                if group[0] == sql:
                    run = group
                    break
                if pair is None or pair in group[4]:
                    break
            if run is None:
                run = (sql, key, waves, [], set())
                self._later.append(run)
            run[3].append(row)
            if pair is not None:
                run[4].add(pair)

    async def _load(self, order_id: str) -> None:
        if not self._read and self._declared:
            self._new = set(self._declared)
            cols = [list(col) for col in zip(*self._declared, strict=True)]
            for row in await self.conn.fetch(_TAKEN, *cols):
                self._new.discard((row[0], row[1], row[2]))
        ids = sorted({*self.orders, order_id} - self._markers.keys())
        for row in await self.conn.fetch(_READ, ids):
            markers = self._markers.setdefault(row[0], [])
            self._staff[row[0]] = list(row[1]) if row[1] is not None else None
            self._follows[row[0]] = row[2]
            if row[3] is not None:
                markers.append(_Marker(row[3], row[4], row[5], row[6], row[7], row[8]))
                total, hidden = row[9] if row[9] is not None else (None, 0)
                self._totals.setdefault(row[3], total)
                self._hidden.setdefault(row[3], hidden)
        self._read = True

    async def flush(self) -> None:
        """Write the held rows (their triggers fire), the clocks they set, the outbox
        events of the batch so far, then the statements held for `later`."""
        rows, asks, answers, clocks = self._rows, list(self._asks.values()), self._answers, self._clocks
        events, later, moved, befores = self.events, self._later, list(self._moved.items()), self._befores
        self._rows, self._asks, self._answers, self._clocks, self.events, self._later = [], {}, [], {}, [], []
        self._moved, self._befores = {}, []
        args: list[Any] = []
        parts = []
        if rows:
            parts.append(
                f"m AS (INSERT INTO messages ({_COLS}) SELECT * FROM unnest({_params(args, rows, _TYPES)}) "
                "ON CONFLICT (order_id, sender_id, client_id) WHERE client_id IS NOT NULL DO NOTHING RETURNING 1)"
            )
        if asks:
            parts.append(
                "a AS (INSERT INTO responses (order_id, asked_seq, asked_at, supplier_id, rep_id, answered_seq, "
                f"answered_at, answered_by) SELECT * FROM unnest({_params(args, asks, _ASK_TYPES)}) "
                "ON CONFLICT DO NOTHING)"
            )
        if answers:
            parts.append(
                "r AS (UPDATE responses SET answered_seq = u.s, answered_at = u.t, answered_by = u.b "
                f"FROM unnest({_params(args, answers, ('text', 'bigint', 'bigint', 'bigint', 'text'))}) "
                "AS u(o, q, s, t, b) WHERE responses.order_id = u.o AND responses.asked_seq = u.q)"
            )
        if clocks:
            waits = [(o, *((w.seq, w.since, int(w.escalated)) if w else (None, None, 0))) for o, w in clocks.items()]
            parts.append(
                "c AS (UPDATE orders SET awaiting_seq = u.s, awaiting_since = u.t, sla_escalated = u.e "
                f"FROM unnest({_params(args, waits, ('text', 'bigint', 'bigint', 'int'))}) AS u(o, s, t, e) "
                "WHERE orders.id = u.o)"
            )
        if events:
            parts.append(
                "w AS (INSERT INTO webhook_outbox (event_id, type, body, created_ts, next_ts) "
                f"SELECT * FROM unnest({_params(args, events, ('text', 'text', 'bytea', 'bigint', 'bigint'))}))"
            )
        looked = "NULL::bigint[]"
        if befores:  # read in this statement's snapshot: the stored messages, not the held ones
            upto = _params(args, [(order, seq) for _, order, seq in befores], ("text", "bigint"))
            looked = (
                "ARRAY(SELECT (SELECT COALESCE(MAX(seq), 0) FROM messages WHERE order_id = k.o AND seq <= k.s "
                f"AND kind <> 'note') FROM unnest({upto}) WITH ORDINALITY AS k(o, s, n) ORDER BY k.n)"
            )
        if parts or befores:
            counted = "(SELECT count(*) FROM m)" if rows else "0"
            with_ = f"WITH {', '.join(parts)} " if parts else ""
            written, plain = await self.conn.fetchrow(f"{with_}SELECT {counted}, {looked}", *args)
            if written != len(rows):
                raise Replay
            for (marker, _, _), seq in zip(befores, plain or (), strict=True):
                marker.plain_before = seq
        if moved:  # after the messages' triggers: the markers as the batch leaves them
            keys = [(order, m.user, m.read_seq, m.unread) for (order, _), m in moved]
            await self.conn.execute(_MARKERS, *[list(col) for col in zip(*keys, strict=True)])
        for sql, key, waves, each, _ in later:
            await _run(self.conn, sql, each, key if waves else None)


_ASK_TYPES = ("text", "bigint", "bigint", "text", "text", "bigint", "bigint", "text")
# a statement `Held.later` runs: (sql, key, waves, rows, the rows' (user, order) pairs)
_Run = tuple[str, int | None, bool, list[tuple[Any, ...]], set[tuple[Any, ...]]]


def _params(args: list[Any], rows: list[Any], types: tuple[str, ...]) -> str:
    """Append `rows`' columns to `args` as arrays; their placeholders, cast."""
    first = len(args)
    args.extend(list(col) for col in zip(*rows, strict=True))
    return ", ".join(f"${first + k + 1}::{t}[]" for k, t in enumerate(types))


_HELD: contextvars.ContextVar[Held | None] = contextvars.ContextVar("chatd_held", default=None)


def held() -> Held | None:
    """The batch being committed's held messages, if it may still hold some."""
    h = _HELD.get()
    return h if h is not None and h.open else None


def hold(h: Held | None) -> None:
    _HELD.set(h)


async def write(
    db: asyncpg.Connection, sql: str, rows: list[tuple[Any, ...]], key: int | None = None, waves: bool = False
) -> None:
    """Run `sql`, which takes `rows`' columns as arrays, now, or after the held messages
    when the batch holds some: for side rows of a message that nothing else in the batch
    reads before a statement (`key`: see `Held.later`). `waves`: `sql` may take only one
    row of each (user, order) (an upsert that two would hit twice), so the rows go in
    waves, each pair's first row in the first, its second in the second and so on: one
    statement for a batch whose pairs come once each, in the order a row each would."""
    if not rows:
        return
    h = held()
    if h is not None:
        h.later(sql, rows, key=key, waves=waves)
    else:
        await _run(db, sql, rows, key if waves else None)


async def _run(db: Any, sql: str, rows: list[tuple[Any, ...]], key: int | None) -> None:
    """`sql` over `rows` as arrays; with `key`, a statement per wave (`write`)."""
    waves: list[list[tuple[Any, ...]]] = [rows]
    if key is not None:
        waves = []
        seen: dict[tuple[Any, ...], int] = {}
        for row in rows:
            k = seen[row[key : key + 2]] = seen.get(row[key : key + 2], -1) + 1
            if k == len(waves):
                waves.append([])
            waves[k].append(row)
    for wave in waves:
        await db.execute(sql, *[list(col) for col in zip(*wave, strict=True)])


def _statement(name: str) -> Callable[..., Awaitable[Any]]:
    """`Statements`' form of the connection's method `name`: the held messages first."""

    async def run(self: Statements, *args: Any, **kwargs: Any) -> Any:
        await self._before()
        return await getattr(self._conn, name)(*args, **kwargs)

    run.__name__ = name
    return run


class Statements:
    """The connection an op of a batch gets: the held messages are written before
    each of its statements, and none are held after it (see the module's docstring)."""

    def __init__(self, conn: asyncpg.Connection, h: Held) -> None:
        self._conn, self._held = conn, h

    async def _before(self) -> None:
        await self._held.flush()
        self._held.open = False

    async def fetchrow_order(self, *args: Any) -> Any:
        """A read of orders only (a row lock, say): the held messages are written
        first, and the figures read stay good, so the batch may hold more."""
        await self._held.flush()
        return await self._conn.fetchrow(*args)

    fetch = _statement("fetch")
    fetchrow = _statement("fetchrow")
    fetchval = _statement("fetchval")
    execute = _statement("execute")
    executemany = _statement("executemany")

    @asynccontextmanager
    async def transaction(self, **kwargs: Any) -> AsyncIterator[None]:
        await self._before()
        async with self._conn.transaction(**kwargs):
            yield
