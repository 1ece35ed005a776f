"""SQLite group commit: the writes waiting together share one COMMIT, and one failing write fails alone."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from prometheus_client import REGISTRY

from router import metrics
from router.checkout.model import DuplicateRef, LeaseLost, SessionConflict, State
from router.store.sqlite import SQLiteStore
from router.store.sqlite_thread import MAX_GROUP
from tests.support.stores import checkout, event


@pytest.fixture
async def sqlite_store(tmp_path: Path) -> AsyncIterator[SQLiteStore]:
    store = SQLiteStore(tmp_path / "group.db")
    await store.open()
    try:
        yield store
    finally:
        await store.close()


@contextlib.asynccontextmanager
async def held(store: SQLiteStore) -> AsyncIterator[list[str]]:
    """The store's thread blocked while the body queues work; yields the statements run after release."""
    statements: list[str] = []
    gate = threading.Event()
    await store._run(lambda conn: conn.set_trace_callback(statements.append))
    blocker = asyncio.ensure_future(store._run(lambda conn: gate.wait(10)))
    await asyncio.sleep(0.05)  # the thread is inside the blocker now
    try:
        yield statements
    finally:
        gate.set()
        await blocker


def committed_states(path: Path) -> dict[str, str]:
    """What a second connection sees on the file: only committed data."""
    with contextlib.closing(sqlite3.connect(path)) as conn:
        return dict(conn.execute("SELECT ref, state FROM checkouts").fetchall())


async def test_queued_writes_share_one_commit_and_are_durable(sqlite_store: SQLiteStore, tmp_path: Path) -> None:
    refs = [f"r{i}" for i in range(20)]
    async with held(sqlite_store) as statements:
        creates = [asyncio.ensure_future(sqlite_store.create_checkout(checkout(ref))) for ref in refs]
        await asyncio.sleep(0.05)
        assert not any(task.done() for task in creates)  # queued behind the blocker
    await asyncio.gather(*creates)
    assert statements.count("COMMIT") == 1
    assert statements.count("BEGIN IMMEDIATE") == 1
    assert committed_states(tmp_path / "group.db") == dict.fromkeys(refs, "created")


async def test_a_failing_write_is_rolled_back_alone(sqlite_store: SQLiteStore, tmp_path: Path) -> None:
    for ref in ("a", "b", "c"):
        await sqlite_store.create_checkout(checkout(ref))
    await sqlite_store.bind_session("b", "S-other", now=1001.0)
    async with held(sqlite_store):
        ok_a = asyncio.ensure_future(sqlite_store.transition(
            "a", owner=None, now=1002.0, state=State.CANCELED, events=[event("e-a", type="checkout.canceled")]))
        conflict = asyncio.ensure_future(sqlite_store.bind_session("c", "S-other", now=1002.0))  # b has it
        lost = asyncio.ensure_future(sqlite_store.transition("c", owner="nobody", now=1002.0, state=State.COMPLETED,
                                                             events=[event("e-c")]))
        ok_b = asyncio.ensure_future(sqlite_store.try_lease("b", "me", now=1002.0, ttl=30.0))
    assert (await ok_a).state == State.CANCELED
    with pytest.raises(SessionConflict):
        await conflict
    with pytest.raises(LeaseLost):
        await lost
    leased = await ok_b
    assert leased is not None and leased.lease_owner == "me"
    assert committed_states(tmp_path / "group.db") == {"a": "canceled", "b": "created", "c": "created"}
    c = await sqlite_store.get_checkout("c")
    assert c is not None and c.checkout_session_id is None
    assert await sqlite_store.has_event("a", "checkout.canceled")
    assert not await sqlite_store.has_event("c", "checkout.completed")


async def test_a_read_queued_after_a_write_sees_it(sqlite_store: SQLiteStore) -> None:
    await sqlite_store.create_checkout(checkout("a"))
    async with held(sqlite_store):
        bind = asyncio.ensure_future(sqlite_store.bind_session("a", "S-1", now=1001.0))
        read = asyncio.ensure_future(sqlite_store.get_checkout("a"))
    await bind
    found = await read
    assert found is not None and found.checkout_session_id == "S-1"


