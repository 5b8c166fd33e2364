"""Copy a SQLite installation's database into PostgreSQL (`chatd migrate-store`).

Every table of the SQLite schema (chatd.store.sqlite.migrations) is either
copied row for row or named in NOT_COPIED with what stands in for it on
PostgreSQL; a table this module does not know refuses the copy. The
source is opened read-only and read in one transaction (one snapshot). The
target is brought to the current schema first (the PostgreSQL store's own
migrations), must hold no chatd data, and is written in one transaction:
batches of COPY, the identity sequences set past the copied ids, then the
counts (and a few sums) of every table compared with the source's. Any
mismatch or error rolls everything back; a failed copy can simply be run
again.

The target's triggers stay on. Messages are copied first, while no order or
read marker exists for them to update; read markers then build each user's
total, which is replaced by the source's exact `user_stats` (totals and their side-marker
part).
"""

from __future__ import annotations

import sqlite3
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg

from chatd.store.postgres import migrations as pg_migrations
from chatd.store.sqlite import migrations as sqlite_migrations

BATCH_ROWS = 5000


class CopyError(Exception):
    """The copy was refused or failed; nothing was written to the target."""


@dataclass(frozen=True)
class Table:
    name: str  # the same name on both sides
    columns: tuple[str, ...]  # target columns, in the order `select` yields them
    select: str  # the source rows (SQLite)
    checks: tuple[str, ...] = ("COUNT(*)",)  # aggregates over the table, compared on both sides
    prepare: str | None = None  # run on the target before the rows go in
    convert: Callable[[tuple[Any, ...]], tuple[Any, ...]] | None = None


def _outbox_row(row: tuple[Any, ...]) -> tuple[Any, ...]:
    body = row[3]
    body = body.encode() if isinstance(body, str) else bytes(body)
    return (*row[:3], body, *row[4:])


_MESSAGE_COLS = (
    "order_id",
    "seq",
    "ts",
    "kind",
    "sender_id",
    "sender_name",
    "sender_role",
    "client_id",
    "text",
    "status",
    "attachments",
    "forced",
)
_ORDER_COLS = (
    "id",
    "status",
    "buyer_id",
    "buyer_name",
    "supplier_id",
    "supplier_name",
    "rep_id",
    "rep_name",
    "dispute_open",
    "dispute_reason",
    "dispute_by",
    "dispute_ts",
    "last_seq",
    "last_ts",
    "created_ts",
    "workflow",
    "closes_at",
    "rep_from_buyer",
    "awaiting_seq",
    "awaiting_since",
    "sla_escalated",
    "buyer_avatar",
    "supplier_avatar",
    "rep_avatar",
    "help_by",
    "help_ts",
    "help_seq",
    "dispute_by_name",
)
_MARKER_COLS = ("order_id", "user_id", "sees_notes", "read_seq", "unread", "last_seq", "activity_ts", "side")
_ATTACHMENT_COLS = ("id", "order_id", "uploader_id", "name", "mime", "size", "sha256", "created_ts")
_LINK_COLS = ("attachment_id", "order_id", "seq", "kind")
_RESPONSE_COLS = (
    "order_id",
    "asked_seq",
    "asked_at",
    "supplier_id",
    "rep_id",
    "answered_seq",
    "answered_at",
    "answered_by",
    "escalated_at",
)
_REPLY_TOKEN_COLS = ("id", "user_id", "order_id", "created_ts", "revoked_ts")
_NOTIFICATION_COLS = (
    "id",
    "user_id",
    "order_id",
    "role",
    "reason",
    "first_seq",
    "last_seq",
    "created_ts",
    "due_ts",
    "deadline_ts",
    "state",
    "lease_until",
    "attempts",
    "sent_ts",
)
_OUTBOX_COLS = ("id", "event_id", "type", "body", "created_ts", "attempts", "next_ts", "last_error", "dead")


def _cols(cols: tuple[str, ...], alias: str = "") -> str:
    return ", ".join(alias + c for c in cols)


