"""`[store] url` and CHATD_STORE_URL pick the backend; a sqlite URL is a path."""

from __future__ import annotations

import pytest

from chatd.config import load
from chatd.store import make_store
from chatd.store.postgres import PostgresStore
from chatd.store.sqlite import SqliteStore

ENV = {"CHATD_AUTH_SECRET": "s" * 32, "CHATD_API_KEY": "k"}


def _write(tmp_path, store: str):
    path = tmp_path / "c.toml"
    path.write_text(f"[store]\n{store}\n")
    return path


def test_path_alone_is_sqlite(tmp_path):
    cfg = load(_write(tmp_path, f'path = "{tmp_path}/a.sqlite3"'), ENV)
    store = make_store(cfg)
    assert isinstance(store, SqliteStore) and store.path == f"{tmp_path}/a.sqlite3"


def test_a_sqlite_url_is_the_path(tmp_path):
    cfg = load(_write(tmp_path, f'url = "sqlite://{tmp_path}/b.sqlite3"'), ENV)
    assert cfg.store.path == f"{tmp_path}/b.sqlite3"
    assert isinstance(make_store(cfg), SqliteStore)


def test_a_postgresql_url_with_pool_and_timeout(tmp_path):
    cfg = load(
        _write(tmp_path, 'url = "postgresql://u:p@127.0.0.1:5432/chat"\npool_size = 3\nstatement_timeout_s = 2.5'), ENV
    )
    store = make_store(cfg)
    assert isinstance(store, PostgresStore)
    assert (store.url, store.pool_size, store.statement_timeout_s) == ("postgresql://u:p@127.0.0.1:5432/chat", 3, 2.5)


def test_the_environment_overrides_the_file(tmp_path):
    cfg = load(
        _write(tmp_path, f'url = "sqlite://{tmp_path}/b.sqlite3"'), {**ENV, "CHATD_STORE_URL": "postgres://h/db"}
    )
    assert isinstance(make_store(cfg), PostgresStore)


@pytest.mark.parametrize("url", ["mysql://h/db", "sqlite://relative.db", "sqlite:///"])
def test_a_bad_url_is_refused_at_start(tmp_path, url):
    with pytest.raises(ValueError, match=r"\[store\] url"):
        load(_write(tmp_path, f'url = "{url}"'), ENV)
