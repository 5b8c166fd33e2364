"""Persistence: the store is the truth; everything else is a cache or a relay."""

from __future__ import annotations


def make_store(cfg, **hooks):
    """The configured backend (not opened yet): PostgreSQL when `[store] url`
    names one, else SQLite at `[store] path` (chatd.config folds sqlite URLs into it).
    `hooks` are the keyword values both backends take (events_for_message, ...)."""
    s = cfg.store
    if s.url.startswith(("postgresql://", "postgres://")):
        from chatd.store.postgres import PostgresStore

        return PostgresStore(s.url, s.pool_size, s.statement_timeout_s, s.max_batch, **hooks)
    from chatd.store.sqlite import SqliteStore

    return SqliteStore(s.path, s.synchronous, s.max_batch, **hooks)
