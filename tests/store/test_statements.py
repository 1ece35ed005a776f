"""The SQL written once: the `:name` → `$n` translator, the SQLite rewrite, and every statement
accepted by both real databases (prepared, not run: statements no test path reaches are checked too)."""

from __future__ import annotations

import contextlib
import re
import sqlite3
from pathlib import Path

import asyncpg

from router.store import open_store, statements
from router.store.statements import Statement, for_sqlite, numbered
from tests.support.stores import PG_DSN, Backend


def all_statements() -> list[Statement]:
    found: list[Statement] = []
    for value in vars(statements).values():
        if isinstance(value, Statement):
            found.append(value)
        elif isinstance(value, tuple) and value and all(isinstance(item, Statement) for item in value):
            found.extend(value)
    return found


def test_names_are_numbered_once_each_in_order_of_first_use_and_casts_survive() -> None:
    text, names = numbered("a = :ref AND b <= :now AND c = :ref AND d = :next::float8 AND e = 'x::y'")
    assert text == "a = $1 AND b <= $2 AND c = $1 AND d = $3::float8 AND e = 'x::y'"
    assert names == ("ref", "now", "next")


def test_sqlite_form_rewrites_only_the_postgresql_constructs() -> None:
    text = "SELECT * FROM t WHERE s = ANY(:states::text[]) AND n = :n::integer OFFSET :keep FOR UPDATE"
    assert for_sqlite(text) == (
        "SELECT * FROM t WHERE s IN (SELECT value FROM json_each(:states)) AND n = :n LIMIT -1 OFFSET :keep"
    )


def test_no_statement_keeps_a_postgresql_construct_in_its_sqlite_form() -> None:
    assert len(all_statements()) > 30
    for statement in all_statements():
        assert not re.search(r"\$\d|::|\bANY\(|FOR UPDATE", statement.sqlite), statement.sqlite
        assert ":" not in re.sub(r"\$\d+::", "", statement.postgres).replace("'", ""), statement.postgres


async def test_every_statement_is_accepted_by_the_real_database(backend: Backend) -> None:
    store = await backend.opened()  # the migrated schema
    await store.close()
    if backend.name == "sqlite":
        with contextlib.closing(sqlite3.connect(backend.url.removeprefix("sqlite:///"))) as conn:
            for statement in all_statements():
                params = dict.fromkeys(re.findall(r"(?<![:\w]):(\w+)", statement.sqlite))
                conn.execute("EXPLAIN " + statement.sqlite, params)
        return
    conn = await asyncpg.connect(PG_DSN, timeout=5, server_settings={"search_path": backend.schema or ""})
    try:
        for statement in all_statements():
            prepared = await conn.prepare(statement.postgres)
            assert len(prepared.get_parameters()) == len(statement.names), statement.postgres
    finally:
        await conn.close()


async def test_a_claim_reads_the_due_index_in_its_order_without_sorting_the_backlog(tmp_path: Path) -> None:
    """SQLite's plan for CLAIM_EVENTS walks the (status, next_attempt_at) index in the ORDER BY's order and
    stops at the limit: no temporary B-tree, which would read and sort every due row (the whole backlog)."""
    store = open_store(f"sqlite:///{tmp_path}/plan.db")
    await store.open()  # the migrated schema
    await store.close()
    with contextlib.closing(sqlite3.connect(tmp_path / "plan.db")) as conn:
        params = dict.fromkeys(statements.CLAIM_EVENTS.names)
        plan = [row[3] for row in conn.execute("EXPLAIN QUERY PLAN " + statements.CLAIM_EVENTS.sqlite, params)]
    assert any("USING INDEX outbox_status_due" in step for step in plan), plan
    assert not any("TEMP B-TREE" in step for step in plan), plan
