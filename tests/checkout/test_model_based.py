"""A model-based test of the checkout state machine (issue 8).

Hypothesis drives the REAL CheckoutService and Reconciler on a real store (a SQLite file, a PostgreSQL
schema) against the real emulator in-process, through a transport that injects Amazon's failures (5xx,
429, no answer, an answer lost after Amazon acted, a non-httpx error, an answer arriving after the lease
ran out). Rules: buyers' returns, the app's finalize and polls, cancel-URL visits, made-up session ids,
another order's real session sent with a ref, reconciler passes, Amazon settling a pending charge, an
instance dying mid-finalize (its lease left to expire) and the clock moving past leases, resume delays
and the checkout's expiry.

After every step: Amazon charged each session at most once; no order is settled with another order's
session; a session Amazon completed is never left canceled, failed or expired; every state change wrote
exactly one event (none for a return to `created`), the last event tells the current state and none
contradicts it without `supersedes`; no lease outlives its holder by more than lease_seconds. At the end,
with Amazon healthy again, the reconciler settles every session Amazon completed.

RETURN_ROUTER_MODEL_STEPS (default 300 per backend) sets the number of steps, e.g. 20000 for a long run.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import time
import uuid
from collections.abc import Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar, cast

import asyncpg
import pytest
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from router.amazon_pay.errors import AmazonPayError
from router.checkout.model import Busy, Checkout, NewCheckout, SessionConflict, State
from router.checkout.reconciler import Reconciler
from router.checkout.service import CheckoutService, finalize_payload, idempotency_key
from router.store import open_store
from router.store.base import NewEvent, Store
from tests.checkout.conftest import FAULTS, Amazon, Clock, InjectedError, make_amazon
from tests.support.emulator import result_url_for
from tests.support.stores import PG_DSN, StoreWrapper, postgres_problem, with_query

T = TypeVar("T")
STEP_COUNT = 20
STEPS = int(os.environ.get("RETURN_ROUTER_MODEL_STEPS", "300"))
LEASE, RESUME_AFTER, TTL = 5.0, 15.0, 600.0
SCENARIOS = ("completed", "pending-then-authorized", "pending-then-declined", "declined", "buyer-canceled")
FAULT_PATTERNS = (
    *((kind,) for kind in (*FAULTS, "delayed")),
    ("5xx",) * 4,  # an outage through a whole return
    ("timeout",) * 4,
    ("lost", "5xx", "5xx", "5xx"),  # Amazon finalized, then went dark before we learned it
    ("lost", "timeout", "timeout", "timeout"),
    ("429", "429"),
)
# What a request may end with besides an outcome: 503 (Busy), 409 (another session), or the injected
# non-httpx error reaching the app's error handler; the invariants check that none of them did harm.
EXPECTED = (Busy, SessionConflict, InjectedError)
LOST = {State.CANCELED, State.FAILED, State.EXPIRED}  # never right for a session Amazon completed


class RecordingStore(StoreWrapper):
    """The real store, with every state change it makes written down (ref, before, after, events)."""

    def __init__(self, inner: Store) -> None:
        super().__init__(inner)
        self.changes: list[tuple[str, State | None, State, int]] = []

    async def transition(self, ref: str, *, owner: str | None, now: float, state: State,
                         changes: Mapping[str, Any] | None = None, events: Sequence[NewEvent] = (),
                         instead_after: tuple[str, Callable[[], Sequence[NewEvent]]] | None = None) -> Checkout:
        before = await self.inner.get_checkout(ref)
        after = await self.inner.transition(ref, owner=owner, now=now, state=state, changes=changes, events=events,
                                            instead_after=instead_after)
        self.changes.append((ref, before.state if before else None, after.state, len(events)))
        return after

    async def cancel_unbound(self, ref: str, now: float, changes: Mapping[str, Any],
                             events: Sequence[NewEvent]) -> Checkout | None:
        return self._unbound(ref, await self.inner.cancel_unbound(ref, now, changes, events), events)

    async def expire_unbound(self, ref: str, now: float, changes: Mapping[str, Any],
                             events: Sequence[NewEvent]) -> Checkout | None:
        return self._unbound(ref, await self.inner.expire_unbound(ref, now, changes, events), events)

    def _unbound(self, ref: str, after: Checkout | None, events: Sequence[NewEvent]) -> Checkout | None:
        """Record a change from created (unbound) when the store made one."""
        if after is not None:
            self.changes.append((ref, State.CREATED, after.state, len(events)))
        return after

    async def cancel_or_get(self, ref: str, now: float, changes: Mapping[str, Any],
                            events_for: Callable[[Checkout], Sequence[NewEvent]]) -> tuple[Checkout | None, bool]:
        made: list[NewEvent] = []

        def counted(canceled: Checkout) -> Sequence[NewEvent]:
            made[:] = events_for(canceled)
            return made

        after, canceled = await self.inner.cancel_or_get(ref, now, changes, counted)
        if canceled and after is not None:
            self.changes.append((ref, State.CREATED, after.state, len(made)))
        return after, canceled


@dataclass
class Order:
    ref: str
    session_id: str
    scenario: str


class CheckoutModel(RuleBasedStateMachine):
    backend = "sqlite"
    directory = Path(".")

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.clock = Clock()
        self.amazon: Amazon = make_amazon(self.clock, delay=LEASE + 1)
        self.schema: str | None = None
        if self.backend == "sqlite":
            url = f"sqlite:///{self.directory / (uuid.uuid4().hex + '.db')}"
        else:
            self.schema = f"rr_model_{secrets.token_hex(6)}"
            url = with_query(PG_DSN, schema=self.schema)
        self.inner = open_store(url)
        self.run(self.inner.open())
        self.aging: asyncpg.Connection | None = None  # PostgreSQL: ages leases as the test's clock moves
        if self.schema is not None:
            self.aging = self.run(asyncpg.connect(PG_DSN, timeout=5, server_settings={"search_path": self.schema}))
            self.amazon.faults.on_delay = self.age_leases
        self.store = RecordingStore(self.inner)
        self.instances = [self.start_instance(), self.start_instance()]
        self.dead: dict[str, float] = {}  # owner → when it died
        self.orders: list[Order] = []
        self.returned: set[str] = set()  # refs the buyer came back to with the genuine session

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return self.loop.run_until_complete(coro)

    def start_instance(self) -> tuple[CheckoutService, Reconciler]:
        service = CheckoutService(cast(Store, self.store), self.amazon.client, ttl_seconds=TTL, lease_seconds=LEASE,
                                  wait_seconds=0.0, clock=self.clock)
        return service, Reconciler(service, resume_after=RESUME_AFTER, clock=self.clock)

    def order(self, i: int) -> Order:
        return self.orders[i % len(self.orders)]

    def service(self, k: int) -> CheckoutService:
        return self.instances[k % len(self.instances)][0]

    # --- rules -----------------------------------------------------------------------------------

    @initialize(scenario=st.sampled_from(SCENARIOS))
    def first_order(self, scenario: str) -> None:
        self.register(scenario)

    @precondition(lambda self: len(self.orders) < 3)
    @rule(scenario=st.sampled_from(SCENARIOS))
    def register(self, scenario: str) -> None:
        amount = f"{len(self.orders) + 10}.00"
        new = NewCheckout(f"order-{len(self.orders)}", amount, "USD", "AuthorizeWithCapture", True)
        checkout = self.run(self.service(0).register(new))
        session = self.amazon.session(amount, scenario, pending_polls=1000,  # settles when the rule says
                                      result_return_url=result_url_for(checkout.ref))  # as the button's
        self.orders.append(Order(checkout.ref, session.session_id, scenario))

    @rule(i=st.integers(0, 2), k=st.integers(0, 1), during=st.sampled_from(((), *FAULT_PATTERNS)))
    def buyer_return(self, i: int, k: int, during: tuple[str, ...]) -> None:
        """The buyer's return (result page or the app's finalize), while Amazon behaves as `during` says."""
        order = self.order(i)
        self.amazon.faults.queue.extend(during)
        self.returned.add(order.ref)
        with contextlib.suppress(*EXPECTED):
            self.run(self.service(k).finalize(order.ref, order.session_id))

    @rule(i=st.integers(0, 2), k=st.integers(0, 1))
    def app_poll(self, i: int, k: int) -> None:
        """GET /v1/checkout-sessions/{id}?ref=: a pending checkout is refreshed from Amazon."""
        order, service = self.order(i), self.service(k)
        checkout = self.run(service.get(order.ref))
        if checkout is not None and checkout.checkout_session_id == order.session_id:
            with contextlib.suppress(*EXPECTED):
                self.run(service.refresh_pending(checkout))

    @rule(i=st.integers(0, 2), k=st.integers(0, 1))
    def cancel_visit(self, i: int, k: int) -> None:
        with contextlib.suppress(*EXPECTED):
            self.run(self.service(k).cancel(self.order(i).ref))

    @rule(i=st.integers(0, 2), k=st.integers(0, 1))
    def probe(self, i: int, k: int) -> None:
        """Someone with the ref makes up a session id (well-formed; Amazon has no such session)."""
        with contextlib.suppress(*EXPECTED):
            self.run(self.service(k).finalize(self.order(i).ref, str(uuid.uuid4())))

    @precondition(lambda self: len(self.orders) > 1)
    @rule(i=st.integers(0, 2), j=st.integers(0, 1), k=st.integers(0, 1))
    def another_orders_session(self, i: int, j: int, k: int) -> None:
        """Someone sends this order's ref with another order's real session (another amount), open or paid."""
        order = self.order(i)
        other = [o for o in self.orders if o.ref != order.ref][j % (len(self.orders) - 1)]
        with contextlib.suppress(*EXPECTED):
            self.run(self.service(k).finalize(order.ref, other.session_id))

    @rule(k=st.integers(0, 1))
    def reconciler_pass(self, k: int) -> None:
        with contextlib.suppress(*EXPECTED):  # Reconciler.run logs these and tries again next pass
            self.run(self.instances[k % len(self.instances)][1].run_once())

    @rule(i=st.integers(0, 2))
    def amazon_settles(self, i: int) -> None:
        for charge in self.amazon.core.state.charges.values():
            if charge.session_id == self.order(i).session_id:
                charge.polls_left = 0  # the next look sees the final state

    @rule(pattern=st.sampled_from(FAULT_PATTERNS))
    def amazon_fails(self, pattern: tuple[str, ...]) -> None:
        """The next Amazon requests fail like this (a return makes up to 4: 2 finalize, 2 getCheckoutSession)."""
        self.amazon.faults.queue.extend(pattern)

    @rule(i=st.integers(0, 2), k=st.integers(0, 1), sent=st.booleans())
    def instance_dies(self, i: int, k: int, sent: bool) -> None:
        """Instance k dies mid-finalize of order i: bound and leased, the finalize maybe sent, nothing stored."""
        order, k = self.order(i), k % len(self.instances)
        dying = self.instances[k][0]
        checkout = self.run(self.inner.get_checkout(order.ref))
        assert checkout is not None
        if checkout.state == State.CREATED and checkout.checkout_session_id in (None, order.session_id):
            try:
                self.run(self.inner.bind_session(order.ref, order.session_id, self.clock()))
            except SessionConflict:  # its session is bound to another order (sent with that ref): no bind
                leased = None
            else:
                leased = self.run(self.inner.try_lease(order.ref, dying.owner, self.clock(), LEASE))
            if leased is not None and sent:
                key = idempotency_key(order.ref, order.session_id)
                with contextlib.suppress(AmazonPayError, InjectedError):
                    self.run(self.amazon.client.finalize_checkout_session(order.session_id,
                                                                          finalize_payload(leased), key))
        self.dead[dying.owner] = self.lease_clock()
        self.instances[k] = self.start_instance()  # it starts again, with a new owner id

    @rule(seconds=st.sampled_from([LEASE + 1, RESUME_AFTER + 1, TTL]))
    def time_passes(self, seconds: float) -> None:
        self.advance(seconds)

    def advance(self, seconds: float) -> None:
        self.clock.now += seconds
        self.run(self.age_leases(seconds))

    async def age_leases(self, seconds: float) -> None:
        """Finalize leases on PostgreSQL run on the server's clock, which the test cannot move: each is
        moved `seconds` nearer its end instead, as the test's clock moves (SQLite's run on that clock)."""
        if self.aging is not None:
            await self.aging.execute("UPDATE checkouts SET lease_until = lease_until - $1::float8", seconds)

    def lease_clock(self) -> float:
        """The clock leases run on: the test's on SQLite; the PostgreSQL server's (on this host) otherwise."""
        return self.clock() if self.aging is None else time.time()

    # --- invariants ------------------------------------------------------------------------------

    def checkouts(self) -> list[Checkout]:
        found = [self.run(self.inner.get_checkout(order.ref)) for order in self.orders]
        return [c for c in found if c is not None]

    def events(self, ref: str) -> list[dict[str, Any]]:
        events = [e for e in self.run(self.inner.list_events(limit=1000)) if e.ref == ref]
        return [json.loads(e.body) for e in sorted(events, key=lambda e: e.seq)]

    @invariant()
    def amazon_charged_each_session_at_most_once(self) -> None:
        charges = [c.session_id for c in self.amazon.core.state.charges.values()]
        assert len(charges) == len(set(charges)), charges

    @invariant()
    def a_completed_session_is_never_lost(self) -> None:
        for order, checkout in zip(self.orders, self.checkouts(), strict=True):
            session = self.amazon.core.state.sessions[order.session_id]
            if session.state == "Completed":
                assert checkout.state not in LOST, (order.scenario, checkout.state, checkout.reason_code)

    @invariant()
    def no_order_is_settled_with_another_orders_session(self) -> None:
        """(A made-up id may be left on an order expired meanwhile: Amazon knows no such session.)"""
        sessions = {order.session_id for order in self.orders}
        for order, checkout in zip(self.orders, self.checkouts(), strict=True):
            if checkout.state != State.CREATED and checkout.checkout_session_id in sessions:
                assert checkout.checkout_session_id == order.session_id, (order.scenario, checkout.state)

    @invariant()
    def one_event_per_state_change_and_none_contradicts(self) -> None:
        for i, (ref, before, after, events) in enumerate(self.store.changes):
            if before == after == State.PENDING and events == 0:  # a charge id learned: no news to tell
                continue
            if after == State.CREATED or events == 1:
                assert events == (0 if after == State.CREATED else 1), (before, after, events)
            else:  # the buyer's cancel restored after a made-up session: announced once, earlier
                assert after == State.CANCELED and events == 0, (before, after, events)
                assert (ref, State.CREATED, State.CANCELED, 1) in self.store.changes[:i]
        for checkout in self.checkouts():
            changes = [c for c in self.store.changes if c[0] == checkout.ref and c[3] == 1]
            events = self.events(checkout.ref)
            assert [e["data"]["state"] for e in events] == [c[2] for c in changes]
            if checkout.state != State.CREATED:
                assert events and events[-1]["data"]["state"] == checkout.state
            seen_cancel = False
            for event in events:
                if seen_cancel and event["type"] != "checkout.canceled":
                    assert event.get("supersedes") == "checkout.canceled", events
                seen_cancel = seen_cancel or event["type"] == "checkout.canceled"

    @invariant()
    def no_lease_outlives_its_holder(self) -> None:
        now = self.lease_clock()
        for checkout in self.checkouts():
            if checkout.lease_owner is None or checkout.lease_until is None or checkout.lease_until <= now:
                continue
            died = self.dead.get(checkout.lease_owner)
            assert died is not None, f"live instance left a lease on {checkout.state} after its call"
            assert checkout.lease_until <= died + LEASE

    def teardown(self) -> None:
        """Amazon is healthy again: the reconciler finishes what it can, then each buyer who came back
        reloads the result page. A checkout still in its window shows what Amazon says, never a cancel
        that the buyer did not make on Amazon's page."""
        try:
            self.amazon.faults.queue.clear()
            for _ in range(3):
                self.advance(RESUME_AFTER + LEASE + 1)
                self.run(self.instances[0][1].run_once())
            for order in self.orders:
                if order.ref in self.returned:
                    with contextlib.suppress(SessionConflict):  # a probe's binding waits for the reconciler
                        self.run(self.service(1).finalize(order.ref, order.session_id))
            for order, checkout in zip(self.orders, self.checkouts(), strict=True):
                amazon_state = self.amazon.core.state.sessions[order.session_id].state
                if amazon_state == "Completed":
                    assert checkout.state in (State.COMPLETED, State.AUTHORIZED, State.PENDING, State.DECLINED), (
                        order.scenario, checkout.state)
                in_window = checkout.expires_at > self.clock()
                if order.ref in self.returned and in_window and order.scenario != "buyer-canceled":
                    assert checkout.state != State.CANCELED, (order.scenario, checkout.state)
        finally:
            self.run(self.amazon.client.aclose())
            self.run(self.inner.close())
            if self.aging is not None:
                self.run(self.aging.close())
            if self.schema is not None:
                self.run(_drop_schema(self.schema))
            self.loop.close()


async def _drop_schema(schema: str) -> None:
    conn = await asyncpg.connect(PG_DSN, timeout=5)
    try:
        await conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
    finally:
        await conn.close()


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_checkout_state_machine(backend: str, tmp_path: Path) -> None:
    if backend == "postgres":
        problem = asyncio.run(postgres_problem())
        if problem:
            pytest.skip(problem)

    class Machine(CheckoutModel):
        pass

    Machine.backend, Machine.directory = backend, tmp_path
    run_state_machine_as_test(Machine, settings=settings(
        max_examples=max(1, STEPS // STEP_COUNT), stateful_step_count=STEP_COUNT, deadline=None,
        suppress_health_check=list(HealthCheck), database=None,
        # Shrinking replays hundreds of runs on a real database: minutes. A failure prints its whole
        # (short) step sequence instead; RETURN_ROUTER_MODEL_SHRINK=1 shrinks it for a long run.
        phases=tuple(Phase) if os.environ.get("RETURN_ROUTER_MODEL_SHRINK") else
        (Phase.explicit, Phase.reuse, Phase.generate)))
