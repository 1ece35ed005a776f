"""CheckoutService's state machine in-process: a scripted AmazonPay (tests/support/fake_amazon.py) and a
real SQLite store in memory. The socket, emulator and process tests stay for what only they can show."""

from __future__ import annotations

import asyncio
import json
import logging
from collections import deque
from collections.abc import AsyncIterator
from typing import Any, cast

import pytest

from router.amazon_pay import deadline as amazon_deadline
from router.amazon_pay.errors import (
    AmazonPayCircuitOpen,
    AmazonPayDeadlineSpent,
    AmazonPayError,
    AmazonPayThrottled,
    AmazonPayTransportError,
)
from router.amazon_pay.models import FinalizeResult
from router.checkout.model import Busy, Checkout, NewCheckout, OutcomeError, State
from router.checkout.probes import LOOK_INTERVAL
from router.checkout.reconciler import Reconciler
from router.checkout.service import CheckoutService, NotBound, idempotency_key
from router.store import open_store
from router.store.base import Binding, Store, StoreUnavailable
from tests.support.fake_amazon import FakeAmazonPay, charge, error, finalized, session
from tests.support.stores import StoreWrapper
from tests.support.stores import checkout as stored_checkout

SID = "sess-0123456789abcdef"
ORDER = NewCheckout(merchant_reference="order-1", amount="14.00", currency="USD", payment_intent="Authorize",
                    can_handle_pending=True)


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def store() -> AsyncIterator[Store]:
    memory = open_store("sqlite:///:memory:")
    await memory.open()
    yield memory
    await memory.close()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def amazon() -> FakeAmazonPay:
    return FakeAmazonPay()


@pytest.fixture
def service(store: Store, amazon: FakeAmazonPay, clock: Clock) -> CheckoutService:
    return CheckoutService(store, amazon, ttl_seconds=3600, lease_seconds=90, wait_seconds=0.1, clock=clock)


async def stored(service: CheckoutService, checkout: Checkout) -> Checkout:
    found = await service.get(checkout.ref)
    assert found is not None
    return found


async def test_200_completes_once_and_a_repeat_return_makes_no_call(service: CheckoutService,
                                                                    amazon: FakeAmazonPay) -> None:
    checkout = await service.register(ORDER)
    amazon.finalizes.append(finalized(SID))
    first = await service.finalize(checkout.ref, SID)
    again = await service.finalize(checkout.ref, SID)
    assert first.error is None and first.checkout.state == State.COMPLETED
    assert again.checkout.state == State.COMPLETED
    assert amazon.calls == [("finalize", SID, idempotency_key(checkout.ref, SID))]
    assert first.checkout.result is not None and first.checkout.result["buyerName"] == "Test Buyer"


async def test_202_is_pending_until_the_charge_settles(service: CheckoutService, amazon: FakeAmazonPay) -> None:
    checkout = await service.register(ORDER)
    amazon.finalizes.append(finalized(SID, 202, charge_id="S01-1-1-C1"))
    assert (await service.finalize(checkout.ref, SID)).checkout.state == State.PENDING
    amazon.charges.extend([charge("S01-1-1-C1", "AuthorizationInitiated"), charge("S01-1-1-C1", "Authorized")])
    still = await service.refresh_pending(await stored(service, checkout))
    assert still.state == State.PENDING
    settled = await service.refresh_pending(still)
    assert settled.state == State.AUTHORIZED
    assert amazon.operations() == ["finalize", "getCharge", "getCharge"]


async def test_a_decline_is_read_back_from_the_session(service: CheckoutService, amazon: FakeAmazonPay) -> None:
    checkout = await service.register(ORDER)
    amazon.finalizes.append(error(422, "CheckoutSessionCanceled"))
    amazon.sessions.append(session(SID, "Canceled", reason_code="Declined", ref=checkout.ref))
    outcome = await service.finalize(checkout.ref, SID)
    assert outcome.error is None and outcome.checkout.state == State.DECLINED
    assert outcome.checkout.reason_code == "Declined"


async def test_an_unknown_session_unbinds_and_a_repeated_probe_skips_amazon(service: CheckoutService,
                                                                           amazon: FakeAmazonPay) -> None:
    checkout = await service.register(ORDER)
    amazon.finalizes.append(error(404, "ResourceNotFound"))
    outcome = await service.finalize(checkout.ref, SID)
    assert outcome.error == OutcomeError.UNKNOWN_SESSION
    after = await stored(service, checkout)
    assert after.state == State.CREATED and after.checkout_session_id is None
    repeat = await service.finalize(checkout.ref, SID)
    assert repeat.error == OutcomeError.UNKNOWN_SESSION
    assert amazon.operations() == ["finalize"]  # Amazon's 404 is not read back, and the repeat never reached it


