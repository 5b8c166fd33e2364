"""The PostgreSQL pool keeps a connection's session on release (no RESET ALL round
trip, chatd.store.postgres.engine._keep_session). That is safe only while chatd's
sessions hold nothing a reset would clear: the source is checked for what would,
and a connection given back inside a transaction is still rolled back."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from tests.contract.stores import make_store, put_order

ROOT = Path(__file__).resolve().parents[2] / "chatd"
# what outlives a transaction on a session: LISTEN, session advisory locks, a statement
# that is a session SET (not SET LOCAL), set_config(..., false), cursors WITH HOLD
SESSION_STATE = re.compile(
    r"\bLISTEN\b|pg_advisory_lock(_shared)?\(|(^|;)\s*SET\s+(?!LOCAL\b)|set_config\([^)]*false\s*\)|WITH\s+HOLD",
    re.IGNORECASE,
)


def _sql_strings(path: Path) -> list[tuple[int, str]]:
    """The string literals of a module but its docstrings (adjacent ones joined, as Python does)."""
    tree = ast.parse(path.read_text())
    docs = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
        and node.body
        and isinstance(node.body[0], ast.Expr)
    }
    return [
        (node.lineno, node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docs
    ]


def test_no_session_state_in_the_postgres_store():
    found = [
        f"{path.relative_to(ROOT.parent)}:{n}: {text[:80]}"
        for path in sorted((ROOT / "store" / "postgres").glob("*.py"))
        for n, text in _sql_strings(path)
        if SESSION_STATE.search(text)
    ]
    assert found == [], "session state outlives a pooled connection's release (see _keep_session)"


def test_the_guard_sees_session_state():
    for sql in ("LISTEN chatd", "SET statement_timeout = 5", "SELECT pg_advisory_lock(1)", "BEGIN; SET x TO 1"):
        assert SESSION_STATE.search(sql), sql
    for sql in ("SET LOCAL statement_timeout = 5", "SELECT pg_advisory_xact_lock(1)", "UPDATE t\n SET x = 1"):
        assert not SESSION_STATE.search(sql), sql


async def test_a_connection_released_in_a_transaction_comes_back_without_it():
    pytest.importorskip("asyncpg")
    from tests.support.postgres_server import new_database

    store = make_store("postgres", new_database())
    await store.open()
    try:
        pool = store._pool  # type: ignore[attr-defined]
        held = [await pool.acquire() for _ in range(pool.get_max_size())]
        for conn in held:
            await conn.execute("BEGIN")
            await conn.execute("CREATE TEMP TABLE leftover (x int)")
        for conn in held:
            await pool.release(conn)
        again = [await pool.acquire() for _ in range(pool.get_max_size())]
        try:
            for conn in again:
                assert not conn.is_in_transaction()
                assert await conn.fetchval("SELECT to_regclass('pg_temp.leftover')") is None
        finally:
            for conn in again:
                await pool.release(conn)
        await put_order(store, "o1")  # and the store goes on writing
        assert (await store.get_order("o1")) is not None
    finally:
        await store.aclose()