# In copy order (see the module docstring for why messages come first).
TABLES: tuple[Table, ...] = (
    # A message's commit-log number (message_log.id in SQLite) becomes its log_id:
    # thread pagination and the order of search matches stay as they were.
    # message_log is read in id order, each message by its primary key.
    Table(
        "messages",
        (*_MESSAGE_COLS, "log_id"),
        f"SELECT {_cols(_MESSAGE_COLS, 'm.')}, l.id FROM message_log l "
        "JOIN messages m ON m.order_id = l.order_id AND m.seq = l.seq ORDER BY l.id",
        ("COUNT(*)", "COALESCE(SUM(seq), 0)", "COALESCE(MAX(ts), 0)"),
    ),
    Table(
        "orders",
        _ORDER_COLS,
        f"SELECT {_cols(_ORDER_COLS)} FROM orders ORDER BY id",
        ("COUNT(*)", "COALESCE(SUM(last_seq), 0)", "COALESCE(SUM(dispute_open), 0)"),
    ),
    Table(
        "buyer_reps",
        ("buyer_id", "rep_id", "rep_name", "rep_avatar"),
        "SELECT buyer_id, rep_id, rep_name, rep_avatar FROM buyer_reps ORDER BY buyer_id",
    ),
    Table(
        "notifications",
        _NOTIFICATION_COLS,
        f"SELECT {_cols(_NOTIFICATION_COLS)} FROM notifications ORDER BY id",
        ("COUNT(*)", "COALESCE(SUM(last_seq), 0)", "COALESCE(SUM(state), 0)"),
    ),
    Table("notify_prefs", ("user_id", "email"), "SELECT user_id, email FROM notify_prefs ORDER BY user_id"),
    Table(
        "notify_muted",
        ("user_id", "order_id"),
        "SELECT user_id, order_id FROM notify_muted ORDER BY user_id, order_id",
    ),
    Table(
        "contacts",
        ("user_id", "email", "phone", "locale"),
        "SELECT user_id, email, phone, locale FROM contacts ORDER BY user_id",
    ),
    Table(
        "responses",
        _RESPONSE_COLS,
        f"SELECT {_cols(_RESPONSE_COLS)} FROM responses ORDER BY order_id, asked_seq",
        ("COUNT(*)", "COALESCE(SUM(asked_at), 0)", "COALESCE(SUM(answered_at), 0)"),
    ),
    Table(
        "reply_tokens",
        _REPLY_TOKEN_COLS,
        f"SELECT {_cols(_REPLY_TOKEN_COLS)} FROM reply_tokens ORDER BY id",
        ("COUNT(*)", "COUNT(revoked_ts)"),
    ),
    Table(
        "read_markers",
        _MARKER_COLS,
        f"SELECT {_cols(_MARKER_COLS)} FROM read_markers ORDER BY order_id, user_id",
        (
            "COUNT(*)",
            "COALESCE(SUM(read_seq), 0)",
            "COALESCE(SUM(unread), 0)",
            "COALESCE(SUM(side), 0)",
            "COALESCE(SUM(sees_notes), 0)",
        ),
    ),
    Table(
        "staff_markers",
        ("order_id", "read_seq", "unread"),
        "SELECT order_id, read_seq, unread FROM staff_markers ORDER BY order_id",
        ("COUNT(*)", "COALESCE(SUM(read_seq), 0)", "COALESCE(SUM(unread), 0)"),
    ),
    Table(
        "staff_follows",
        ("user_id", "order_id"),
        "SELECT user_id, order_id FROM staff_follows ORDER BY user_id, order_id",
    ),
    Table(
        "user_stats",
        ("user_id", "unread_total", "side_unread"),
        "SELECT user_id, unread_total, side_unread FROM user_stats ORDER BY user_id",
        ("COUNT(*)", "COALESCE(SUM(unread_total), 0)", "COALESCE(SUM(side_unread), 0)"),
        prepare="DELETE FROM user_stats",
    ),
    Table(
        "attachments",
        _ATTACHMENT_COLS,
        f"SELECT {_cols(_ATTACHMENT_COLS)} FROM attachments ORDER BY id",
        ("COUNT(*)", "COALESCE(SUM(size), 0)"),
    ),
    Table(
        "message_attachments",
        _LINK_COLS,
        f"SELECT {_cols(_LINK_COLS)} FROM message_attachments ORDER BY attachment_id, order_id, seq",
    ),
    Table(
        "webhook_outbox",
        _OUTBOX_COLS,
        f"SELECT {_cols(_OUTBOX_COLS)} FROM webhook_outbox ORDER BY id",
        ("COUNT(*)", "COALESCE(SUM(id), 0)", "COALESCE(SUM(attempts), 0)", "COALESCE(SUM(dead), 0)"),
        convert=_outbox_row,
    ),
    # the last /healthz write probe: a chatd started on the target may have written one
    Table("health", ("id", "ts"), "SELECT id, ts FROM health", prepare="DELETE FROM health"),
)

