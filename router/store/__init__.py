"""Persistence: one Store protocol, an embedded SQLite backend and a PostgreSQL backend."""
