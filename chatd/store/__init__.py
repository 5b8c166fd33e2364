"""Persistence: the store is the truth; everything else is a cache or a relay."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from chatd.config import Config
    from chatd.store.base import Store


def make_store(cfg: Config, **hooks: Any) -> Store:
    """The configured backend (not opened yet): PostgreSQL when `[store] url`
    names one, else SQLite at `[store] path` (chatd.config folds sqlite URLs into it).
    `hooks` are the keyword values both backends take (events_for_message, ...)."""
    s = cfg.store
    if s.url.startswith(("postgresql://", "postgres://")):
        from chatd.store.postgres import PostgresStore

        return PostgresStore(s.url, s.pool_size, s.statement_timeout_s, s.max_batch, **hooks)
    from chatd.store.sqlite import SqliteStore

    return SqliteStore(s.path, s.synchronous, s.max_batch, **hooks)