async def test_5xx_leaves_it_bound_and_resume_finishes_with_the_same_key(service: CheckoutService,
                                                                         amazon: FakeAmazonPay) -> None:
    checkout = await service.register(ORDER)
    amazon.finalizes.append(error(503, "ServiceUnavailable"))
    amazon.sessions.append(error(503, "ServiceUnavailable"))
    outcome = await service.finalize(checkout.ref, SID)
    assert outcome.error == OutcomeError.AMAZON_UNAVAILABLE
    bound = await stored(service, checkout)
    assert bound.state == State.CREATED and bound.checkout_session_id == SID
    amazon.finalizes.append(finalized(SID))
    assert (await service.resume(bound)).state == State.COMPLETED
    keys = {key for operation, _, key in amazon.calls if operation == "finalize"}
    assert keys == {idempotency_key(checkout.ref, SID)}


async def test_a_lease_lost_mid_call_takes_the_new_holders_result(store: Store, service: CheckoutService,
                                                                  amazon: FakeAmazonPay, clock: Clock) -> None:
    checkout = await service.register(ORDER)
    other_amazon = FakeAmazonPay(finalizes=deque([finalized(SID)]))
    other = CheckoutService(store, other_amazon, lease_seconds=90, clock=clock)

    async def slow_answer() -> object:
        clock.now += 120  # longer than the lease: the other instance takes over and finishes
        assert (await other.resume(await stored(service, checkout))).state == State.COMPLETED
        return finalized(SID)

    amazon.finalizes.append(slow_answer)
    outcome = await service.finalize(checkout.ref, SID)
    assert outcome.error is None and outcome.checkout.state == State.COMPLETED
    assert amazon.calls[0][2] == other_amazon.calls[0][2]  # one idempotency key: Amazon charged once


async def test_busy_while_another_instance_holds_the_lease(store: Store, service: CheckoutService,
                                                           amazon: FakeAmazonPay, clock: Clock) -> None:
    checkout = await service.register(ORDER)
    await store.bind_session(checkout.ref, SID, clock())
    assert await store.try_lease(checkout.ref, "another-instance", clock(), 90) is not None
    with pytest.raises(Busy):
        await service.finalize(checkout.ref, SID)
    assert amazon.calls == []


async def test_cancel_before_bind_then_the_payment_wins(service: CheckoutService, amazon: FakeAmazonPay) -> None:
    checkout = await service.register(ORDER)
    canceled = await service.cancel(checkout.ref)
    assert canceled is not None and canceled.checkout.state == State.CANCELED
    amazon.finalizes.append(finalized(SID))
    assert (await service.finalize(checkout.ref, SID)).checkout.state == State.COMPLETED


async def test_cancel_after_bind_finishes_the_return_instead(service: CheckoutService,
                                                             amazon: FakeAmazonPay) -> None:
    checkout = await service.register(ORDER)
    amazon.finalizes.append(error(503, "ServiceUnavailable"))
    amazon.sessions.append(error(503, "ServiceUnavailable"))
    assert (await service.finalize(checkout.ref, SID)).error == OutcomeError.AMAZON_UNAVAILABLE
    amazon.finalizes.append(finalized(SID))
    outcome = await service.cancel(checkout.ref)
    assert outcome is not None and outcome.checkout.state == State.COMPLETED


async def test_expiry_unbound_and_bound_past_the_window(service: CheckoutService, amazon: FakeAmazonPay,
                                                        clock: Clock) -> None:
    unbound = await service.register(ORDER)
    bound = await service.register(ORDER)
    clock.now += 3601
    assert (await service.expire(unbound)).state == State.EXPIRED
    amazon.sessions.append(error(404, "ResourceNotFound"))  # too late to finalize; Amazon forgot it
    outcome = await service.finalize(bound.ref, SID)
    assert outcome.checkout.state == State.EXPIRED
    assert amazon.operations() == ["getCheckoutSession"]  # never a finalize past the window


# --- defects found in the field review (payment safety) ------------------------------------------------


