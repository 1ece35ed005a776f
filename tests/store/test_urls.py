"""open_store picks the backend from the URL; bad URLs get clear errors."""

from __future__ import annotations

import pytest

from router.store import open_store
from router.store.postgres import PostgresStore, parse_url
from router.store.sqlite import SQLiteStore


def test_sqlite_urls() -> None:
    relative = open_store("sqlite:///data/router.db")
    assert isinstance(relative, SQLiteStore) and relative.path == "data/router.db"
    absolute = open_store("sqlite:////var/lib/rr/router.db?busy_timeout=0.5")
    assert isinstance(absolute, SQLiteStore) and absolute.path == "/var/lib/rr/router.db"
    assert absolute.busy_timeout == 0.5
    memory = open_store("sqlite:///:memory:")
    assert isinstance(memory, SQLiteStore) and memory.path == ":memory:"


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("sqlite://", "sqlite URL must be"),
        ("sqlite:///", "sqlite URL must be"),
        ("sqlite://host/x.db", "sqlite URL must be"),
        ("sqlite:///x.db?journal=off", "unknown sqlite URL parameter"),
        ("sqlite:///x.db?busy_timeout=soon", "busy_timeout"),
        ("sqlite:///x.db?busy_timeout=-1", "busy_timeout"),
        ("postgresql://h/db?schema=Bad-Name", "invalid PostgreSQL schema"),
        ("postgresql://h/db?schema=a&schema=b", "more than one schema"),
        ("mysql://h/db", "unsupported store URL scheme 'mysql'"),
        ("/var/lib/x.db", "unsupported store URL scheme ''"),
    ],
)
def test_bad_urls(url: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        open_store(url)


def test_postgres_urls_keep_other_parameters_and_hide_secrets() -> None:
    store = open_store("postgresql://app:s3cret@db.internal:5433/rr?schema=tenant_1&sslmode=require")
    assert isinstance(store, PostgresStore) and store.schema == "tenant_1"
    assert "s3cret" not in repr(store) and "db.internal" in repr(store)
    assert parse_url("postgres://u@h/db?sslmode=require&schema=s") == (
        "postgres://u@h/db?sslmode=require",
        "s",
    )
    assert parse_url("postgresql://u@h/db") == ("postgresql://u@h/db", None)
    assert isinstance(open_store("postgres://u@h/db"), PostgresStore)
