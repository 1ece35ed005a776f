"""Persistence: one Store protocol, an embedded SQLite backend and a PostgreSQL backend."""

from __future__ import annotations

from urllib.parse import urlsplit

from router.store.base import Store


def open_store(url: str) -> Store:
    """The store for `url`, not yet opened (call `await store.open()`).

    `sqlite:///relative/path.db`, `sqlite:////absolute/path.db`, `sqlite:///:memory:`
    (optional `?busy_timeout=SECONDS`); `postgresql://user@host:port/db` or `postgres://…`
    (optional `?schema=NAME`; other query parameters go to asyncpg, e.g. `sslmode`).
    """
    scheme = urlsplit(url).scheme
    if scheme == "sqlite":
        from router.store.sqlite import SQLiteStore

        return SQLiteStore.from_url(url)
    if scheme in ("postgresql", "postgres"):
        from router.store.postgres import PostgresStore

        return PostgresStore.from_url(url)
    raise ValueError(f"unsupported store URL scheme {scheme!r}: use sqlite:///path.db or postgresql://…")