async def test_a_completed_session_whose_charge_cannot_be_read_is_pending_not_paid(
        service: CheckoutService, amazon: FakeAmazonPay) -> None:
    """The finalize's answer was lost; the session reads Completed, but getCharge fails. With pending
    authorization the charge may still be AuthorizationInitiated: pending (nothing ships), then polled."""
    checkout = await service.register(ORDER)  # can_handle_pending=True
    amazon.finalizes.append(error(503, "ServiceUnavailable"))
    amazon.sessions.append(session(SID, "Completed", charge_id="S01-1-1-C1", ref=checkout.ref))
    amazon.charges.append(error(503, "ServiceUnavailable"))
    outcome = await service.finalize(checkout.ref, SID)
    assert outcome.checkout.state == State.PENDING and outcome.checkout.charge_id == "S01-1-1-C1"
    amazon.charges.append(charge("S01-1-1-C1", "Declined", "HardDeclined"))
    amazon.sessions.append(session(SID, "Completed", charge_id="S01-1-1-C1", ref=checkout.ref))
    assert (await service.refresh_pending(outcome.checkout)).state == State.DECLINED
    # declined after pending: the session is read to see that it is this order's own
    assert amazon.operations() == ["finalize", "getCheckoutSession", "getCharge", "getCharge", "getCheckoutSession"]


async def test_without_pending_authorization_a_completed_session_is_paid_even_if_the_charge_is_unread(
        service: CheckoutService, amazon: FakeAmazonPay) -> None:
    checkout = await service.register(NewCheckout("order-2", "14.00", "USD", "AuthorizeWithCapture", False))
    amazon.finalizes.append(error(503, "ServiceUnavailable"))
    amazon.sessions.append(session(SID, "Completed", charge_id="S01-1-1-C1"))
    amazon.charges.append(error(503, "ServiceUnavailable"))
    assert (await service.finalize(checkout.ref, SID)).checkout.state == State.COMPLETED


async def test_a_200_whose_session_is_still_open_is_not_reported_paid(
        service: CheckoutService, amazon: FakeAmazonPay) -> None:
    checkout = await service.register(ORDER)
    amazon.finalizes.append(FinalizeResult(http_status=200, session=session(SID, "Open")))
    outcome = await service.finalize(checkout.ref, SID)
    assert outcome.error == OutcomeError.AMAZON_UNAVAILABLE
    after = await stored(service, checkout)
    assert after.state == State.CREATED and after.checkout_session_id == SID and after.lease_owner is None
    assert await service.store.list_events() == []


async def test_after_a_cancel_two_simultaneous_returns_both_see_the_payment(
        store: Store, amazon: FakeAmazonPay, clock: Clock) -> None:
    """The app and the browser come back at once after a cancel-URL visit, on two instances. The browser's
    instance is descheduled right after its bind; the app's return must not read the cancel meanwhile
    (the bind reopens the checkout in its own transaction)."""
    bound, go = asyncio.Event(), asyncio.Event()

    class PausedAfterBind(StoreWrapper):
        async def bind_and_lease(self, *args: Any, **options: Any) -> Binding:
            binding: Binding = await self.inner.bind_and_lease(*args, **options)
            bound.set()
            await go.wait()
            return binding

    browser_side = CheckoutService(PausedAfterBind(store), amazon, ttl_seconds=3600, clock=clock)
    app_side = CheckoutService(store, amazon, ttl_seconds=3600, wait_seconds=5, clock=clock)
    checkout = await app_side.register(ORDER)
    assert (await app_side.cancel(checkout.ref)) is not None
    amazon.finalizes.append(finalized(SID))
    browser = asyncio.create_task(browser_side.finalize(checkout.ref, SID))
    await bound.wait()
    app = asyncio.create_task(app_side.finalize(checkout.ref, SID))
    await asyncio.sleep(0.05)  # the app's return reads the checkout while the browser's is paused
    go.set()
    outcomes = await asyncio.gather(browser, app)
    assert [o.checkout.state for o in outcomes] == [State.COMPLETED, State.COMPLETED]
    assert amazon.operations() == ["finalize"]
    events = [json.loads(e.body) for e in sorted(await store.list_events(), key=lambda e: e.seq)]
    assert [e["type"] for e in events] == ["checkout.canceled", "checkout.completed"]
    assert events[1]["supersedes"] == "checkout.canceled"


async def test_a_made_up_session_id_does_not_undo_the_buyers_cancel(
        service: CheckoutService, amazon: FakeAmazonPay) -> None:
    checkout = await service.register(ORDER)
    assert (await service.cancel(checkout.ref)) is not None
    amazon.finalizes.append(error(404, "ResourceNotFound"))
    outcome = await service.finalize(checkout.ref, SID)
    assert outcome.error == OutcomeError.UNKNOWN_SESSION
    after = await stored(service, checkout)
    assert after.state == State.CANCELED and after.checkout_session_id is None and after.lease_owner is None
    assert after.reason_code == "BuyerCanceled"
    assert [e.type for e in await service.store.list_events()] == ["checkout.canceled"]
    amazon.finalizes.append(finalized("sess-genuine-0123456789"))  # the genuine return still wins
    assert (await service.finalize(checkout.ref, "sess-genuine-0123456789")).checkout.state == State.COMPLETED


