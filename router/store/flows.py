"""The store's decisions, written once as sans-IO flows.

A flow is a generator that yields a Step (a statement and its parameters) and receives its Result (the
rows, or how many rows it changed), then decides what to run next or what to return or raise. Each
backend drives flows with its own I/O: SQLite synchronously in its one thread inside one BEGIN
IMMEDIATE transaction, PostgreSQL asynchronously on one pooled connection (the shape of httpx's
auth flows). Unique violations are named by the backend and mapped here, once.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Generator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from router.checkout.model import (
    Checkout,
    CheckoutError,
    DuplicateRef,
    LeaseLost,
    NotFound,
    SessionConflict,
    State,
)
from router.store import statements as sql
from router.store.base import REJECTED_PER_REF, Binding, DueResume, OutboxEvent, StoreError
from router.store.records import Row, checkout_from_row, event_from_row
from router.store.statements import Statement

T = TypeVar("T")


@dataclass(frozen=True)
class Step:
    statement: Statement
    params: Mapping[str, Any] = field(default_factory=dict)
    many: Sequence[Mapping[str, Any]] | None = None  # run once per parameter set instead (executemany)


@dataclass(frozen=True)
class Result:
    rows: Sequence[Row]
    count: int  # rows returned, or rows changed by a statement without RETURNING

    def first(self) -> Row | None:
        return self.rows[0] if self.rows else None


Flow = Generator[Step, Result, T]


def run(statement: Statement, **params: Any) -> Generator[Step, Result, Result]:
    return (yield Step(statement, params))


def drive(flow: Flow[T], execute: Callable[[Step], Result]) -> T:
    """Run `flow` to its end, executing each step synchronously (SQLite's thread)."""
    try:
        step = next(flow)
        while True:
            step = flow.send(execute(step))
    except StopIteration as stop:
        return stop.value  # type: ignore[no-any-return]
    finally:
        flow.close()


async def drive_async(flow: Flow[T], execute: Callable[[Step], Awaitable[Result]]) -> T:
    """Run `flow` to its end, awaiting each step (asyncpg)."""
    try:
        step = next(flow)
        while True:
            step = flow.send(await execute(step))
    except StopIteration as stop:
        return stop.value  # type: ignore[no-any-return]
    finally:
        flow.close()


# The unique constraints a write may violate (named table.column by the backends), as domain errors.
_VIOLATIONS: dict[str, Callable[[], StoreError | CheckoutError]] = {
    "checkouts.ref": lambda: DuplicateRef("a checkout with this ref exists"),
    "checkouts.checkout_session_id": lambda: SessionConflict("the checkout session is bound to another checkout"),
    "outbox.id": lambda: StoreError("an outbox event with this id exists"),
}


def violation(constraint: str | None, detail: str) -> StoreError | CheckoutError:
    """The error for a violated constraint (`table.column`, None when the backend cannot tell)."""
    make = _VIOLATIONS.get(constraint or "")
    return make() if make else StoreError(f"integrity error: {detail}")


# --- single statements -------------------------------------------------------------------------------


def rows(statement: Statement, **params: Any) -> Flow[Sequence[Row]]:
    return (yield from run(statement, **params)).rows


def count(statement: Statement, **params: Any) -> Flow[int]:
    return (yield from run(statement, **params)).count


def checkouts(statement: Statement, **params: Any) -> Flow[list[Checkout]]:
    return [checkout_from_row(row) for row in (yield from rows(statement, **params))]


def counts(statements: Sequence[Statement], **params: Any) -> Flow[int]:
    """Run each statement in turn; how many rows they changed together."""
    total = 0
    for statement in statements:
        total += yield from count(statement, **params)
    return total


# --- checkouts ---------------------------------------------------------------------------------------


def bind_session(ref: str, session: str, now: float) -> Flow[Checkout]:
    row = (yield from run(sql.LOCK_CHECKOUT, ref=ref)).first()
    if row is None:
        raise NotFound("unknown checkout ref")
    bound = row["checkout_session_id"]
    if bound == session:
        return checkout_from_row(row)
    if bound is not None:
        raise SessionConflict("the checkout is bound to another checkout session")
    row = (yield from run(sql.BIND_SESSION, ref=ref, session=session, now=now)).first()
    assert row is not None  # locked (or write-locked) above
    return checkout_from_row(row)


def lease_params(owner: str | None, now: float, ttl: float, reclaim: bool) -> dict[str, Any]:
    """TRY_LEASE's parameters (until: SQLite's, ttl: PostgreSQL's, which ends it on the server's clock)."""
    return {"owner": owner, "now": now, "until": now + ttl, "ttl": ttl, "reclaim": owner if reclaim else None}


def bind_and_lease(ref: str, session: str, owner: str | None, now: float, ttl: float,
                   reclaim: bool = False) -> Flow[Binding]:
    """bind_session, then (with an owner, still created) try_lease: one transaction for a buyer's return."""
    lease = lease_params(owner, now, ttl, reclaim)
    row = (yield from run(sql.LOCK_FOR_LEASE, ref=ref, now=now, reclaim=lease["reclaim"])).first()
    if row is None:
        raise NotFound("unknown checkout ref")
    bound, free = row["checkout_session_id"], bool(row["lease_free"])  # free: judged by the database (its clock)
    if bound is None and (yield from rows(sql.SESSION_REJECTED, ref=ref, session=session, now=now)):
        return Binding(checkout_from_row(row), rejected=True)
    if bound is not None and bound != session:
        raise SessionConflict("the checkout is bound to another checkout session")
    if bound is None and row["state"] not in (State.CREATED, State.CANCELED):
        # Settled without a session (expired unused): nothing is left to pay, and a session bound to it
        # would be held away from the order it was made for (the ids are unique).
        return Binding(checkout_from_row(row))
    if bound is None and row["state"] == State.CANCELED:
        # Canceled through the cancel URL (Amazon's cancels need a bound session), yet the buyer came back
        # from Amazon: the payment wins. Reopened in this transaction, so no concurrent return reads the cancel.
        row = (yield from run(sql.REOPEN_CANCELED, ref=ref, now=now)).first()
        assert row is not None  # locked (or write-locked) above
    if bound is None and owner is not None and row["state"] == State.CREATED and free:
        # try_lease would succeed (the row is locked): bind and lease in one statement instead of two
        row = (yield from run(sql.BIND_AND_LEASE, ref=ref, session=session, **lease)).first()
        assert row is not None  # locked (or write-locked) above
        return Binding(checkout_from_row(row), newly_bound=True, leased=True)
    if bound is None:
        row = (yield from run(sql.BIND_SESSION, ref=ref, session=session, now=now)).first()
        assert row is not None  # locked (or write-locked) above
    if owner is not None and row["state"] == State.CREATED:
        leased = (yield from run(sql.TRY_LEASE, ref=ref, **lease)).first()
        if leased is not None:
            return Binding(checkout_from_row(leased), newly_bound=bound is None, leased=True)
    return Binding(checkout_from_row(row), newly_bound=bound is None)


def transition(params: Mapping[str, Any], events: Sequence[Mapping[str, Any]],
               instead: tuple[str, Callable[[], Sequence[Mapping[str, Any]]]] | None = None) -> Flow[Checkout]:
    """`instead`: (event type, make): write make() in place of `events` when the checkout has such an event."""
    if instead is not None and (yield from rows(sql.HAS_EVENT, ref=params["ref"], type=instead[0])):
        events = instead[1]()
    statement = sql.TRANSITION_FREE if params["owner"] is None else sql.TRANSITION_OWNED
    row = (yield from run(statement, **params)).first()
    if row is None:
        if not (yield from rows(sql.CHECKOUT_EXISTS, ref=params["ref"])):
            raise NotFound("unknown checkout ref")
        raise LeaseLost("the finalize lease is held by someone else")
    yield from _insert_events(events)
    return checkout_from_row(row)


def settle_unbound(statement: Statement, params: Mapping[str, Any], events: Sequence[Mapping[str, Any]]
                   ) -> Flow[Checkout | None]:
    """CANCEL_UNBOUND or EXPIRE_UNBOUND, with `events` if it changed the row; None if it did not."""
    row = (yield from run(statement, **params)).first()
    if row is None:
        return None
    yield from _insert_events(events)
    return checkout_from_row(row)


def cancel_or_get(params: Mapping[str, Any], events_for: Callable[[Checkout], Sequence[Mapping[str, Any]]]
                  ) -> Flow[tuple[Checkout | None, bool]]:
    """cancel_unbound, with the events made from the canceled row; else the checkout as it is."""
    row = (yield from run(sql.CANCEL_UNBOUND, **params)).first()
    if row is None:
        return (yield from get_checkout(params["ref"])), False
    canceled = checkout_from_row(row)
    yield from _insert_events(events_for(canceled))
    return canceled, True


def _insert_events(events: Sequence[Mapping[str, Any]]) -> Flow[None]:
    if events:
        yield Step(sql.INSERT_EVENT, many=events)


def get_checkout(ref: str) -> Flow[Checkout | None]:
    found = yield from checkouts(sql.GET_CHECKOUT, ref=ref)
    return found[0] if found else None


def due_resumes(now: float, resume_after: float, limit: int) -> Flow[list[DueResume]]:
    found = yield from rows(sql.DUE_RESUMES, now=now, resume_after=resume_after, limit=limit)
    return [DueResume(checkout_from_row(row), int(row["resume_attempts"])) for row in found]


# --- outbox ------------------------------------------------------------------------------------------


def update_event(statement: Statement, **params: Any) -> Flow[None]:
    """Update one event; NotFound if no such event (a stale report on a known one is dropped)."""
    if (yield from count(statement, **params)) == 0 and not (yield from rows(sql.EVENT_EXISTS, id=params["id"])):
        raise NotFound("unknown event id")


def events(statement: Statement, **params: Any) -> Flow[list[OutboxEvent]]:
    return [event_from_row(row) for row in (yield from rows(statement, **params))]


# --- safety ------------------------------------------------------------------------------------------


def reject_session(ref: str, session: str, until: float, now: float) -> Flow[None]:
    yield from run(sql.REJECT_SESSION, ref=ref, session=session, now=now, until=until)
    yield from run(sql.DROP_EXPIRED_REJECTED, now=now)
    yield from run(sql.TRIM_REJECTED, ref=ref, keep=REJECTED_PER_REF)


def drop_oldest_checkouts(keep: int) -> Flow[int]:
    *dependents, checkouts_statement = sql.DROP_OLDEST
    for statement in dependents:
        yield from run(statement, keep=keep)
    return (yield from count(checkouts_statement, keep=keep))
