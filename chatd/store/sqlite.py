"""SqliteStore: SQLite in WAL mode with group commit.

One writer task takes every write queued since its last commit, runs them in
one transaction and resolves their futures only after COMMIT returns, so an
ack always means "stored". With `synchronous = NORMAL` a WAL commit writes to
the OS but never waits for the disk, so batches run inline on the event loop
(no thread hand-off, no GIL convoy); `synchronous = FULL` waits for an fsync
per batch, so there batches run on a worker thread. Checkpoints, which do
wait for the disk, run on an aiosqlite connection off the loop.

Small reads (a history page, a replay, an inbox page) also run inline: WAL
readers never wait for the writer. `seq` is allocated inside the write
transaction (`BEGIN IMMEDIATE`), so several processes sharing the file still
get gapless, unique seqs.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import sqlite3
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiosqlite
import msgspec

from chatd.auth import permissions
from chatd.errors import BadRequest, ChatError, Conflict, Forbidden, Internal, NotFound, Unavailable
from chatd.store.migrations import migrate
from chatd.store.records import (
    OrderChange,
    OrderRecord,
    Person,
    Posted,
    ReadMarker,
    UnreadChange,
)
from chatd.wire import AttachmentRef, DisputeState, Message, UserRef

log = logging.getLogger("chatd.store")

_ORDER_COLS = (
    "id, status, buyer_id, buyer_name, supplier_id, supplier_name, rep_id, rep_name, "
    "dispute_open, dispute_reason, dispute_by, dispute_ts, last_seq, last_ts, created_ts"
)
_MSG_COLS = "seq, ts, kind, sender_id, sender_name, sender_role, client_id, text, status, attachments"
_attachments_decoder = msgspec.json.Decoder(list[AttachmentRef])


def now_ms() -> int:
    return int(time.time() * 1000)


def _order(row) -> OrderRecord:
    dispute = None
    if row[11] is not None:
        dispute = DisputeState(open=bool(row[8]), reason=row[9], by=row[10], ts=row[11])
    return OrderRecord(
        id=row[0],
        status=row[1],
        buyer=Person(row[2], row[3]),
        supplier=Person(row[4], row[5]),
        sales_rep=Person(row[6], row[7]) if row[6] is not None else None,
        dispute=dispute,
        last_seq=row[12],
        last_ts=row[13],
        created_ts=row[14],
    )


def _message(order: str, row) -> Message:
    return Message(
        order=order,
        seq=row[0],
        ts=row[1],
        kind=row[2],
        sender=UserRef(row[3], row[4], row[5]),
        text=row[7],
        client_id=row[6],
        attachments=_attachments_decoder.decode(row[9]) if row[9] else [],
        status=row[8],
    )


class Actor(msgspec.Struct, frozen=True):
    """Who is writing: a verified identity, or the system (REST api key)."""

    id: str
    name: str
    role: str  # token role; "system" for the api key
    orders: Any = None  # a bot's claim

    def role_in(self, order: OrderRecord) -> str:
        """The role this actor has on `order`; `NotFound` if none."""
        if self.role == "system":
            return "bot"
        role = permissions.order_role(self.id, self.role, self.orders, order.id, order.slots)
        if role is None:
            raise NotFound("no such order", ref=order.id)
        return role


class _Op:
    __slots__ = ("fn", "future")

    def __init__(self, fn, future) -> None:
        self.fn = fn
        self.future = future


class SqliteStore:
    """The store. Writes go through `_write` (group commit); reads are inline."""

    def __init__(self, path: str, synchronous: str = "normal", max_batch: int = 512) -> None:
        self.path = path
        self.synchronous = synchronous
        self.max_batch = max_batch
        self._queue: list[_Op] = []
        self._wakeup = asyncio.Event()
        self._write_lock = asyncio.Lock()  # held per batch; a checkpoint's tail holds it too
        self._written_since_checkpoint = 0
        self._writer_task: asyncio.Task | None = None
        self._checkpoint_task: asyncio.Task | None = None
        self._indexer_task: asyncio.Task | None = None
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None
        self._w: sqlite3.Connection | None = None
        self._r: sqlite3.Connection | None = None
        self._aux: aiosqlite.Connection | None = None
        self._closing = False
        self.batches = 0
        self.writes = 0
        # Feature hooks (attachments, webhooks, metrics; wired in chatd.features).
        # message_hooks(db, order, message) and order_hooks(db, old, new) run inside
        # the write transaction, right after the row is written: what they write
        # commits or rolls back with it. They must not raise ChatError (the op's
        # own writes would still commit); any other exception fails the op whole.
        self.message_hooks: list[Callable[[sqlite3.Connection, OrderRecord, Message], None]] = []
        self.order_hooks: list[Callable[[sqlite3.Connection, OrderRecord | None, OrderRecord], None]] = []
        self.on_batch: Callable[[int, float], None] | None = None  # (ops, seconds) per commit

    # --- lifecycle ------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(
            self.path, isolation_level=None, check_same_thread=False, timeout=10, cached_statements=256
        )  # several processes may open (and migrate) one file at once; the writer drops the wait later
        for attempt in range(100):  # two processes opening a new file race for the switch to WAL
            try:
                db.execute("PRAGMA journal_mode = WAL")
                break
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or attempt == 99:
                    raise
                time.sleep(0.05)
        db.execute(f"PRAGMA synchronous = {self.synchronous.upper()}")
        db.execute("PRAGMA foreign_keys = OFF")
        db.execute("PRAGMA wal_autocheckpoint = 0")  # checkpoints run off the loop
        db.execute("PRAGMA journal_size_limit = 67108864")  # a reset WAL shrinks back to 64 MiB
        return db

    async def open(self) -> None:
        Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._w = self._connect()
        migrate(self._w)
        self._w.execute("PRAGMA busy_timeout = 0")
        self._r = self._connect()
        self._r.execute("PRAGMA busy_timeout = 1000")
        self._aux = await aiosqlite.connect(self.path, isolation_level=None)
        await self._aux.execute("PRAGMA busy_timeout = 5000")
        if self.synchronous == "full":
            self._executor = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="chatd-writer")
        self._writer_task = asyncio.create_task(self._run_writer(), name="chatd-writer")
        self._checkpoint_task = asyncio.create_task(self._run_checkpoints(), name="chatd-checkpoint")
        self._indexer_task = asyncio.create_task(self._run_indexer(), name="chatd-search-indexer")

    async def aclose(self) -> None:
        """Flush every queued write, then close. Idempotent."""
        if self._closing:
            return
        self._closing = True
        self._wakeup.set()
        if self._writer_task:
            await self._writer_task
        for task in (self._checkpoint_task, self._indexer_task):
            if task:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        if self._aux:
            try:
                await self._aux.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            except sqlite3.Error:
                pass
            await self._aux.close()
        if self._executor:
            self._executor.shutdown(wait=True)
        for db in (self._r, self._w):
            if db:
                db.close()

    # --- the writer ------------------------------------------------------

    def _write(self, fn: Callable[[sqlite3.Connection], Any]) -> asyncio.Future:
        if self._closing:
            raise Unavailable("store is closed")
        fut = asyncio.get_running_loop().create_future()
        self._queue.append(_Op(fn, fut))
        self._wakeup.set()
        return fut

    async def _run_writer(self) -> None:
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            while self._queue:
                async with self._write_lock:
                    batch = self._queue[: self.max_batch]
                    del self._queue[: self.max_batch]
                    await self._commit(batch)
            if self._closing:
                return

    async def _commit(self, batch: list[_Op]) -> None:
        delay = 0.0005
        started = time.perf_counter()
        while True:
            try:
                if self._executor is None:
                    results = self._apply(batch)
                else:
                    loop = asyncio.get_running_loop()
                    results = await loop.run_in_executor(self._executor, self._apply, batch)
                break
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) and "busy" not in str(exc):
                    results = [Internal(f"store error: {exc}")] * len(batch)
                    log.exception("batch failed")
                    break
                await asyncio.sleep(delay)  # another process holds the write lock
                delay = min(delay * 2, 0.05)
        self.batches += 1
        self.writes += len(batch)
        if self.on_batch is not None:
            self.on_batch(len(batch), time.perf_counter() - started)
        self._written_since_checkpoint += len(batch)
        for op, result in zip(batch, results):
            if op.future.done():
                continue
            if isinstance(result, BaseException):
                op.future.set_exception(result)
            else:
                op.future.set_result(result)

    def _apply(self, batch: list[_Op]) -> list:
        """Run a batch in one transaction. A refused op (ChatError) fails alone;
        an unexpected error rolls back and retries each op on its own."""
        db = self._w
        db.execute("BEGIN IMMEDIATE")
        results: list = []
        try:
            for op in batch:
                try:
                    results.append(op.fn(db))
                except ChatError as exc:
                    results.append(exc)  # refused before it wrote anything
            db.execute("COMMIT")
            return results
        except sqlite3.OperationalError as exc:
            db.execute("ROLLBACK")
            if len(batch) == 1 or "locked" in str(exc) or "busy" in str(exc):
                raise
        except Exception:
            db.execute("ROLLBACK")
            if len(batch) == 1:
                log.exception("write failed")
                return [Internal("store error")]
        return [self._apply_one(op) for op in batch]

    def _apply_one(self, op: _Op):
        try:
            return self._apply([op])[0]
        except Exception as exc:  # noqa: BLE001 - reported to that one caller
            log.exception("write failed")
            return Internal(f"store error: {exc}")

    async def _run_checkpoints(self, interval_s: float = 1.0) -> None:
        """Keep the WAL short. A checkpoint that runs beside a busy writer never
        catches up, and SQLite only rewinds the WAL after one that did, so:
        copy the bulk while writes go on, then the short tail with the writer
        paused (writes queue meanwhile and commit as one batch), on a thread."""
        while True:
            await asyncio.sleep(interval_s)
            if not self._written_since_checkpoint:
                continue
            self._written_since_checkpoint = 0
            try:
                await self._aux.execute("PRAGMA wal_checkpoint(PASSIVE)")
                async with self._write_lock:
                    await self._aux.execute("PRAGMA wal_checkpoint(PASSIVE)")
            except sqlite3.Error as exc:  # busy: try again next round
                log.debug("checkpoint: %s", exc)

    async def index_search(self, chunk: int = 5000) -> None:
        """Add every message not yet in the full-text index, in bulk.

        Runs through the writer (so several processes never index a message
        twice), a chunk per transaction so the loop is never held for long.
        Search is at most `_run_indexer`'s interval behind; a search first
        calls this to read its own writes."""

        def op(db):
            done = db.execute("SELECT indexed_to FROM search_state WHERE id = 1").fetchone()[0]
            top = db.execute("SELECT COALESCE(MAX(id), 0) FROM message_log").fetchone()[0]
            upto = min(top, done + chunk)
            if upto > done:
                db.execute(
                    "INSERT INTO messages_fts (rowid, text) SELECT l.id, m.text FROM message_log l "
                    "JOIN messages m ON m.order_id = l.order_id AND m.seq = l.seq WHERE l.id > ? AND l.id <= ?",
                    (done, upto),
                )
                db.execute("UPDATE search_state SET indexed_to = ? WHERE id = 1", (upto,))
            return upto < top

        while await self._write(op):
            pass

    async def _run_indexer(self, interval_s: float = 1.0) -> None:
        while True:
            await asyncio.sleep(interval_s)
            try:
                await self.index_search()
            except ChatError as exc:  # store trouble: the next round tries again
                log.warning("search indexer: %s", exc.message)

    # --- for feature modules (threads, attachments, webhooks) ---------------

    def write(self, fn: Callable[[sqlite3.Connection], Any]) -> asyncio.Future:
        """Run `fn(db)` in the next group-commit transaction; the future
        resolves to its result once committed. `fn` raises ChatError only
        before it has written anything."""
        return self._write(fn)

    @property
    def reader(self) -> sqlite3.Connection:
        """The inline read connection (WAL: never waits for the writer)."""
        return self._r

    # --- reads (inline) ---------------------------------------------------

    def get_order(self, order_id: str) -> OrderRecord | None:
        row = self._r.execute(f"SELECT {_ORDER_COLS} FROM orders WHERE id = ?", (order_id,)).fetchone()
        return _order(row) if row else None

    def history(
        self, order_id: str, sees_notes: bool, before: int | None, after: int | None, limit: int
    ) -> tuple[list[Message], bool]:
        """The newest `limit` below `before`, or the oldest `limit` above `after`."""
        notes = "" if sees_notes else " AND kind != 'note'"
        if after is not None:
            rows = self._r.execute(
                f"SELECT {_MSG_COLS} FROM messages WHERE order_id = ? AND seq > ?{notes} "
                "ORDER BY seq LIMIT ?",
                (order_id, after, limit + 1),
            ).fetchall()
            more = len(rows) > limit
            rows = rows[:limit]
        else:
            rows = self._r.execute(
                f"SELECT {_MSG_COLS} FROM messages WHERE order_id = ? AND seq < ?{notes} "
                "ORDER BY seq DESC LIMIT ?",
                (order_id, before if before is not None else 1 << 62, limit + 1),
            ).fetchall()
            more = len(rows) > limit
            rows = rows[:limit]
            rows.reverse()
        return [_message(order_id, r) for r in rows], more

    def replay(
        self, order_id: str, sees_notes: bool, since: int | None, limit: int
    ) -> tuple[list[Message], bool]:
        """Messages after `since` (all of them up to `limit`, newest kept), or the newest `limit`."""
        if since is None:
            msgs, _ = self.history(order_id, sees_notes, None, None, limit)
            return msgs, False
        notes = "" if sees_notes else " AND kind != 'note'"
        rows = self._r.execute(
            f"SELECT {_MSG_COLS} FROM messages WHERE order_id = ? AND seq > ?{notes} "
            "ORDER BY seq DESC LIMIT ?",
            (order_id, since, limit + 1),
        ).fetchall()
        truncated = len(rows) > limit
        rows = rows[:limit]
        rows.reverse()
        return [_message(order_id, r) for r in rows], truncated

    def marker(self, order_id: str, user_id: str, sees_notes: bool, last_seq: int) -> tuple[int, int, int]:
        """(read_seq, unread, last visible seq) for a user on an order."""
        row = self._r.execute(
            "SELECT read_seq, unread, last_seq FROM read_markers WHERE user_id = ? AND order_id = ?",
            (user_id, order_id),
        ).fetchone()
        if row:
            return row[0], row[1], row[2] if not sees_notes else last_seq
        # staff and bots without a marker yet: everything visible is unread
        notes = "" if sees_notes else " AND kind != 'note'"
        count, last = self._r.execute(
            f"SELECT COUNT(*), COALESCE(MAX(seq), 0) FROM messages WHERE order_id = ? "
            f"AND sender_id != ?{notes}",
            (order_id, user_id),
        ).fetchone()
        return 0, count, last if not sees_notes else last_seq

    def total_unread(self, user_id: str) -> int:
        row = self._r.execute("SELECT unread_total FROM user_stats WHERE user_id = ?", (user_id,)).fetchone()
        return row[0] if row else 0

    def inbox(self, user_id: str, limit: int, cursor: str | None):
        """The user's orders, newest activity first: (entries, total, next_cursor).

        Each entry is (order_id, status, unread, dispute_open, last Message or None).
        """
        args: list = [user_id]
        where = ""
        if cursor:
            try:
                ts, oid = cursor.split(":", 1)
                args += [int(ts), int(ts), oid]
            except ValueError as exc:
                raise BadRequest("invalid cursor") from exc
            where = " AND (m.activity_ts < ? OR (m.activity_ts = ? AND m.order_id < ?))"
        rows = self._r.execute(
            "SELECT m.order_id, o.status, m.unread, o.dispute_open, m.last_seq, m.activity_ts "
            "FROM read_markers m JOIN orders o ON o.id = m.order_id "
            f"WHERE m.user_id = ?{where} ORDER BY m.activity_ts DESC, m.order_id DESC LIMIT ?",
            (*args, limit + 1),
        ).fetchall()
        more = len(rows) > limit
        rows = rows[:limit]
        entries = []
        for oid, status, unread, dispute_open, last_seq, _ in rows:
            last = None
            if last_seq:
                row = self._r.execute(
                    f"SELECT {_MSG_COLS} FROM messages WHERE order_id = ? AND seq = ?", (oid, last_seq)
                ).fetchone()
                last = _message(oid, row) if row else None
            entries.append((oid, status, unread, bool(dispute_open), last))
        next_cursor = f"{rows[-1][5]}:{rows[-1][0]}" if more and rows else None
        return entries, self.total_unread(user_id), next_cursor

    async def export(self, order_id: str, sees_notes: bool, chunk: int = 500) -> AsyncIterator[list[Message]]:
        """The whole history in ascending chunks, read off the loop (aiosqlite)."""
        notes = "" if sees_notes else " AND kind != 'note'"
        after = 0
        while True:
            async with self._aux.execute(
                f"SELECT {_MSG_COLS} FROM messages WHERE order_id = ? AND seq > ?{notes} "
                "ORDER BY seq LIMIT ?",
                (order_id, after, chunk),
            ) as cur:
                rows = await cur.fetchall()
            if not rows:
                return
            yield [_message(order_id, r) for r in rows]
            after = rows[-1][0]

    # --- writes -----------------------------------------------------------

    async def check_writable(self) -> None:
        def op(db):
            db.execute("INSERT OR REPLACE INTO health (id, ts) VALUES (1, ?)", (now_ms(),))

        await self._write(op)

    async def put_order(
        self,
        order_id: str,
        status: str | None,
        buyer: Person | None,
        supplier: Person | None,
        sales_rep: Person | None | type[...] = ...,
    ) -> OrderChange:
        """Create or update an order; `sales_rep=...` leaves it as it is."""

        def op(db):
            row = db.execute(f"SELECT {_ORDER_COLS} FROM orders WHERE id = ?", (order_id,)).fetchone()
            old = _order(row) if row else None
            if old is None and (buyer is None or supplier is None):
                raise BadRequest("a new order needs buyer and supplier")
            new = OrderRecord(
                id=order_id,
                status=status if status is not None else (old.status if old else "open"),
                buyer=buyer or old.buyer,
                supplier=supplier or old.supplier,
                sales_rep=(old.sales_rep if old else None) if sales_rep is ... else sales_rep,
                dispute=old.dispute if old else None,
                last_seq=old.last_seq if old else 0,
                last_ts=old.last_ts if old else 0,
                created_ts=old.created_ts if old else now_ms(),
            )
            ids = [p.id for p in (new.buyer, new.supplier, new.sales_rep) if p]
            if len(set(ids)) != len(ids):
                raise BadRequest("buyer, supplier and sales_rep must be different users")
            rep = new.sales_rep
            db.execute(
                "INSERT INTO orders (id, status, buyer_id, buyer_name, supplier_id, supplier_name, "
                "rep_id, rep_name, created_ts) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (id) DO UPDATE SET status = excluded.status, "
                "buyer_id = excluded.buyer_id, buyer_name = excluded.buyer_name, "
                "supplier_id = excluded.supplier_id, supplier_name = excluded.supplier_name, "
                "rep_id = excluded.rep_id, rep_name = excluded.rep_name",
                (
                    order_id, new.status, new.buyer.id, new.buyer.name, new.supplier.id,
                    new.supplier.name, rep.id if rep else None, rep.name if rep else None,
                    new.created_ts,
                ),
            )
            old_roles = old.roles() if old else {}
            new_roles = new.roles()
            removed = [u for u, r in old_roles.items() if new_roles.get(u) != r]
            added = [u for u, r in new_roles.items() if old_roles.get(u) != r]
            totals = []
            for user in removed:
                gone = db.execute("DELETE FROM read_markers WHERE user_id = ? AND order_id = ? RETURNING unread",
                                  (user, order_id)).fetchone()
                if gone and gone[0]:
                    totals.append(UnreadChange(user, 0, self._total(db, user)))
            for user in added:
                self._add_marker(db, new, user, permissions.sees_notes(new_roles[user]))
            changed = old is None or old.status != new.status or bool(removed) or bool(added) or (
                old.buyer != new.buyer or old.supplier != new.supplier or old.sales_rep != new.sales_rep
            )
            for hook in self.order_hooks:
                hook(db, old, new)
            return OrderChange(order=new, created=old is None, state_changed=changed, removed=removed,
                               totals=totals)

        return await self._write(op)

    @staticmethod
    def _add_marker(db, order: OrderRecord, user: str, sees_notes: bool) -> None:
        notes = "" if sees_notes else " AND kind != 'note'"
        unread, last = db.execute(
            f"SELECT COUNT(*) FILTER (WHERE sender_id != ?), COALESCE(MAX(seq), 0) FROM messages "
            f"WHERE order_id = ?{notes}",
            (user, order.id),
        ).fetchone()
        db.execute(
            "INSERT OR REPLACE INTO read_markers (user_id, order_id, sees_notes, read_seq, unread, "
            "last_seq, activity_ts) VALUES (?, ?, ?, 0, ?, ?, ?)",
            (user, order.id, int(sees_notes), unread, last, order.last_ts or order.created_ts),
        )

    def _load_order(self, db, order_id: str) -> OrderRecord:
        row = db.execute(f"SELECT {_ORDER_COLS} FROM orders WHERE id = ?", (order_id,)).fetchone()
        if row is None:
            raise NotFound("no such order", ref=order_id)
        return _order(row)

    def _find(self, db, order_id: str, sender_id: str, client_id: str) -> Message | None:
        row = db.execute(
            f"SELECT {_MSG_COLS} FROM messages WHERE order_id = ? AND sender_id = ? AND client_id = ?",
            (order_id, sender_id, client_id),
        ).fetchone()
        return _message(order_id, row) if row else None

    def _insert(self, db, order: OrderRecord, sender: UserRef, kind: str, text: str,
                client_id: str | None, status: str | None = None,
                attachments: list[AttachmentRef] | None = None) -> Posted | None:
        """Insert with the next seq; None if (order, sender, client_id) exists already."""
        ts = now_ms()
        seq = order.last_seq + 1
        att = msgspec.json.encode(attachments).decode() if attachments else None
        cur = db.execute(
            "INSERT INTO messages (order_id, seq, ts, kind, sender_id, sender_name, sender_role, "
            "client_id, text, status, attachments) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT DO NOTHING",
            (order.id, seq, ts, kind, sender.id, sender.name, sender.role, client_id, text, status, att),
        )
        if cur.rowcount == 0:
            return None
        order.last_seq, order.last_ts = seq, ts
        notes_only = "" if kind != "note" else " AND m.sees_notes"
        unread = [
            UnreadChange(*r)
            for r in db.execute(
                "SELECT m.user_id, m.unread, s.unread_total FROM read_markers m "
                "JOIN user_stats s ON s.user_id = m.user_id "
                f"WHERE m.order_id = ? AND m.user_id != ?{notes_only}",
                (order.id, sender.id),
            )
        ]
        msg = Message(order.id, seq, ts, kind, sender, text, client_id, attachments or [], status)
        for hook in self.message_hooks:
            hook(db, order, msg)
        return Posted(message=msg, duplicate=False, unread=unread)

    def _duplicate(self, db, order_id: str, sender_id: str, client_id: str) -> Posted:
        found = self._find(db, order_id, sender_id, client_id)
        if found is None:  # the insert hit a seq clash, which BEGIN IMMEDIATE rules out
            raise Internal("seq conflict")
        return Posted(message=found, duplicate=True, unread=[])

    async def post(self, actor: Actor, order_id: str, text: str, client_id: str | None,
                   kind: str = "text", attachments: list[AttachmentRef] | None = None) -> Posted:
        """Store a `text`/`note` (or, for the system, `system`) message."""

        def op(db):
            order = self._load_order(db, order_id)
            role = actor.role_in(order)
            if kind == "note" and not permissions.sees_notes(role):
                raise Forbidden("buyers cannot write notes", ref=client_id)
            had_unread = role != "bot" and db.execute(
                "SELECT unread FROM read_markers WHERE user_id = ? AND order_id = ?", (actor.id, order_id)
            ).fetchone()
            posted = self._insert(db, order, UserRef(actor.id, actor.name, role), kind, text, client_id,
                                  attachments=attachments)
            if posted is None:
                return self._duplicate(db, order_id, actor.id, client_id)
            if had_unread and had_unread[0]:
                posted.unread.append(UnreadChange(actor.id, 0, self._total(db, actor.id)))
            return posted

        return await self._write(op)

    @staticmethod
    def _total(db, user_id: str) -> int:
        row = db.execute("SELECT unread_total FROM user_stats WHERE user_id = ?", (user_id,)).fetchone()
        return row[0] if row else 0

    async def set_status(self, actor: Actor, order_id: str, status: str, client_id: str,
                         text: str | None) -> Posted:
        """Change the order's status and post a `status` message, atomically."""

        def op(db):
            order = self._load_order(db, order_id)
            role = actor.role_in(order)
            dup = self._find(db, order_id, actor.id, client_id)
            if dup:
                return Posted(message=dup, duplicate=True, unread=[])
            if not permissions.may_set_status(role):
                raise Forbidden(f"role {role} cannot change the status", ref=client_id)
            db.execute("UPDATE orders SET status = ? WHERE id = ?", (status, order_id))
            order.status = status
            posted = self._insert(db, order, UserRef(actor.id, actor.name, role), "status",
                                  text or f"Status changed to {status}", client_id, status=status)
            posted.order = order
            return posted

        return await self._write(op)

    async def dispute(self, actor: Actor, order_id: str, action: str, client_id: str,
                      reason: str | None) -> Posted:
        """Open or close the order's dispute and post a `dispute` message, atomically."""

        def op(db):
            order = self._load_order(db, order_id)
            role = actor.role_in(order)
            dup = self._find(db, order_id, actor.id, client_id)
            if dup:
                return Posted(message=dup, duplicate=True, unread=[])
            current = order.dispute
            ts = now_ms()
            if action == "open":
                if not permissions.may_open_dispute(role):
                    raise Forbidden(f"role {role} cannot open a dispute", ref=client_id)
                if current and current.open:
                    raise Conflict("a dispute is already open", ref=client_id)
                order.dispute = DisputeState(open=True, reason=reason, by=actor.id, ts=ts)
                text = f"Dispute opened: {reason}" if reason else "Dispute opened"
            else:
                if not current or not current.open:
                    raise Conflict("no dispute is open", ref=client_id)
                if not permissions.may_close_dispute(role, actor.id, current.by):
                    raise Forbidden("only staff or whoever opened it can close a dispute", ref=client_id)
                order.dispute = DisputeState(open=False, reason=reason or current.reason, by=actor.id, ts=ts)
                text = f"Dispute closed: {reason}" if reason else "Dispute closed"
            d = order.dispute
            db.execute(
                "UPDATE orders SET dispute_open = ?, dispute_reason = ?, dispute_by = ?, dispute_ts = ? "
                "WHERE id = ?",
                (int(d.open), d.reason, d.by, d.ts, order_id),
            )
            posted = self._insert(db, order, UserRef(actor.id, actor.name, role), "dispute", text, client_id)
            posted.order = order
            return posted

        return await self._write(op)

    async def mark_read(self, actor: Actor | None, order_id: str, user_id: str, seq: int,
                        backward: bool = False) -> ReadMarker | None:
        """Move `user_id`'s read marker to `seq` (forward only unless `backward`).

        `actor` None means the api key acting for `user_id` (who must hold a
        marker). Returns None when nothing changed.
        """

        def op(db):
            order = self._load_order(db, order_id)
            role = ""
            if actor is not None:
                role = actor.role_in(order)
                sees = permissions.sees_notes(role)
            row = db.execute(
                "SELECT read_seq, unread, sees_notes FROM read_markers WHERE user_id = ? AND order_id = ?",
                (user_id, order_id),
            ).fetchone()
            if row is None:
                if actor is None:
                    raise NotFound(f"user {user_id} has no read marker on this order", ref=order_id)
                self._add_marker(db, order, user_id, sees)
                row = (0, None, int(sees))
            read_seq, _, sees = row
            target = max(0, min(seq, order.last_seq))
            if target == read_seq or (target < read_seq and not backward):
                return None
            notes = "" if sees else " AND kind != 'note'"
            unread = db.execute(
                f"SELECT COUNT(*) FROM messages WHERE order_id = ? AND seq > ? AND sender_id != ?{notes}",
                (order_id, target, user_id),
            ).fetchone()[0]
            db.execute(
                "UPDATE read_markers SET read_seq = ?, unread = ? WHERE user_id = ? AND order_id = ?",
                (target, unread, user_id, order_id),
            )
            return ReadMarker(read_seq=target, unread=unread, total=self._total(db, user_id), role=role)

        return await self._write(op)