# SQLite tables with no table of their own on PostgreSQL, and what stands in for them.
NOT_COPIED: dict[str, str] = {
    "message_log": "its ids are the messages' log_id",
    "messages_fts": "PostgreSQL indexes each message's text itself (messages.search)",
    "search_state": "the SQLite search indexer's position (PostgreSQL indexes as it writes)",
    "order_words": "PostgreSQL's own order_words is kept by a trigger on orders as they are copied",
    "order_words_fts": "PostgreSQL indexes order_words itself (order_words.search)",
    "email_words": "PostgreSQL searches contacts' e-mails through an index on contacts",
    "email_words_fts": "PostgreSQL searches contacts' e-mails through an index on contacts",
}
# PostgreSQL tables with no rows of their own to copy: kept by triggers from what is copied.
DERIVED: dict[str, str] = {"order_words": "its trigger on orders fills it as orders are copied"}
_FTS_SHADOW = ("messages_fts_", "order_words_fts_", "email_words_fts_")  # FTS5's own tables behind each index
# PostgreSQL identity columns, set past the copied ids
SEQUENCES: tuple[tuple[str, str], ...] = (("messages", "log_id"), ("webhook_outbox", "id"))
# tables whose rows mean "this database is in use": the copy refuses a target holding any
DATA_TABLES = tuple(t.name for t in TABLES if t.name != "health")


@dataclass
class Report:
    source: str
    target: str  # without its password
    schema_version: int
    tables: list[tuple[str, int, int]] = field(default_factory=list)  # (table, source rows, target rows)
    sequences: dict[str, int] = field(default_factory=dict)  # "table.column" -> the next value's predecessor
    seconds: float = 0.0

    def summary(self) -> str:
        lines = [
            f"copied {self.source} -> {self.target} (PostgreSQL schema version {self.schema_version})",
            f"  {'table':<22}{'source':>10}{'target':>10}",
        ]
        lines += [f"  {name:<22}{src:>10}{dst:>10}" for name, src, dst in self.tables]
        lines.append("not copied:")
        lines += [f"  {k}: {v}" for k, v in NOT_COPIED.items()]
        if self.sequences:
            lines.append("sequences: " + ", ".join(f"{k} continues after {v}" for k, v in self.sequences.items()))
        lines.append(
            "attachment files are not in the database: set [attachments] dir of the PostgreSQL "
            "configuration to the directory the SQLite installation used (default: attachments "
            "beside the SQLite file)"
        )
        lines.append(f"every table's rows match ({self.seconds:.1f} s)")
        return "\n".join(lines)


def source_path(url: str) -> Path:
    """`sqlite:///absolute/path` (as `[store] url` takes it) or a plain file path."""
    if url.startswith("sqlite://"):
        path = url[len("sqlite://") :]
        if not path.startswith("/") or len(path) < 2:
            raise CopyError("--from: sqlite:///absolute/path/to/chatd.sqlite3 (or a plain file path)")
        return Path(path)
    if "://" in url:
        raise CopyError("--from must be a SQLite database: sqlite:///path/to/chatd.sqlite3")
    return Path(url)


def redact(url: str) -> str:
    """`url` without its password."""
    parts = urllib.parse.urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{parts.username or ''}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))