async def test_a_failed_commit_fails_every_write_of_the_group(sqlite_store: SQLiteStore, tmp_path: Path) -> None:
    await sqlite_store.create_checkout(checkout("a"))
    other = sqlite3.connect(tmp_path / "group.db", isolation_level=None)
    await sqlite_store._run(lambda conn: conn.execute("PRAGMA busy_timeout = 100"))
    try:
        other.execute("BEGIN IMMEDIATE")  # another process holds the write lock past the busy timeout
        async with held(sqlite_store):
            writes = [asyncio.ensure_future(sqlite_store.create_checkout(checkout(f"n{i}"))) for i in range(3)]
        results = await asyncio.gather(*writes, return_exceptions=True)
        assert all(type(r).__name__ == "StoreUnavailable" for r in results), results
    finally:
        other.execute("ROLLBACK")
        other.close()
    assert committed_states(tmp_path / "group.db") == {"a": "created"}


async def test_many_queued_writes_all_resolve_each_only_once_committed(sqlite_store: SQLiteStore,
                                                                       tmp_path: Path) -> None:
    """More writes than one group holds: every caller gets its answer, and at the moment it does its row is
    on the file for another connection (the answer follows the COMMIT, never precedes it)."""
    refs = [f"m{i:03d}" for i in range(3 * MAX_GROUP + 5)]
    seen_at_answer: dict[str, bool] = {}

    def on_answer(ref: str) -> Callable[[asyncio.Future[None]], None]:
        return lambda _: seen_at_answer.__setitem__(ref, ref in committed_states(tmp_path / "group.db"))

    async with held(sqlite_store) as statements:
        creates = []
        for ref in refs:
            task = asyncio.ensure_future(sqlite_store.create_checkout(checkout(ref)))
            task.add_done_callback(on_answer(ref))
            creates.append(task)
        await asyncio.sleep(0.05)
    await asyncio.gather(*creates)
    assert seen_at_answer == dict.fromkeys(refs, True)
    assert statements.count("COMMIT") == statements.count("BEGIN IMMEDIATE") == 4  # groups of MAX_GROUP


async def test_a_failing_commit_fails_every_write_of_its_group_and_commits_none(sqlite_store: SQLiteStore,
                                                                                tmp_path: Path) -> None:
    """A deferred foreign key fails at COMMIT, after every job of the group ran without error."""

    def dangling_event(conn: sqlite3.Connection) -> None:
        conn.execute("PRAGMA defer_foreign_keys = ON")  # checked at COMMIT (it resets itself then)
        conn.execute("INSERT INTO outbox (id, ref, type, created, body, status, next_attempt_at) "
                     "VALUES ('e-x', 'no-such-ref', 't', 1, x'00', 'pending', 1)")

    async with held(sqlite_store):
        writes = [asyncio.ensure_future(sqlite_store.create_checkout(checkout(f"f{i}"))) for i in range(3)]
        writes.append(asyncio.ensure_future(sqlite_store._run(dangling_event, write=True)))
        writes += [asyncio.ensure_future(sqlite_store.create_checkout(checkout(f"g{i}"))) for i in range(2)]
        await asyncio.sleep(0.05)  # all queued behind the blocker: one group
    results = await asyncio.gather(*writes, return_exceptions=True)
    assert all(isinstance(r, sqlite3.IntegrityError) for r in results), results
    assert committed_states(tmp_path / "group.db") == {}
    await sqlite_store.create_checkout(checkout("after"))  # the connection is usable again
    assert committed_states(tmp_path / "group.db") == {"after": "created"}


