"""Fixtures: every store test runs against SQLite (a real file) and PostgreSQL (a fresh schema)."""

from tests.support.stores import backend, pg_backend, store  # noqa: F401  (fixtures)