class Source:
    """The SQLite file, opened read-only. With its -wal or -shm beside it (a
    chatd has it open, or died without checkpointing) it is read through
    them; without them nothing has it open and the file alone is complete,
    so it is read as immutable: no -wal or -shm is created beside it (they
    would belong to whoever ran the copy). `changed` tells a write since."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._sidecars = [path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")]
        self.immutable = not any(p.exists() for p in self._sidecars)
        uri = "file:" + urllib.parse.quote(str(path.resolve())) + "?mode=ro"
        if self.immutable:
            uri += "&immutable=1"
        self._stat = self._file_stat()
        self.db = sqlite3.connect(uri, uri=True, isolation_level=None)
        try:
            self.db.execute("PRAGMA query_only = 1")
            self._version: int = self.db.execute("PRAGMA data_version").fetchone()[0]
        except sqlite3.Error as exc:
            self.db.close()
            raise CopyError(f"{path}: cannot read it as a SQLite database: {exc}") from exc

    def _file_stat(self) -> tuple[int, int]:
        st = self.path.stat()
        return st.st_mtime_ns, st.st_size

    def changed(self) -> bool:
        """Whether anything wrote to the file since it was opened (call outside a read transaction)."""
        if self.immutable:
            return self._file_stat() != self._stat or any(p.exists() for p in self._sidecars)
        version: int = self.db.execute("PRAGMA data_version").fetchone()[0]
        return version != self._version

    def close(self) -> None:
        self.db.close()


def open_source(path: Path) -> Source:
    """The SQLite file, read-only, checked: the current schema, no table this module does not know."""
    if not path.is_file():
        raise CopyError(f"{path}: no such file")
    src = Source(path)
    try:
        try:
            version = src.db.execute("PRAGMA user_version").fetchone()[0]
            tables = {r[0] for r in src.db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        except sqlite3.Error as exc:
            raise CopyError(f"{path}: cannot read it as a SQLite database: {exc}") from exc
        current = len(sqlite_migrations.MIGRATIONS)
        if "orders" not in tables:
            raise CopyError(f"{path} is not a chatd database (no orders table)")
        if version < current:
            raise CopyError(
                f"{path} has schema version {version}, this chatd writes {current}: start this "
                "chatd on it once (it migrates the file), stop it, then copy"
            )
        if version > current:
            raise CopyError(
                f"{path} has schema version {version}, newer than this chatd knows ({current}): "
                "copy it with the chatd that wrote it"
            )
        known = {t.name for t in TABLES} | set(NOT_COPIED)
        unknown = sorted(t for t in tables if t not in known and not t.startswith((*_FTS_SHADOW, "sqlite_")))
        if unknown:
            raise CopyError(f"{path} has tables this chatd cannot copy: {', '.join(unknown)}")
    except BaseException:
        src.close()
        raise
    return src


async def copy_store(
    source: str, target: str, batch: int = BATCH_ROWS, progress: Callable[[str], None] | None = None
) -> Report:
    """Copy the SQLite database `source` (URL or path) into the PostgreSQL
    database `target` (URL); the report says what went where. Raises CopyError."""
    if not target.startswith(("postgresql://", "postgres://")):
        raise CopyError("--to must be a PostgreSQL URL: postgresql://user:password@host:port/database")
    if batch < 1:
        raise CopyError("--batch must be at least 1")
    say = progress or (lambda _line: None)
    started = time.monotonic()
    path = source_path(source)
    src = open_source(path)
    try:
        try:
            conn = await asyncpg.connect(
                target, server_settings={"statement_timeout": "0", "application_name": "chatd migrate-store"}
            )
        except (TimeoutError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            raise CopyError(f"cannot reach {redact(target)}: {exc}") from exc
        try:
            report = Report(f"sqlite://{path.resolve()}", redact(target), await _migrate(conn))
            try:
                await _copy(src, conn, report, batch, say)
            except sqlite3.Error as exc:
                raise CopyError(f"reading the source failed, nothing was written: {exc}") from exc
            except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError) as exc:
                raise CopyError(f"the target failed, nothing was written: {exc}") from exc
            say("analyze (fresh planner statistics)")
            try:
                await conn.execute("ANALYZE " + ", ".join(t.name for t in TABLES))
            except asyncpg.PostgresError as exc:  # copied all the same; autovacuum analyzes later
                say(f"ANALYZE failed (the copy is complete): {exc}")
        finally:
            await conn.close()
    finally:
        src.close()
    report.seconds = time.monotonic() - started
    return report


async def _migrate(conn: asyncpg.Connection) -> int:
    try:
        await pg_migrations.migrate(conn)
        version: int = await conn.fetchval("SELECT version FROM chatd_schema")  # migrate() wrote it
    except asyncpg.PostgresError as exc:
        raise CopyError(f"cannot bring the target to chatd's schema: {exc}") from exc
    if version != len(pg_migrations.MIGRATIONS):
        raise CopyError(
            f"the target has chatd schema version {version}, this chatd knows "
            f"{len(pg_migrations.MIGRATIONS)}: copy with the chatd that wrote it"
        )
    return version


async def _copy(src: Source, conn: asyncpg.Connection, report: Report, batch: int, say: Callable[[str], None]) -> None:
    db = src.db
    db.execute("BEGIN")  # one snapshot of the source for every table
    try:
        async with conn.transaction():
            # nobody writes meanwhile (a chatd started on the target waits), and the emptiness holds
            await conn.execute(f"LOCK TABLE {', '.join(t.name for t in TABLES)} IN EXCLUSIVE MODE")
            held = [name for name in DATA_TABLES if await conn.fetchval(f"SELECT EXISTS (SELECT 1 FROM {name})")]
            if held:
                raise CopyError(
                    f"the target already holds chatd data (rows in {', '.join(held)}): nothing was written. "
                    "Copy into an empty database: create a new one (createdb), or drop and recreate this one"
                )
            for table in TABLES:
                n = await _copy_table(db, conn, table, batch, say)
                say(f"{table.name}: {n} rows")
            for tab, column in SEQUENCES:
                top = await conn.fetchval(f"SELECT MAX({column}) FROM {tab}")
                if top is not None:
                    await conn.execute("SELECT setval(pg_get_serial_sequence($1, $2), $3)", tab, column, top)
                    report.sequences[f"{tab}.{column}"] = top
            await _verify(db, conn, report)
            db.execute("COMMIT")  # the snapshot ends: a write since it began shows now
            if src.changed():
                raise CopyError(
                    "the SQLite file was written to while it was copied: stop every chatd using "
                    "it, then copy again (nothing was written)"
                )
    finally:
        if db.in_transaction:
            db.execute("COMMIT")


async def _copy_table(
    src: sqlite3.Connection, conn: asyncpg.Connection, table: Table, batch: int, say: Callable[[str], None]
) -> int:
    if table.prepare:
        await conn.execute(table.prepare)
    cur = src.execute(table.select)
    n = 0
    try:
        while rows := cur.fetchmany(batch):
            if table.convert is not None:
                rows = [table.convert(r) for r in rows]
            await conn.copy_records_to_table(table.name, records=rows, columns=list(table.columns))
            n += len(rows)
            if n % (batch * 20) == 0:
                say(f"{table.name}: {n} rows so far")
    except asyncpg.CharacterNotInRepertoireError as exc:
        raise CopyError(
            f"{table.name}: a text value PostgreSQL cannot hold (U+0000): {exc}; find it in the "
            "SQLite file (e.g. instr(text, char(0)) > 0), change it there, then copy again"
        ) from exc
    except (asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        raise CopyError(f"{table.name}: {exc}") from exc
    finally:
        cur.close()
    return n


async def _verify(src: sqlite3.Connection, conn: asyncpg.Connection, report: Report) -> None:
    """Every table's count and sums as in the source; the log ids too."""
    wrong: list[str] = []
    for table in TABLES:
        sql = f"SELECT {', '.join(table.checks)} FROM {table.name}"
        want = [int(v) for v in src.execute(sql).fetchone()]
        got = [int(v) for v in await conn.fetchrow(sql)]
        report.tables.append((table.name, want[0], got[0]))
        if want != got:
            wrong.append(f"{table.name} ({', '.join(table.checks)}: source {want}, target {got})")
    want_log = src.execute("SELECT COALESCE(MAX(id), 0) FROM message_log").fetchone()[0]
    got_log = await conn.fetchval("SELECT COALESCE(MAX(log_id), 0) FROM messages")
    if want_log != got_log:
        wrong.append(f"message log (newest id: source {want_log}, target {got_log})")
    if wrong:
        raise CopyError("the copy does not match its source, nothing was kept: " + "; ".join(wrong))