async def test_every_pending_checkout_is_polled_however_many_there_are(
        store: Store, service: CheckoutService, amazon: FakeAmazonPay, clock: Clock) -> None:
    """More pending checkouts than one page of the store: one pass polls each of them once."""
    refs = [f"p{i:03d}" for i in range(130)]
    for ref in refs:
        await store.create_checkout(stored_checkout(ref, state=State.PENDING, checkout_session_id=f"sess-{ref}",
                                                    charge_id=f"C-{ref}", updated_at=clock.now - 60,
                                                    expires_at=clock.now + 3600))
    amazon.charges.extend(charge(f"C-{ref}", "AuthorizationInitiated") for ref in refs)
    await Reconciler(service, clock=clock).run_once()
    assert sorted(object_id for _, object_id, _ in amazon.calls) == [f"C-{ref}" for ref in refs]


async def test_an_unbound_checkout_past_its_window_expires_behind_many_open_ones(
        store: Store, service: CheckoutService, clock: Clock) -> None:
    for i in range(120):  # older updates, still in their window
        await store.create_checkout(stored_checkout(f"open{i:03d}", updated_at=clock.now - 600,
                                                    expires_at=clock.now + 3600))
    await store.create_checkout(stored_checkout("late", created_at=clock.now - 7200, updated_at=clock.now - 60,
                                                expires_at=clock.now - 1))
    assert await Reconciler(service, clock=clock).run_once() == 1
    late = await store.get_checkout("late")
    assert late is not None and late.state == State.EXPIRED


async def test_one_return_waits_for_amazon_up_to_one_deadline_in_all(
        service: CheckoutService, amazon: FakeAmazonPay) -> None:
    """The finalize and the session read after it share the deadline (not one deadline each)."""
    deadlines: list[float] = []

    async def failing_finalize() -> FinalizeResult:
        deadlines.append(amazon_deadline.deadline_for(60))
        raise error(503, "ServiceUnavailable")

    async def session_read() -> Any:
        await asyncio.sleep(0.01)
        deadlines.append(amazon_deadline.deadline_for(60))
        return session(SID)

    checkout = await service.register(ORDER)
    amazon.finalizes.append(failing_finalize)
    amazon.sessions.append(session_read)
    assert (await service.finalize(checkout.ref, SID)).checkout.state == State.COMPLETED
    assert len(deadlines) == 2 and deadlines[0] == deadlines[1]


def refused_here() -> AmazonPayThrottled:
    """The client's own quota refused the finalize: nothing was sent (attempts=0), as client._admit raises it."""
    return AmazonPayThrottled("finalizeCheckoutSession: quota used up", attempts=0)


async def test_a_finalize_refused_before_sending_for_a_fresh_bind_spends_no_session_read(
    service: CheckoutService, amazon: FakeAmazonPay, store: Store
) -> None:
    checkout = await service.register(ORDER)
    amazon.finalizes.append(refused_here())
    first = await service.finalize(checkout.ref, SID)
    assert first.error == OutcomeError.AMAZON_UNAVAILABLE
    assert amazon.operations() == ["finalize"]  # no getCheckoutSession: Amazon has seen nothing of this session
    after = await stored(service, checkout)
    assert after.state == State.CREATED and after.checkout_session_id == SID and after.lease_owner is None
    # The reload is not fresh (an earlier holder might have sent a finalize): refused again, Amazon is asked.
    amazon.finalizes.append(refused_here())
    amazon.sessions.append(session(SID, "Open"))
    again = await service.finalize(checkout.ref, SID)
    assert again.error == OutcomeError.AMAZON_UNAVAILABLE
    assert amazon.operations() == ["finalize", "finalize", "getCheckoutSession"]
    amazon.finalizes.append(finalized(SID))
    paid = await service.finalize(checkout.ref, SID)
    assert paid.error is None and paid.checkout.state == State.COMPLETED


