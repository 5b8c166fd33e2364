"""The store boundary: only chatd/store/ talks to a database driver, and
everything else types against the Store contract, never a backend class."""

from __future__ import annotations

import ast
from pathlib import Path

import chatd

ROOT = Path(chatd.__file__).parent
DRIVERS = {"sqlite3", "aiosqlite", "asyncpg", "psycopg"}


def _imports(path: Path) -> set[str]:
    out = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            out.add(node.module)
    return out


def _outside_store() -> list[Path]:
    return [p for p in ROOT.rglob("*.py") if "store" not in p.relative_to(ROOT).parts[:1]]


def test_no_database_driver_outside_the_store():
    found = {
        str(p.relative_to(ROOT)): sorted(m for m in _imports(p) if m.split(".")[0] in DRIVERS) for p in _outside_store()
    }
    assert {k: v for k, v in found.items() if v} == {}


def test_no_module_outside_the_store_names_a_backend():
    """chatd.store.make_store picks the backend from the config; the rest sees the contract."""
    found = [
        str(p.relative_to(ROOT))
        for p in _outside_store()
        if any(m.startswith(("chatd.store.sqlite", "chatd.store.postgres")) for m in _imports(p))
    ]
    assert found == []
