"""CheckoutService's state machine in-process: a scripted AmazonPay (tests/support/fake_amazon.py) and a
real SQLite store in memory. The socket, emulator and process tests stay for what only they can show."""

from __future__ import annotations

from collections import deque
from collections.abc import AsyncIterator

import pytest

from router.checkout.model import Busy, Checkout, NewCheckout, OutcomeError, State
from router.checkout.service import CheckoutService, idempotency_key
from router.store import open_store
from router.store.base import Store
from tests.support.fake_amazon import FakeAmazonPay, charge, error, finalized, session

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
    amazon.sessions.append(session(SID, "Canceled", reason_code="Declined"))
    outcome = await service.finalize(checkout.ref, SID)
    assert outcome.error is None and outcome.checkout.state == State.DECLINED
    assert outcome.checkout.reason_code == "Declined"


async def test_an_unknown_session_unbinds_and_a_repeated_probe_skips_amazon(service: CheckoutService,
                                                                           amazon: FakeAmazonPay) -> None:
    checkout = await service.register(ORDER)
    amazon.finalizes.append(error(404, "ResourceNotFound"))
    amazon.sessions.append(error(404, "ResourceNotFound"))
    outcome = await service.finalize(checkout.ref, SID)
    assert outcome.error == OutcomeError.UNKNOWN_SESSION
    after = await stored(service, checkout)
    assert after.state == State.CREATED and after.checkout_session_id is None
    repeat = await service.finalize(checkout.ref, SID)
    assert repeat.error == OutcomeError.UNKNOWN_SESSION
    assert amazon.operations() == ["finalize", "getCheckoutSession"]  # the repeat never reached Amazon


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