async def test_a_429_from_amazon_itself_on_a_fresh_bind_is_still_read_back(
    service: CheckoutService, amazon: FakeAmazonPay
) -> None:
    checkout = await service.register(ORDER)
    amazon.finalizes.append(error(429, "TooManyRequests"))  # sent (attempts=1): Amazon may have acted on it
    amazon.sessions.append(session(SID, "Completed", charge_id="S01-0000000-0000000-C000001"))
    amazon.charges.append(charge("S01-0000000-0000000-C000001", "Authorized"))
    outcome = await service.finalize(checkout.ref, SID)
    assert outcome.error is None and outcome.checkout.state == State.COMPLETED
    assert amazon.operations() == ["finalize", "getCheckoutSession", "getCharge"]


# --- the reconciler acts on rows it listed a moment ago: what happened since must win ---------------


async def test_an_expiry_listed_before_a_payment_leaves_the_payment_alone(
        store: Store, service: CheckoutService, amazon: FakeAmazonPay, clock: Clock) -> None:
    """The reconciler's instance, its clock 3 s ahead, lists an unbound checkout as past its window; the
    buyer's instance then binds and completes it; the listed row's expiry must change nothing."""
    checkout = await service.register(ORDER)
    ahead = Clock()
    ahead.now = checkout.expires_at + 2
    reconciler_side = CheckoutService(store, FakeAmazonPay(), ttl_seconds=3600, wait_seconds=0.1, clock=ahead)
    [listed] = await store.list_expired_unbound(now=ahead.now)
    clock.now = checkout.expires_at - 1
    amazon.finalizes.append(finalized(SID))
    assert (await service.finalize(checkout.ref, SID)).checkout.state == State.COMPLETED
    after = await reconciler_side.expire(listed)
    assert after.state == State.COMPLETED
    assert (await stored(service, checkout)).state == State.COMPLETED
    assert [e.type for e in await store.list_events()] == ["checkout.completed"]


async def test_an_expiry_listed_before_a_cancel_leaves_the_cancel_alone(
        store: Store, service: CheckoutService, clock: Clock) -> None:
    checkout = await service.register(ORDER)
    clock.now = checkout.expires_at + 1
    [listed] = await store.list_expired_unbound(now=clock.now)
    canceled = await service.cancel(checkout.ref)
    assert canceled is not None and canceled.checkout.state == State.CANCELED
    assert (await service.expire(listed)).state == State.CANCELED
    assert [e.type for e in await store.list_events()] == ["checkout.canceled"]


async def test_a_resume_of_a_row_that_became_pending_since_sends_no_finalize(
        store: Store, service: CheckoutService, amazon: FakeAmazonPay) -> None:
    checkout = await service.register(ORDER)
    bound = await store.bind_session(checkout.ref, SID, service.clock())
    await store.transition(checkout.ref, owner=None, now=service.clock(), state=State.PENDING,
                           changes={"charge_id": "C-1"})  # another instance's 202, stored meanwhile
    after = await service.resume(bound)  # the row as listed: created and bound
    assert after.state == State.CREATED  # nothing done: the stored row is someone else's business
    assert amazon.calls == []
    now = await stored(service, checkout)
    assert now.state == State.PENDING and now.lease_owner is None


async def test_a_pending_checkout_without_a_charge_id_learns_it_from_its_session(
        store: Store, service: CheckoutService, amazon: FakeAmazonPay) -> None:
    checkout = await service.register(ORDER)
    amazon.finalizes.append(finalized(SID, 202, charge_id=None))  # a 202 whose session names no charge
    pending = (await service.finalize(checkout.ref, SID)).checkout
    assert pending.state == State.PENDING and pending.charge_id is None
    amazon.sessions.append(session(SID, "Completed", charge_id="S01-0000000-0000000-C000009"))
    learned = await service.refresh_pending(pending)
    assert learned.state == State.PENDING and learned.charge_id == "S01-0000000-0000000-C000009"
    assert learned.lease_owner is None
    assert [e.type for e in await store.list_events()] == ["checkout.pending"]  # no news yet: no event
    amazon.charges.append(charge("S01-0000000-0000000-C000009", "Authorized"))
    settled = await service.refresh_pending(learned)
    assert settled.state == State.AUTHORIZED
    assert amazon.operations() == ["finalize", "getCheckoutSession", "getCharge"]


async def test_a_pending_checkout_without_a_charge_whose_session_was_canceled_settles_so(
        service: CheckoutService, amazon: FakeAmazonPay) -> None:
    checkout = await service.register(ORDER)
    amazon.finalizes.append(finalized(SID, 202, charge_id=None))
    pending = (await service.finalize(checkout.ref, SID)).checkout
    amazon.sessions.append(session(SID, "Canceled", reason_code="Declined", ref=checkout.ref))
    assert (await service.refresh_pending(pending)).state == State.DECLINED


