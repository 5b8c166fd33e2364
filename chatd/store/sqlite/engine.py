"""The SQLite engine: connections, group commit, checkpoints, the search indexer.

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
get gapless, unique seqs. The SQL of each concern lives beside this module
(orders, messages, markers, attachments, outbox, threads).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import functools
import logging
import sqlite3
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Concatenate, ParamSpec, TypeVar

import aiosqlite

from chatd.errors import ChatError, Internal, Unavailable
from chatd.store.base import MessageEvents, NotifyRule, OrderEvents
from chatd.store.sqlite.migrations import migrate
from chatd.tasks import stop

if TYPE_CHECKING:
    from chatd.store.records import OrderRecord, Posted
    from chatd.wire import AttachmentRef, Message, UserRef

T = TypeVar("T")
P = ParamSpec("P")

log = logging.getLogger("chatd.store")
LINGER_S = 0.0005  # a write with none before it waits this long for company
BUSY_LINGER_S = 0.002  # one behind a batch of several, this long


class _Op:
    __slots__ = ("fn", "future")

    def __init__(self, fn: Callable[[sqlite3.Connection], Any], future: asyncio.Future[Any]) -> None:
        self.fn = fn
        self.future = future


class StoreMixin:
    """The base of the concern mixins (orders, messages, markers, attachments,
    outbox, threads): what they use of the class they are mixed into,
    SqliteStore. Declarations for the type checker only: Engine and the other
    mixins define them."""

    if TYPE_CHECKING:
        # Engine's
        events_for_message: MessageEvents | None
        events_for_order: OrderEvents | None
        notifications_for: NotifyRule | None
        clock: Callable[[], float]
        _outbox_written: int
        _aux: aiosqlite.Connection | None
        _search_lock: threading.Lock

        @property
        def reader(self) -> sqlite3.Connection: ...

        def _reading(self) -> contextlib.AbstractContextManager[None]: ...

        def _write(self, fn: Callable[[sqlite3.Connection], T]) -> asyncio.Future[T]: ...

        def _search_db(self) -> sqlite3.Connection: ...

        # the other concerns' (Orders, Markers)
        @staticmethod
        def _load_order(db: sqlite3.Connection, order_id: str) -> OrderRecord: ...

        @staticmethod
        def _add_marker(db: sqlite3.Connection, order: OrderRecord, user: str, sees_notes: bool) -> int: ...

        @staticmethod
        def _hidden(db: sqlite3.Connection, user_id: str) -> int: ...

        @staticmethod
        def _total(db: sqlite3.Connection, user_id: str) -> int: ...

        def _insert(
            self,
            db: sqlite3.Connection,
            order: OrderRecord,
            sender: UserRef,
            kind: str,
            text: str,
            client_id: str | None,
            status: str | None = None,
            attachments: list[AttachmentRef] | None = None,
            present: frozenset[str] = frozenset(),
            forced: bool = False,
            *,
            asks_help: bool = False,
            moved: bool = False,
            own_read: bool = False,
        ) -> Posted | None: ...

        def _find(
            self, db: sqlite3.Connection, order_id: str, sender_id: str, client_id: str | None
        ) -> Message | None: ...

        def _duplicate(
            self, db: sqlite3.Connection, order_id: str, sender_id: str, client_id: str | None
        ) -> Posted: ...


S = TypeVar("S", bound=StoreMixin)


def inline_read(
    fn: Callable[Concatenate[S, P], Awaitable[T]],
) -> Callable[Concatenate[S, P], Coroutine[Any, Any, T]]:
    """An async read answered inline on `_r`, its driver errors mapped (`_reading`)."""

    @functools.wraps(fn)
    async def read(self: S, /, *args: P.args, **kwargs: P.kwargs) -> T:
        with self._reading():
            return await fn(self, *args, **kwargs)

    return read


class Engine:
    """Writes go through `_write` (group commit); reads are inline on `_r`."""

    def __init__(
        self,
        path: str,
        synchronous: str = "normal",
        max_batch: int = 512,
        *,
        events_for_message: MessageEvents | None = None,
        events_for_order: OrderEvents | None = None,
        notifications_for: NotifyRule | None = None,
        on_outbox: Callable[[], None] | None = None,
        on_batch: Callable[[int, float], None] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.path = path
        self.synchronous = synchronous
        self.max_batch = max_batch
        self.checkpoint_interval_s = 0.5  # 6,000 msgs/s: p99 16-31 ms; at 1 s 23-71 ms (6 runs each)
        self._queue: list[_Op] = []
        self._wakeup = asyncio.Event()
        self._write_lock = asyncio.Lock()  # held per batch; a checkpoint's tail holds it too
        self._written_since_checkpoint = 0
        self._writer_task: asyncio.Task[None] | None = None
        self._checkpoint_task: asyncio.Task[None] | None = None
        self._indexer_task: asyncio.Task[None] | None = None
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None
        self._w: sqlite3.Connection | None = None
        self._r: sqlite3.Connection | None = None
        self._aux: aiosqlite.Connection | None = None
        self._closing = False
        self.batches = 0
        self.writes = 0
        # Values from the feature modules (given by the composition root, chatd.app): pure
        # functions giving the outbox events of a write, and a wake-up called on the loop
        # after a commit that wrote some. Nothing here runs chat, hub or relay code in a
        # transaction.
        self.events_for_message = events_for_message
        self.events_for_order = events_for_order
        self.notifications_for = notifications_for  # chatd.notifications: whom a message notifies, and when
        self.clock = clock  # wall-clock seconds: message timestamps (tests inject one)
        self.on_outbox = on_outbox
        self._outbox_written = 0  # events written by the batch being committed
        self.on_batch = on_batch  # (ops, seconds) per commit
        self._search: sqlite3.Connection | None = None  # thread pages, on a worker thread
        self._search_lock = threading.Lock()

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
        # Up to 64 MiB of pages (default 2 MiB): messages spread over many orders touch a
        # page per order in each index, and a miss is a read from the WAL or the file.
        db.execute("PRAGMA cache_size = -65536")
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
        self._checkpoint_task = asyncio.create_task(
            self._run_checkpoints(self.checkpoint_interval_s), name="chatd-checkpoint"
        )
        self._indexer_task = asyncio.create_task(self._run_indexer(), name="chatd-search-indexer")

    async def aclose(self) -> None:
        """Flush every queued write, then close. Idempotent."""
        if self._closing:
            return
        self._closing = True
        self._wakeup.set()
        if self._writer_task:
            await self._writer_task
        await stop(self._checkpoint_task, self._indexer_task)
        if self._aux:
            try:
                # Leave a short WAL behind, but never wait for it: another
                # process on the same file may be busy (or shutting down too).
                await self._aux.execute("PRAGMA busy_timeout = 0")
                await self._aux.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            except sqlite3.Error:
                pass
            await self._aux.close()
        if self._executor:
            self._executor.shutdown(wait=True)
        with self._search_lock:
            if self._search is not None:
                self._search.close()
                self._search = None
        for db in (self._r, self._w):
            if db:
                db.close()

    @contextlib.contextmanager
    def _reading(self) -> Iterator[None]:
        """An inline read: a driver error becomes `unavailable` once closing,
        `internal` otherwise (the contract's words; no sqlite3 error escapes)."""
        try:
            yield
        except sqlite3.Error as exc:
            if self._closing:
                raise Unavailable("store is closed") from exc
            log.exception("read failed")
            raise Internal(f"store error: {exc}") from exc

    # --- the writer ------------------------------------------------------

    def _write(self, fn: Callable[[sqlite3.Connection], T]) -> asyncio.Future[T]:
        if self._closing:
            raise Unavailable("store is closed")
        fut: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._queue.append(_Op(fn, fut))
        self._wakeup.set()
        return fut

    async def _run_writer(self) -> None:
        last = 0  # writes in the last batch
        while True:
            await self._wakeup.wait()
            # Lingering lets the frames already read reach the queue: a commit
            # costs ~150 us however many writes it holds, and bigger batches share
            # pages. Half a millisecond while writes come one at a time; 2 ms once
            # they come in batches (4,000 msgs/s: 87 % -> 74 % of a core, p99 15-77 ms
            # -> 17-19 ms, docs/benchmarks.md). A lone write is never held for long.
            await asyncio.sleep(BUSY_LINGER_S if last > 1 else LINGER_S)
            self._wakeup.clear()
            while self._queue:
                async with self._write_lock:
                    batch = self._queue[: self.max_batch]
                    del self._queue[: self.max_batch]
                    last = len(batch)
                    await self._commit(batch)
            if self._closing:
                return

    async def _commit(self, batch: list[_Op]) -> None:
        delay = 0.0005
        started = time.perf_counter()
        results: list[Any]
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
        outbox, self._outbox_written = self._outbox_written, 0
        for op, result in zip(batch, results, strict=True):  # one result per op
            if op.future.done():
                continue
            if isinstance(result, BaseException):
                op.future.set_exception(result)
            else:
                op.future.set_result(result)
        if outbox and self.on_outbox is not None:
            self.on_outbox()  # after the commit, on the loop

    def _apply(self, batch: list[_Op]) -> list[Any]:
        """Run a batch in one transaction. A refused op (ChatError) fails alone;
        an unexpected error rolls back and retries each op on its own."""
        db = self._w
        assert db is not None  # set by open(), before the writer task starts
        db.execute("BEGIN IMMEDIATE")
        results: list[Any] = []
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
            failed: Exception = exc
        except Exception as exc:
            db.execute("ROLLBACK")
            if len(batch) == 1:
                log.exception("write failed")
                return [Internal("store error")]
            failed = exc
        log.warning("a batch of %d writes failed, so each runs alone: %r", len(batch), failed)
        return [self._apply_one(op) for op in batch]

    def _apply_one(self, op: _Op) -> Any:
        try:
            return self._apply([op])[0]
        except Exception as exc:  # noqa: BLE001 - reported to that one caller
            log.exception("write failed")
            return Internal(f"store error: {exc}")

    async def _run_checkpoints(self, interval_s: float, tail_frames: int = 512) -> None:
        """Keep the WAL short. A checkpoint that runs beside a busy writer never
        catches up, and SQLite only rewinds the WAL after one that did, so:
        copy while writes go on until what is left is short, then that tail
        with the writer paused (writes queue meanwhile and commit as one
        batch). All on aiosqlite's thread: checkpoints wait for the disk.

        "Short" is judged by what a round copied, which is what was written
        during the round before: a round's own result ("everything copied
        that existed when I started") says nothing about the frames that
        arrived while it ran. Judged that way the pause copies a few hundred
        frames (2-3 ms) instead of a whole round's worth (10-20 ms at 6,000
        msgs/s, which pushed p99 from 33 to 60-75 ms)."""
        assert self._aux is not None  # set by open(), before this task starts
        while True:
            await asyncio.sleep(interval_s)
            if not self._written_since_checkpoint:
                continue
            self._written_since_checkpoint = 0
            try:
                done = -1  # frames the previous round had copied (cumulative in this WAL)
                for _ in range(8):
                    async with self._aux.execute("PRAGMA wal_checkpoint(PASSIVE)") as cur:
                        row = await cur.fetchone()
                        assert row is not None  # the pragma answers one row: (busy, log frames, checkpointed)
                        _, _, copied = row
                    if 0 <= copied - done <= tail_frames:
                        break
                    done = copied
                async with self._write_lock:
                    await self._aux.execute("PRAGMA wal_checkpoint(PASSIVE)")
            except sqlite3.Error as exc:  # busy: try again next round
                log.debug("checkpoint: %s", exc)

    async def index_search(self, chunk: int = 500) -> None:
        """Add every message not yet in the full-text index, in bulk.

        Runs through the writer (so several processes never index a message
        twice), a chunk per transaction so the loop is never held for long.
        Search is at most `_run_indexer`'s interval behind; a search first
        calls this to read its own writes. 500 messages index in ~2 ms: a
        chunk of 5,000 held the loop for 20 ms once a second."""

        def op(db: sqlite3.Connection) -> bool:
            done: int = db.execute("SELECT indexed_to FROM search_state WHERE id = 1").fetchone()[0]
            top: int = db.execute("SELECT COALESCE(MAX(id), 0) FROM message_log").fetchone()[0]
            upto = min(top, done + chunk)
            if upto > done:
                db.execute(  # each message with its order's token (`ord`: migration 13)
                    "INSERT INTO messages_fts (rowid, text, ord) SELECT l.id, m.text, COALESCE('o' || w.id, '') "
                    "FROM message_log l JOIN messages m ON m.order_id = l.order_id AND m.seq = l.seq "
                    "LEFT JOIN order_words w ON w.order_id = l.order_id WHERE l.id > ? AND l.id <= ?",
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
                if self._closing:
                    return  # a round that met aclose(): nothing is wrong
                log.warning("search indexer: %s", exc.message)

    # --- SQLite only (tests and tools; not part of the Store contract) ---------

    def write(self, fn: Callable[[sqlite3.Connection], T]) -> asyncio.Future[T]:
        """Run `fn(db)` in the next group-commit transaction; the future
        resolves to its result once committed. `fn` raises ChatError only
        before it has written anything."""
        return self._write(fn)

    @property
    def reader(self) -> sqlite3.Connection:
        """The inline read connection (WAL: never waits for the writer)."""
        assert self._r is not None  # set by open()
        return self._r

    def _search_db(self) -> sqlite3.Connection:
        """A read-only connection of its own for long pages (threads, search),
        used on a worker thread under `_search_lock`."""
        if self._search is None:
            db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            # the index's own word counts: which way a search reads it (chatd.store.sqlite.search)
            db.execute("CREATE VIRTUAL TABLE temp.messages_vocab USING fts5vocab(main, 'messages_fts', 'col')")
            db.execute("PRAGMA query_only = 1")
            db.execute("PRAGMA busy_timeout = 5000")
            self._search = db
        return self._search