async def test_writes_submitted_in_one_turn_of_the_loop_share_a_commit(sqlite_store: SQLiteStore,
                                                                        tmp_path: Path) -> None:
    """The thread is idle, yet the writes that tasks submit during one turn of the loop are handed over
    together and committed together (one wake-up, one fsync)."""
    statements: list[str] = []
    await sqlite_store._run(lambda conn: conn.set_trace_callback(statements.append))
    refs = [f"t{i}" for i in range(8)]
    await asyncio.gather(*(sqlite_store.create_checkout(checkout(ref)) for ref in refs))
    assert statements.count("BEGIN IMMEDIATE") == statements.count("COMMIT") == 1
    assert committed_states(tmp_path / "group.db") == dict.fromkeys(refs, "created")


async def test_a_write_submitted_just_before_close_is_committed_first(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "close.db")
    await store.open()
    write = asyncio.ensure_future(store.create_checkout(checkout("last")))
    await asyncio.sleep(0)  # the task has handed its job to the store, not yet to its thread
    await store.close()
    await write
    assert committed_states(tmp_path / "close.db") == {"last": "created"}


def commits_and_writes() -> tuple[float, float]:
    """The SQLite commit series as they stand (the registry is the process's, shared by every test)."""
    return (REGISTRY.get_sample_value("return_router_sqlite_commit_seconds_count") or 0.0,
            REGISTRY.get_sample_value("return_router_sqlite_writes_total") or 0.0)


async def test_the_metrics_count_one_commit_and_the_writes_it_committed(sqlite_store: SQLiteStore) -> None:
    await sqlite_store.create_checkout(checkout("a"))
    await sqlite_store.bind_session("a", "S-a", now=1001.0)
    before = commits_and_writes()
    async with held(sqlite_store):
        ok = [asyncio.ensure_future(sqlite_store.create_checkout(checkout(f"ok{i}"))) for i in range(3)]
        conflict = asyncio.ensure_future(sqlite_store.create_checkout(checkout("a")))  # rolled back alone
    await asyncio.gather(*ok)
    with pytest.raises(Exception, match="a"):
        await conflict
    after = commits_and_writes()
    assert (after[0] - before[0], after[1] - before[1]) == (1, 3)


async def test_a_failed_commit_counts_nothing(sqlite_store: SQLiteStore, tmp_path: Path) -> None:
    other = sqlite3.connect(tmp_path / "group.db", isolation_level=None)
    await sqlite_store._run(lambda conn: conn.execute("PRAGMA busy_timeout = 100"))
    before = commits_and_writes()
    try:
        other.execute("BEGIN IMMEDIATE")
        with pytest.raises(Exception, match="unavailable"):
            await sqlite_store.create_checkout(checkout("n"))
    finally:
        other.execute("ROLLBACK")
        other.close()
    assert commits_and_writes() == before