async def test_one_checkout_that_fails_oddly_does_not_stop_the_pass(
        store: Store, service: CheckoutService, amazon: FakeAmazonPay, clock: Clock) -> None:
    """A poll raising something no one expected (not an Amazon answer): logged, backed off, and the rest
    of the pass (the other pending checkout, the expiry) still runs, this pass and the next."""
    for ref in ("bad", "good"):
        await store.create_checkout(stored_checkout(ref, state=State.PENDING, checkout_session_id=f"sess-{ref}",
                                                    charge_id=f"C-{ref}", updated_at=clock.now - 60 + (ref == "good"),
                                                    expires_at=clock.now + 3600))
    await store.create_checkout(stored_checkout("late", created_at=clock.now - 7200, updated_at=clock.now - 60,
                                                expires_at=clock.now - 1))
    amazon.charges.extend([RuntimeError("a bug at the edge"), charge("C-good", "Authorized")])
    reconciler = Reconciler(service, clock=clock)
    assert await reconciler.run_once() == 2
    states = {ref: (await store.get_checkout(ref)) for ref in ("bad", "good", "late")}
    assert {ref: c.state for ref, c in states.items() if c} == {
        "bad": State.PENDING, "good": State.AUTHORIZED, "late": State.EXPIRED}
    assert states["bad"] is not None and states["bad"].lease_owner is None
    assert await reconciler.run_once() == 0  # "bad" backs off like any poll: not asked again at once
    assert amazon.operations() == ["getCharge", "getCharge"]


async def test_a_stop_ends_the_pass_after_the_checkout_at_hand(
        store: Store, service: CheckoutService, amazon: FakeAmazonPay, clock: Clock) -> None:
    for i in range(5):
        await store.create_checkout(stored_checkout(f"a{i}", checkout_session_id=f"sess-abandoned-{i:012d}",
                                                    updated_at=clock.now - 600, expires_at=clock.now + 3600))
    stop = asyncio.Event()
    reconciler = Reconciler(service, clock=clock, interval=60)

    async def slow_answer() -> FinalizeResult:
        stop.set()  # the process is asked to stop while Amazon is answering the first resume
        await asyncio.sleep(0.05)
        return finalized("sess-abandoned-000000000000")

    amazon.finalizes.extend([slow_answer] + [finalized(f"sess-abandoned-{i:012d}") for i in range(1, 5)])
    await asyncio.wait_for(reconciler.run(stop), timeout=5)
    assert amazon.operations() == ["finalize"]  # the other four wait for the next process, leases free
    for i in range(5):
        left = await store.get_checkout(f"a{i}")
        assert left is not None and left.lease_owner is None


async def test_the_poll_backoff_of_a_checkout_settled_elsewhere_is_forgotten(
        store: Store, service: CheckoutService, amazon: FakeAmazonPay, clock: Clock) -> None:
    await store.create_checkout(stored_checkout("p", state=State.PENDING, checkout_session_id="sess-p",
                                                charge_id="C-p", updated_at=clock.now - 60,
                                                expires_at=clock.now + 3600))
    amazon.charges.append(charge("C-p", "AuthorizationInitiated"))
    reconciler = Reconciler(service, clock=clock)
    await reconciler.run_once()
    assert set(reconciler._polls) == {"p"}
    await store.transition("p", owner=None, now=clock.now, state=State.AUTHORIZED)  # another instance's poll
    await reconciler.run_once()
    assert reconciler._polls == {}


async def test_an_answer_that_outlived_its_lease_is_kept_when_the_next_holder_gave_up(
    service: CheckoutService, store: Store, amazon: FakeAmazonPay, clock: Clock
) -> None:
    """A holder paused past its lease (a GC pause, a frozen VM): another instance took the lease, could
    not reach Amazon and let it go. The paused holder takes the lease again and finishes with the same
    key (Amazon answers as before), rather than waiting for a result nobody is making."""
    checkout = await service.register(ORDER)

    async def paused_past_the_lease() -> FinalizeResult:
        clock.now += 91  # past lease_seconds = 90
        assert await store.try_lease(checkout.ref, "another-instance", clock.now, 90) is not None
        await store.release_lease(checkout.ref, "another-instance")  # it got no answer from Amazon
        return finalized(SID)

    amazon.finalizes.extend([paused_past_the_lease, finalized(SID)])
    outcome = await service.finalize(checkout.ref, SID)
    assert outcome.error is None and outcome.checkout.state == State.COMPLETED
    key = idempotency_key(checkout.ref, SID)
    assert amazon.calls == [("finalize", SID, key), ("finalize", SID, key)]
    assert (await stored(service, checkout)).lease_owner is None


