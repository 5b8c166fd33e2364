"""The PostgreSQL engine: the asyncpg pool, group commit, error mapping.

One writer task takes every write queued since its last commit and runs
them in one transaction on one pooled connection; their futures resolve only
after COMMIT returned, so an ack always means "stored", and a busy server
pays one commit (one WAL flush) per batch, not per message. `seq` is
allocated inside that transaction under the order's row lock (`SELECT ...
FOR UPDATE`), so any number of hosts writing to one database get gapless,
unique seqs. Two hosts' batches that lock rows in opposite orders deadlock;
PostgreSQL aborts one, and it is run again.

A batch locks and reads the rows of all its writes' orders in one statement
(`_lock_orders`), and holds back its messages to write them in one statement
at its end (chatd.store.postgres.batch): a post is no round trip of its own,
only its share of the batch's BEGIN, lock, read of the unread counts, INSERT
and COMMIT.

The writers run on a thread of their own, with their own event loop and pool.
A write is several round trips; on the main loop each waited for a turn of a loop
busy with sockets, and at 1,500 msgs/s the acks' p99 was over 500 ms. The
writer thread does little but wait on PostgreSQL, so it takes the GIL back as
soon as an answer comes (the main loop releases it at every socket call).
Writes are handed over with `call_soon_threadsafe`; a batch's callers hear of
it on the main loop, after COMMIT. An op runs on the writer thread: ops and
the rules they call read their arguments and the database, nothing of the
loop's.

Reads take their own pooled connection on the main loop: asyncpg never
blocks the loop. `pool_size` is shared: the writers' connections, the rest
for reads.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import logging
import threading
import time
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from typing import TYPE_CHECKING, Any, Concatenate, ParamSpec, TypeVar, cast

import asyncpg
import msgspec

from chatd.errors import BadRequest, ChatError, Internal, Unavailable
from chatd.store.base import MessageEvents, NotifyRule, OrderEvents
from chatd.store.postgres.batch import Held, Replay, Statements, hold
from chatd.store.postgres.migrations import migrate
from chatd.store.records import OrderRecord
from chatd.store.rows import ORDER_COLS, order_from_row

if TYPE_CHECKING:
    from chatd.store.records import Posted
    from chatd.wire import AttachmentRef, Message, UserRef

log = logging.getLogger("chatd.store")
LINGER_S = 0.0005
WRITERS = 2  # at most, one connection of the pool left for reads: more cost PostgreSQL more CPU a message
# (smaller batches, each its own statements and commit) for no lower latency (docs/benchmarks.md)
_OUTBOX_WRITTEN: contextvars.ContextVar[int] = contextvars.ContextVar("chatd_outbox_written", default=0)
# The order rows the batch being committed locked up front (Engine._lock_orders), each
# to be taken once by the first op that loads it: see Orders._load_order.
_LOCKED: contextvars.ContextVar[dict[str, OrderRecord]] = contextvars.ContextVar("chatd_locked")
RETRY_STATES = {"40001", "40P01"}  # serialization failure, deadlock: run the batch again
# The database is away (stopping, starting, unreachable): `unavailable`, the client
# tries again with the same client_id. 57P01/57P02 end the sessions of a server that
# stops; a pooled connection whose session ended that way, its close not yet read,
# answers the next query with asyncpg's InternalClientError ("another operation is
# in progress"), not with a connection error.
GONE = (
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.CannotConnectNowError,
    asyncpg.AdminShutdownError,
    asyncpg.CrashShutdownError,
    asyncpg.InternalClientError,
    OSError,
    asyncio.TimeoutError,
)
# A value PostgreSQL's text cannot hold (U+0000): the edges refuse it first; this is the net
UNSTORABLE = (asyncpg.CharacterNotInRepertoireError, asyncpg.UntranslatableCharacterError)


async def _keep_session(conn: asyncpg.Connection) -> None:
    """A connection back in the pool keeps its session as it is.

    asyncpg's default reset (advisory unlock, CLOSE ALL, UNLISTEN, RESET ALL) is one
    more round trip per acquire, two a message under load; chatd's session holds
    nothing to reset: no LISTEN, no session advisory lock or setting, no cursor outside
    a transaction (tests/contract/test_postgres_session.py keeps it so). An open
    transaction is still rolled back, by asyncpg, before this runs."""


def _unstorable(exc: BaseException) -> BadRequest:
    return BadRequest(f"a value the store cannot hold: {exc}")


P = ParamSpec("P")
T = TypeVar("T")

Op = Callable[[asyncpg.Connection], Awaitable[Any]]


class _Op:
    __slots__ = ("client", "fn", "future", "order")

    def __init__(self, fn: Op, future: asyncio.Future[Any], order: str | None, client: tuple[str, str] | None) -> None:
        self.fn = fn
        self.future = future
        self.order = order
        self.client = client


@functools.lru_cache(maxsize=16)
def _lock_sql(arity: int) -> str:
    """Lock and read up to `arity` orders (a power of two; repeat the last id to fill).
    A fixed number of parameters gets PostgreSQL's generic plan after a few runs;
    `id = ANY($1)` was planned afresh on every run, 20 to 70 µs."""
    ids = ", ".join(f"${k}" for k in range(1, arity + 1))
    return f"SELECT {ORDER_COLS} FROM orders WHERE id IN ({ids}) ORDER BY id FOR UPDATE"


def keep_locked(order: OrderRecord) -> None:
    """An op of the batch leaves its order's row as `order` says (its held message's
    seq and reply clock, nothing else): the next op of the batch on that order takes it
    from here, with no read of its own, so their messages are held together."""
    locked = _LOCKED.get(None)
    if locked is not None:
        locked[order.id] = msgspec.structs.replace(order)


def locked_order(order_id: str) -> OrderRecord | None:
    """The order's row as the batch being committed locked it, if it did and no op of
    the batch has loaded it since (it is given out once: a second op of the same order
    reads it again, with the first one's changes)."""
    return _LOCKED.get({}).pop(order_id, None)


class StoreMixin:
    """The base of the concern mixins (orders, messages, markers, attachments,
    outbox, threads): what they use of the class they are mixed into,
    PostgresStore. Declarations for the type checker only: Engine and the other
    mixins define them."""

    if TYPE_CHECKING:
        # Engine's
        events_for_message: MessageEvents | None
        events_for_order: OrderEvents | None
        notifications_for: NotifyRule | None
        clock: Callable[[], float]
        _outbox_written: int

        def _reading(self) -> contextlib.AbstractAsyncContextManager[asyncpg.Connection]: ...

        def _write(
            self,
            fn: Callable[[asyncpg.Connection], Awaitable[T]],
            key: str = "",
            order: str | None = None,
            client: tuple[str, str] | None = None,
        ) -> asyncio.Future[T]: ...

        # the other concerns' (Orders, Markers)
        @staticmethod
        async def _load_order(db: asyncpg.Connection, order_id: str, lock: bool = False) -> OrderRecord: ...

        @staticmethod
        async def _add_marker(db: asyncpg.Connection, order: OrderRecord, user: str, sees_notes: bool) -> int: ...

        @staticmethod
        async def _hidden(db: asyncpg.Connection, user_id: str) -> int: ...

        @staticmethod
        async def _total(db: asyncpg.Connection, user_id: str) -> int: ...

        async def _insert(
            self,
            db: asyncpg.Connection,
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

        @staticmethod
        async def _find(db: asyncpg.Connection, order_id: str, sender_id: str, client_id: str) -> Message | None: ...

        async def _duplicate(self, db: asyncpg.Connection, order_id: str, sender_id: str, client_id: str) -> Posted: ...


S = TypeVar("S", bound=StoreMixin)


def pooled_read(
    fn: Callable[Concatenate[S, asyncpg.Connection, P], Awaitable[T]],
) -> Callable[Concatenate[S, P], Coroutine[Any, Any, T]]:
    """An async read on a pooled connection (passed as `conn`), its driver errors mapped."""

    @functools.wraps(fn)
    async def read(self: S, /, *args: P.args, **kwargs: P.kwargs) -> T:
        async with self._reading() as conn:
            return await fn(self, conn, *args, **kwargs)

    return read


class Engine:
    """Writes go through `_write` (group commit); reads through `_reading`."""

    def __init__(
        self,
        url: str,
        pool_size: int = 10,
        statement_timeout_s: float = 30.0,
        max_batch: int = 512,
        *,
        events_for_message: MessageEvents | None = None,
        events_for_order: OrderEvents | None = None,
        notifications_for: NotifyRule | None = None,
        on_outbox: Callable[[], None] | None = None,
        on_batch: Callable[[int, float], None] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.url = url
        self.pool_size = pool_size
        self.statement_timeout_s = statement_timeout_s
        self.max_batch = max_batch
        self._pool: asyncpg.Pool | None = None
        # Writes of one order always go through one writer, in the order they were
        # made; the writers commit in parallel on connections of their own, so the
        # round trips of one batch do not hold up the other orders'.
        self.writers = max(1, min(WRITERS, self.pool_size - 1))
        self._queues: list[list[_Op]] = [[] for _ in range(self.writers)]
        self._wakeups = [asyncio.Event() for _ in range(self.writers)]
        self._writer_tasks: list[asyncio.Task[None]] = []
        self._wloop: asyncio.AbstractEventLoop | None = None  # the writers' own loop, on a thread
        self._wthread: threading.Thread | None = None
        self._wpool: asyncpg.Pool | None = None
        self._main: asyncio.AbstractEventLoop | None = None
        self._closing = False  # main loop: no new writes
        # writer loop: every write queued before close is in the queues. Set by
        # _stop_writers, which the writer loop runs after each _enqueue sent before
        # it; _closing cannot tell, as an _enqueue may still be on its way.
        self._draining = False
        self.batches = 0
        self.writes = 0
        # Values from the composition root (chatd.app), as for SQLite: pure functions
        # giving the outbox events of a write, a wake-up after a commit that wrote some.
        self.events_for_message = events_for_message
        self.events_for_order = events_for_order
        self.notifications_for = notifications_for  # chatd.notifications: whom a message notifies, and when
        self.clock = clock  # wall-clock seconds: message timestamps (tests inject one)
        self.on_outbox = on_outbox
        self.on_batch = on_batch  # (ops, seconds) per commit

    # --- lifecycle ------------------------------------------------------

    async def open(self) -> None:
        timeout_ms = str(int(self.statement_timeout_s * 1000))
        try:
            self._pool = await self._create_pool(max(2, self.pool_size - self.writers), timeout_ms)
            async with self._pool.acquire() as conn:
                await migrate(conn)
        except GONE as exc:
            raise Unavailable(f"cannot reach the database: {exc}") from exc
        self._main = asyncio.get_running_loop()
        self._wloop = asyncio.new_event_loop()
        self._wthread = threading.Thread(target=self._wloop.run_forever, name="chatd-pg-writer", daemon=True)
        self._wthread.start()
        try:
            await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(self._start_writers(timeout_ms), self._wloop))
        except BaseException as exc:
            await self._stop_thread()
            await self._pool.close()
            if isinstance(exc, GONE):
                raise Unavailable(f"cannot reach the database: {exc}") from exc
            raise

    async def _create_pool(self, size: int, timeout_ms: str) -> asyncpg.Pool:
        return await asyncpg.create_pool(
            self.url,
            min_size=1,
            max_size=size,
            # no JIT: chatd's statements are short, and compiling one the planner thinks
            # costly took 300 ms of a search over 1 M messages
            server_settings={"statement_timeout": timeout_ms, "application_name": "chatd", "jit": "off"},
            reset=_keep_session,
        )

    async def _start_writers(self, timeout_ms: str) -> None:
        """On the writer thread: its pool and one task per writer."""
        self._wpool = await self._create_pool(self.writers, timeout_ms)
        self._wakeups = [asyncio.Event() for _ in range(self.writers)]
        self._writer_tasks = [
            asyncio.create_task(self._run_writer(i), name=f"chatd-writer-{i}") for i in range(self.writers)
        ]

    async def _stop_writers(self) -> None:
        self._draining = True
        for wakeup in self._wakeups:
            wakeup.set()
        await asyncio.gather(*self._writer_tasks)
        if self._wpool is not None:
            try:
                await asyncio.wait_for(self._wpool.close(), 10)
            except (TimeoutError, *GONE):
                self._wpool.terminate()

    async def _stop_thread(self) -> None:
        if self._wloop is not None and self._wthread is not None:
            self._wloop.call_soon_threadsafe(self._wloop.stop)
            await asyncio.to_thread(self._wthread.join)
            self._wloop.close()
            self._wthread = None

    async def aclose(self) -> None:
        """Flush every queued write, then close. Idempotent."""
        if self._closing:
            return
        self._closing = True
        if self._wloop is not None:
            await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(self._stop_writers(), self._wloop))
        await self._stop_thread()
        if self._pool is not None:
            try:
                await asyncio.wait_for(self._pool.close(), 10)
            except (TimeoutError, *GONE):
                self._pool.terminate()

    @contextlib.asynccontextmanager
    async def _reading(self) -> AsyncIterator[asyncpg.Connection]:
        """A pooled connection for a read: driver errors become `unavailable`
        (closed, unreachable) or `internal`, never an asyncpg exception."""
        if self._closing or self._pool is None:
            raise Unavailable("store is closed")
        try:
            async with self._pool.acquire() as conn:
                yield conn
        except ChatError:
            raise
        except GONE as exc:
            raise Unavailable(f"database unavailable: {exc}") from exc
        except UNSTORABLE as exc:
            raise _unstorable(exc) from exc
        except asyncpg.PostgresError as exc:
            if self._closing:
                raise Unavailable("store is closed") from exc
            log.exception("read failed")
            raise Internal(f"store error: {exc}") from exc

    # --- the writer ------------------------------------------------------

    @property
    def _outbox_written(self) -> int:
        """Outbox events written by the batch this writer task is committing (a
        context variable: every writer task has its own)."""
        return _OUTBOX_WRITTEN.get()

    @_outbox_written.setter
    def _outbox_written(self, n: int) -> None:
        _OUTBOX_WRITTEN.set(n)

    def _write(
        self,
        fn: Callable[[asyncpg.Connection], Awaitable[T]],
        key: str = "",
        order: str | None = None,
        client: tuple[str, str] | None = None,
    ) -> asyncio.Future[T]:
        """Queue `fn` for the writer of `key` (an order id: its writes stay in order).

        `order`: the order whose row `fn` locks first (`_load_order(lock=True)`) and
        the only order it writes; it is also the key. A batch locks the rows of all
        its ops' orders in one statement, so each op saves that round trip.
        `client`: (sender, client_id) of the message `fn` posts in `order`, so the batch
        can tell a new message from a repeat without a statement of the message's own."""
        if self._closing or self._wloop is None:
            raise Unavailable("store is closed" if self._closing else "store is not open yet")
        fut: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        key = order or key
        i = zlib.crc32(key.encode()) % self.writers if key else 0
        self._wloop.call_soon_threadsafe(self._enqueue, i, _Op(fn, fut, order, client))
        return fut

    def _enqueue(self, i: int, op: _Op) -> None:
        self._queues[i].append(op)
        self._wakeups[i].set()

    async def _run_writer(self, i: int) -> None:
        queue, wakeup = self._queues[i], self._wakeups[i]
        while True:
            await wakeup.wait()
            await asyncio.sleep(LINGER_S)  # let the frames already read reach the queue
            wakeup.clear()
            while queue:
                batch = queue[: self.max_batch]
                del queue[: self.max_batch]
                await self._commit(batch)
            if self._draining:
                return

    async def _commit(self, batch: list[_Op]) -> None:
        started = time.perf_counter()
        try:
            results = await self._apply(batch)
        except GONE as exc:
            log.warning("batch failed: %s", exc)
            results = [Unavailable(f"database unavailable: {exc}")] * len(batch)
        except Exception as exc:  # noqa: BLE001 - reported to every caller of the batch
            log.exception("batch failed")
            results = [Internal(f"store error: {exc}")] * len(batch)
        outbox, self._outbox_written = self._outbox_written, 0
        assert self._main is not None  # set by open()
        self._main.call_soon_threadsafe(self._settle, batch, results, outbox, time.perf_counter() - started)

    def _settle(self, batch: list[_Op], results: list[Any], outbox: int, seconds: float) -> None:
        """On the main loop: the batch's callers hear of it, after COMMIT."""
        self.batches += 1
        self.writes += len(batch)
        if self.on_batch is not None:
            self.on_batch(len(batch), seconds)
        for op, result in zip(batch, results, strict=True):
            if op.future.done():
                continue
            if isinstance(result, BaseException):
                op.future.set_exception(result)
            else:
                op.future.set_result(result)
        if outbox and self.on_outbox is not None:
            self.on_outbox()  # after the commit, on the loop

    async def _apply(self, batch: list[_Op], split: bool = True) -> list[Any]:
        """Run a batch in one transaction. A refused op (ChatError) fails alone;
        a deadlock runs the batch again; any other error rolls back and runs
        each op on its own."""
        pool = self._wpool
        assert pool is not None  # set by open(), before the writer task starts
        delay = 0.001
        holding = True  # the batch's messages written in one statement (chatd.store.postgres.batch)
        while True:
            written = self._outbox_written
            try:
                async with pool.acquire() as conn:
                    results: list[Any] = []
                    async with conn.transaction():
                        locked = await self._lock_orders(conn, batch)
                        _LOCKED.set(locked)
                        held = Held(conn, [(op.order, op.client) for op in batch if op.order]) if holding else None
                        hold(held)
                        db = cast(asyncpg.Connection, Statements(conn, held)) if held is not None else conn
                        posts_left = sum(op.client is not None for op in batch)  # that declared their client_id
                        for k, op in enumerate(batch):
                            posts_left -= op.client is not None
                            if op.order is None:
                                locked.clear()  # it may write any order: the rows locked may be stale
                            try:
                                results.append(await op.fn(db))
                            except ChatError as exc:
                                results.append(exc)  # refused before it wrote anything
                            # Two posts or more left: worth locking and reading the figures again to
                            # hold them (two statements, and one for their INSERT) rather than writing
                            # each by statements of its own (the order's lock, often, and the post).
                            if held is not None and not held.open and posts_left >= 2:
                                locked.update(await self._lock_orders(conn, batch[k + 1 :]))  # as they are now
                                held.resume()
                        if held is not None:
                            await held.flush()
                    return results
            except Replay:  # a held message repeats a stored one: hold none
                self._outbox_written = written
                holding = False
                continue
            except asyncpg.PostgresError as exc:
                self._outbox_written = written
                if getattr(exc, "sqlstate", None) in RETRY_STATES:
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 0.05)
                    continue
                if isinstance(exc, GONE):
                    raise
                if isinstance(exc, UNSTORABLE) and (len(batch) == 1 or not split):
                    return [_unstorable(exc)]  # rolled back: nothing of it was written
                if len(batch) == 1 or not split:
                    log.exception("write failed")
                    return [Internal(f"store error: {exc}")]
                failed: Exception = exc
            except GONE:
                self._outbox_written = written
                raise
            except Exception as exc:  # a bug in an op: that op's caller hears of it
                self._outbox_written = written
                if len(batch) == 1 or not split:
                    log.exception("write failed")
                    return [Internal(f"store error: {exc}")]
                failed = exc
            # the batch's own statements may be at fault, not an op: said, as one by one is slower
            log.warning("a batch of %d writes failed, so each runs alone: %r", len(batch), failed)
            return [(await self._apply([op], split=False))[0] for op in batch]

    @staticmethod
    async def _lock_orders(conn: asyncpg.Connection, batch: list[_Op]) -> dict[str, OrderRecord]:
        """Lock the rows of the batch's orders (`_Op.order`) in one statement, in id
        order, and return them; nothing for a batch of one, whose op locks its own."""
        ids = sorted({op.order for op in batch if op.order is not None})
        if len(batch) < 2 or not ids:
            return {}
        arity = 1 << (len(ids) - 1).bit_length()
        rows = await conn.fetch(_lock_sql(arity), *ids, *ids[-1:] * (arity - len(ids)))
        return {row[0]: order_from_row(row) for row in rows}

    async def index_search(self) -> None:
        """Nothing to do: each message's search vector is written with it."""
        if self._closing:
            raise Unavailable("store is closed")