async def test_a_failing_metric_never_fails_a_committed_write(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(writes: int, seconds: float) -> None:
        raise RuntimeError("metrics down")

    monkeypatch.setattr(metrics, "sqlite_committed", broken)
    store = SQLiteStore(tmp_path / "m.db")
    await store.open()
    try:
        await store.create_checkout(checkout("kept"))
    finally:
        await store.close()
    assert committed_states(tmp_path / "m.db") == {"kept": "created"}


async def test_a_group_that_succeeds_runs_without_savepoints(sqlite_store: SQLiteStore) -> None:
    async with held(sqlite_store) as statements:
        creates = [asyncio.ensure_future(sqlite_store.create_checkout(checkout(f"s{i}"))) for i in range(5)]
    await asyncio.gather(*creates)
    assert statements.count("BEGIN IMMEDIATE") == 1 and statements.count("COMMIT") == 1
    assert not [s for s in statements if s.startswith(("SAVEPOINT", "RELEASE", "ROLLBACK"))]


async def test_a_group_with_a_failing_write_is_run_again_each_in_a_savepoint(sqlite_store: SQLiteStore,
                                                                             tmp_path: Path) -> None:
    await sqlite_store.create_checkout(checkout("taken"))
    async with held(sqlite_store) as statements:
        first = asyncio.ensure_future(sqlite_store.create_checkout(checkout("new-1")))
        duplicate = asyncio.ensure_future(sqlite_store.create_checkout(checkout("taken")))
        last = asyncio.ensure_future(sqlite_store.create_checkout(checkout("new-2")))
    await first
    await last
    with pytest.raises(DuplicateRef):
        await duplicate
    # the first try, rolled back at the duplicate; the second, each write in its savepoint; one COMMIT
    assert [s for s in statements if s in ("BEGIN IMMEDIATE", "ROLLBACK", "COMMIT")] == [
        "BEGIN IMMEDIATE", "ROLLBACK", "BEGIN IMMEDIATE", "COMMIT"]
    assert statements.count("SAVEPOINT job") == 3 and statements.count("ROLLBACK TO job") == 1
    assert committed_states(tmp_path / "group.db") == dict.fromkeys(("taken", "new-1", "new-2"), "created")


# --- a group of writes ends as the same writes run one at a time -------------------------------------

REFS = ("a", "b", "c")
SESSIONS = ("S-1", "S-2")
OWNERS = ("w1", "w2", None)
Op = tuple[str, str, str | None]  # (kind, ref, session or owner)
OPS = st.one_of(
    st.tuples(st.just("create"), st.sampled_from(REFS), st.none()),
    st.tuples(st.just("bind"), st.sampled_from(REFS), st.sampled_from(SESSIONS)),
    st.tuples(st.just("lease"), st.sampled_from(REFS), st.sampled_from(OWNERS[:2])),
    st.tuples(st.just("complete"), st.sampled_from(REFS), st.sampled_from(OWNERS)),
    st.tuples(st.just("cancel"), st.sampled_from(REFS), st.none()),
)


def _write(store: SQLiteStore, op: Op, index: int) -> Awaitable[object]:
    kind, ref, arg = op
    now = 1000.0 + index
    if kind == "create":
        return store.create_checkout(checkout(ref))
    if kind == "bind":
        return store.bind_session(ref, arg or "", now=now)
    if kind == "lease":
        return store.try_lease(ref, arg or "", now=now, ttl=30.0)
    if kind == "complete":  # its event id repeats when the same ref completes twice: a unique violation
        return store.transition(ref, owner=arg, now=now, state=State.COMPLETED, events=[event(f"e-{ref}")])
    return store.cancel_unbound(ref, now, {"reason_code": "BuyerCanceled"}, [event(f"c-{ref}-{index}",
                                                                                   type="checkout.canceled")])


def _outcome(result: object) -> object:
    return type(result).__name__ if isinstance(result, BaseException) else result


def _dump(path: Path) -> list[tuple[object, ...]]:
    with contextlib.closing(sqlite3.connect(path)) as conn:
        checkouts = conn.execute("SELECT * FROM checkouts ORDER BY ref").fetchall()
        return [*checkouts, *conn.execute("SELECT * FROM outbox ORDER BY id")]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=st.lists(OPS, min_size=2, max_size=12))
@example(ops=[("complete", "c", None), ("create", "a", None), ("complete", "c", None)])  # fails after its UPDATE
def test_a_group_ends_as_its_writes_one_at_a_time(tmp_path_factory: pytest.TempPathFactory, ops: list[Op]) -> None:
    """Every write's answer (a value or the error's type) and the file's rows, grouped or not."""
    async def run(grouped: bool) -> tuple[list[object], list[tuple[object, ...]]]:
        path = tmp_path_factory.mktemp("group") / "g.db"
        store = SQLiteStore(path)
        await store.open()
        try:
            await store.create_checkout(checkout("c"))  # one ref exists from the start
            if grouped:
                async with held(store):
                    writes = [asyncio.ensure_future(_write(store, op, i)) for i, op in enumerate(ops)]
                results = await asyncio.gather(*writes, return_exceptions=True)
            else:
                results = []
                for i, op in enumerate(ops):
                    results += await asyncio.gather(_write(store, op, i), return_exceptions=True)
        finally:
            await store.close()
        return [_outcome(r) for r in results], _dump(path)

    assert asyncio.run(run(grouped=True)) == asyncio.run(run(grouped=False))