async def test_no_answer_in_time_shows_what_the_next_holder_stored_meanwhile(
    service: CheckoutService, store: Store, amazon: FakeAmazonPay, clock: Clock
) -> None:
    """Paused past its lease and its deadline: the other instance finalized meanwhile. The paused one's
    buyer gets the stored success, not "we can't confirm your payment yet"."""
    checkout = await service.register(ORDER)

    async def paused_while_another_finishes() -> FinalizeResult:
        clock.now += 91
        taken = await store.try_lease(checkout.ref, "another-instance", clock.now, 90)
        assert taken is not None
        await store.transition(checkout.ref, owner="another-instance", now=clock.now, state=State.COMPLETED)
        raise AmazonPayError("no answer: deadline reached", attempts=1)

    amazon.finalizes.append(paused_while_another_finishes)
    amazon.sessions.append(AmazonPayError("deadline reached", attempts=0))  # no time left to read it back
    outcome = await service.finalize(checkout.ref, SID)
    assert outcome.error is None and outcome.checkout.state == State.COMPLETED
    assert amazon.operations() == ["finalize", "getCheckoutSession"]


async def test_a_buyer_reloading_a_pending_order_asks_amazon_once_an_interval(
    service: CheckoutService, amazon: FakeAmazonPay, clock: Clock
) -> None:
    """A reload loop on one's own pending order (its page, or the app API's GET) spent a getCharge from the
    quota every buyer shares on each request: now one an interval per order; the reconciler's own polls
    (refresh_pending) are not held back."""
    checkout = await service.register(ORDER)
    amazon.finalizes.append(finalized(SID, 202, charge_id="S01-1-1-C1"))
    pending = (await service.finalize(checkout.ref, SID)).checkout
    amazon.charges.extend([charge("S01-1-1-C1", "AuthorizationInitiated")] * 3 + [charge("S01-1-1-C1", "Authorized")])
    for _ in range(10):
        assert (await service.look_pending(pending)).state == State.PENDING
    assert amazon.operations() == ["finalize", "getCharge"]
    clock.now += LOOK_INTERVAL
    assert (await service.look_pending(pending)).state == State.PENDING
    assert (await service.refresh_pending(pending)).state == State.PENDING  # the reconciler's: not held back
    assert amazon.operations() == ["finalize", "getCharge", "getCharge", "getCharge"]
    clock.now += LOOK_INTERVAL
    assert (await service.look_pending(pending)).state == State.AUTHORIZED


# --- what the log says of a failed finalize and of a settle ------------------------------------------------


def failure_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.name == "router.checkout.service" and "failed" in r.getMessage() and r.levelno == logging.WARNING]


@pytest.mark.parametrize("refusal", [
    AmazonPayThrottled("finalizeCheckoutSession: held back in this process for 29.0 s more after Amazon Pay's 429; "
                       "not sent, retry shortly", attempts=0),
    AmazonPayDeadlineSpent("finalizeCheckoutSession: the deadline of 60s was reached by earlier calls", attempts=0),
    AmazonPayCircuitOpen("finalizeCheckoutSession: Amazon Pay is failing; background calls are paused", attempts=0),
], ids=["quota-hold", "deadline-spent", "breaker"])
async def test_a_local_refusal_is_logged_as_ours_not_as_amazons_answer(
        service: CheckoutService, amazon: FakeAmazonPay, caplog: pytest.LogCaptureFixture,
        refusal: AmazonPayError) -> None:
    checkout = await service.register(ORDER)
    amazon.finalizes.append(refusal)
    with caplog.at_level(logging.INFO, logger="router.checkout.service"):
        outcome = await service.finalize(checkout.ref, SID)
    assert outcome.error == OutcomeError.AMAZON_UNAVAILABLE
    [line] = failure_lines(caplog)
    assert f"refused in this process, not by Amazon Pay: {refusal.message}" in line
    assert "TooManyRequests" not in line and "status=None" not in line and "reason=" not in line


async def test_no_answer_and_amazons_own_429_are_logged_as_such(
        service: CheckoutService, amazon: FakeAmazonPay, caplog: pytest.LogCaptureFixture) -> None:
    first, second = await service.register(ORDER), await service.register(ORDER)
    amazon.finalizes.append(AmazonPayTransportError("finalizeCheckoutSession: no answer from Amazon Pay (ReadTimeout)",
                                                    attempts=2))
    amazon.sessions.append(error(503, "ServiceUnavailable"))
    amazon.finalizes.append(AmazonPayError("HTTP 429", status=429, reason_code="TooManyRequests", request_id="rq-1"))
    amazon.sessions.append(error(503, "ServiceUnavailable"))
    with caplog.at_level(logging.INFO, logger="router.checkout.service"):
        await service.finalize(first.ref, SID)
        await service.finalize(second.ref, "sess-fedcba9876543210")
    lines = failure_lines(caplog)
    assert len(lines) == 2
    assert lines[0].endswith("failed: finalizeCheckoutSession: no answer from Amazon Pay (ReadTimeout) (attempts=2)")
    assert lines[1].endswith("failed: status=429 reason=TooManyRequests request=rq-1")  # Amazon's own 429
    assert not any("in this process" in line for line in lines)


async def test_a_settle_whose_commit_fails_logs_no_transition(
        store: Store, amazon: FakeAmazonPay, clock: Clock, caplog: pytest.LogCaptureFixture) -> None:
    """The store's COMMIT fails (PostgreSQL restarting, the disk full): no line may claim the order moved."""

    class CommitFails(StoreWrapper):
        async def transition(self, ref: str, **changes: Any) -> Checkout:
            if changes.get("state") == State.COMPLETED:
                raise StoreUnavailable("SQLite database 'router.db' unavailable: database or disk is full")
            result: Checkout = await self.inner.transition(ref, **changes)
            return result

    service = CheckoutService(CommitFails(store), amazon, ttl_seconds=3600, wait_seconds=0.1,  # type: ignore[arg-type]
                              clock=clock)
    checkout = await service.register(ORDER)
    amazon.finalizes.append(finalized(SID))
    with caplog.at_level(logging.INFO, logger="router.checkout.service"), pytest.raises(StoreUnavailable):
        await service.finalize(checkout.ref, SID)
    assert not [r for r in caplog.records if "→" in r.getMessage()]
    assert (await stored(service, checkout)).state == State.CREATED
    amazon.finalizes.append(finalized(SID))
    with caplog.at_level(logging.INFO, logger="router.checkout.service"):
        paid = await CheckoutService(store, amazon, ttl_seconds=3600, clock=clock).finalize(checkout.ref, SID)
    assert paid.checkout.state == State.COMPLETED
    assert [r.getMessage() for r in caplog.records if "→" in r.getMessage()] == [
        f"checkout {checkout.ref[:4]}…{checkout.ref[-4:]}: created → completed"]


async def test_a_failed_reconciler_pass_logs_the_stores_own_words(
        amazon: FakeAmazonPay, clock: Clock, caplog: pytest.LogCaptureFixture) -> None:
    closed = open_store("sqlite:///:memory:")  # never opened: every call is StoreUnavailable, said by the store
    service = CheckoutService(closed, amazon, clock=clock)
    stop = asyncio.Event()
    with caplog.at_level(logging.WARNING, logger="router.checkout.reconciler"):
        running = asyncio.ensure_future(Reconciler(service, clock=clock, interval=0.01).run(stop))
        await asyncio.sleep(0.05)
        stop.set()
        await asyncio.wait_for(running, timeout=5)
    failed = {r.getMessage() for r in caplog.records if r.name == "router.checkout.reconciler"}
    assert failed == {"reconciler pass failed: StoreUnavailable: SQLite store is not open"}


async def test_a_bind_the_store_could_not_make_nor_read_is_not_bound_for_the_page(
        store: Store, amazon: FakeAmazonPay, clock: Clock) -> None:
    """The whole store down as the buyer returns (PostgreSQL stopped): the bind fails and so does the read
    after it. Nothing shows the order bound, so nothing would resume it: NotBound (the page says only this
    page, kept open, tries again), not the "we keep checking" of a bound one."""
    class Down(StoreWrapper):
        async def bind_and_lease(self, *args: Any, **kwargs: Any) -> Binding:
            raise StoreUnavailable("PostgreSQL unavailable: ConnectionRefusedError")

        async def get_checkout(self, ref: str) -> Checkout | None:
            raise StoreUnavailable("PostgreSQL unavailable: ConnectionRefusedError")

    checkout = await CheckoutService(store, amazon, clock=clock).register(ORDER)
    service = CheckoutService(cast(Store, Down(store)), amazon, clock=clock, wait_seconds=0.1)
    with pytest.raises(NotBound):
        await service.finalize(checkout.ref, SID)
    assert amazon.calls == []
