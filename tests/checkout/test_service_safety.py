"""CheckoutService itself is the last guard (issue 8, defect 1): no input leaves a lease held or a session
bound without an Amazon answer. Real store (SQLite file and PostgreSQL), real emulator in-process."""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal

import pytest

from router.amazon_pay.emulator.state import Price, SessionSpec
from router.amazon_pay.quota import FINALIZE, Limit, Quota
from router.checkout.model import Busy, InvalidSessionId, NewCheckout, OutcomeError, SessionConflict, State
from router.checkout.probes import FREE_TRIES, TRY_INTERVAL
from router.checkout.service import CheckoutService
from router.store.base import Store
from tests.checkout.conftest import Amazon, Clock, make_amazon
from tests.support.emulator import result_url_for
from tests.support.stores import Backend

ORDER = NewCheckout("order-1", "14.00", "USD", "AuthorizeWithCapture", False)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def amazon(clock: Clock) -> AsyncIterator[Amazon]:
    world = make_amazon(clock)
    yield world
    await world.client.aclose()


@pytest.fixture
async def service(store: Store, amazon: Amazon, clock: Clock) -> CheckoutService:
    return CheckoutService(store, amazon.client, clock=clock, lease_seconds=5, wait_seconds=1)


@pytest.mark.parametrize("bad", ["aaaaaaaa\n", "aaaaaaaa\u00e9", "aaaaaaaa\u0660", " aaaaaaaa", "a" * 101])
async def test_a_malformed_session_id_is_refused_before_anything_is_stored(
    service: CheckoutService, store: Store, amazon: Amazon, backend: Backend, bad: str
) -> None:
    checkout = await service.register(ORDER)
    with pytest.raises(InvalidSessionId):
        await service.finalize(checkout.ref, bad)
    after = await store.get_checkout(checkout.ref)
    assert after is not None and after.checkout_session_id is None and after.lease_owner is None
    assert amazon.faults.sent == 0
    genuine = amazon.session("14.00").session_id
    assert (await service.finalize(checkout.ref, genuine)).checkout.state == State.COMPLETED


async def test_an_error_that_is_not_amazons_answer_releases_the_lease_and_keeps_the_binding(
    service: CheckoutService, store: Store, amazon: Amazon, backend: Backend
) -> None:
    """Something that is not an AmazonPayError escapes the client: the lease goes at once, the session stays
    bound (it may follow an attempt Amazon acted on), and the next return finalizes without waiting."""
    checkout = await service.register(ORDER)
    session_id = amazon.session("14.00").session_id
    amazon.faults.queue.append("error")  # the transport raises something that is not an httpx error
    with pytest.raises(RuntimeError):
        await service.finalize(checkout.ref, session_id)
    after = await store.get_checkout(checkout.ref)
    assert after is not None and after.state == State.CREATED
    assert after.checkout_session_id == session_id and after.lease_owner is None
    outcome = await service.finalize(checkout.ref, session_id)  # at once, no lease to wait out
    assert outcome.error is None and outcome.checkout.state == State.COMPLETED


async def test_an_answer_lost_then_another_error_in_the_same_call_keeps_the_session_bound(
    service: CheckoutService, store: Store, amazon: Amazon, backend: Backend
) -> None:
    """The client's first attempt reached Amazon (its answer lost), the retry failed with something else: the
    session this call bound stays bound, so a cancel-URL visit finishes the paid return."""
    checkout = await service.register(ORDER)
    session_id = amazon.session("14.00").session_id
    amazon.faults.queue.extend(["lost", "error"])
    with pytest.raises(RuntimeError):
        await service.finalize(checkout.ref, session_id)
    assert amazon.faults.sent == 1  # the first attempt did reach Amazon
    after = await store.get_checkout(checkout.ref)
    assert after is not None and after.checkout_session_id == session_id and after.lease_owner is None
    visited = await service.cancel(checkout.ref)
    assert visited is not None and visited.checkout.state == State.COMPLETED


async def test_an_error_after_an_earlier_lost_answer_keeps_the_session_bound(
    service: CheckoutService, store: Store, amazon: Amazon, backend: Backend
) -> None:
    """Amazon finalized but its answer was lost; the next attempt fails before Amazon answers. The session
    stays bound (only the lease goes): unbound, a visit to the cancel URL would cancel an order Amazon
    charged. Found by the model-based test (a completed session left canceled)."""
    checkout = await service.register(ORDER)
    session_id = amazon.session("14.00").session_id
    amazon.faults.queue.extend(["lost"] + ["timeout"] * 8)  # Amazon acts, the answer is lost, reads time out
    assert (await service.finalize(checkout.ref, session_id)).error == OutcomeError.AMAZON_UNAVAILABLE
    amazon.faults.queue.clear()
    amazon.faults.queue.append("error")  # the next attempt: something that is not an AmazonPayError
    with pytest.raises(RuntimeError):
        await service.finalize(checkout.ref, session_id)
    after = await store.get_checkout(checkout.ref)
    assert after is not None and after.state == State.CREATED
    assert after.checkout_session_id == session_id and after.lease_owner is None
    visited = await service.cancel(checkout.ref)  # a link preview, or the buyer's back button
    assert visited is not None and visited.checkout.state == State.COMPLETED


async def test_a_client_value_error_becomes_invalid_session_id_and_leaves_nothing(
    service: CheckoutService, store: Store, amazon: Amazon, backend: Backend
) -> None:
    """An id our rule accepts but the client refuses (the client's rules are its own)."""
    checkout = await service.register(ORDER)

    async def refuse(*args: object, **kwargs: object) -> object:
        raise ValueError("checkout_session_id must be a non-empty printable string")

    original = amazon.client.finalize_checkout_session
    amazon.client.finalize_checkout_session = refuse  # type: ignore[method-assign,assignment]
    with pytest.raises(InvalidSessionId):
        await service.finalize(checkout.ref, "aaaaaaaa-bbbb")
    amazon.client.finalize_checkout_session = original  # type: ignore[method-assign]
    after = await store.get_checkout(checkout.ref)
    assert after is not None and after.checkout_session_id is None and after.lease_owner is None


async def test_a_rejected_pair_costs_amazon_nothing_the_second_time(
    service: CheckoutService, store: Store, amazon: Amazon, backend: Backend
) -> None:
    checkout = await service.register(ORDER)
    probe = "00000000-0000-4000-8000-000000000000"
    assert (await service.finalize(checkout.ref, probe)).error == OutcomeError.UNKNOWN_SESSION
    sent = amazon.faults.sent
    assert (await service.finalize(checkout.ref, probe)).error == OutcomeError.UNKNOWN_SESSION
    assert amazon.faults.sent == sent
    genuine = amazon.session("14.00").session_id
    assert (await service.finalize(checkout.ref, genuine)).checkout.state == State.COMPLETED


async def paid_elsewhere(amazon: Amazon, amount: str, **spec: object) -> str:
    """A session the merchant's other channel (its web shop) finalized itself: Completed, with a charge."""
    session = amazon.session(amount, **spec).session_id
    body = {"chargeAmount": {"amount": amount, "currencyCode": "USD"}, "paymentIntent": "AuthorizeWithCapture"}
    result = await amazon.client.finalize_checkout_session(session, body, "web-shop-key-" + session[:8])
    assert result.session.state == "Completed"
    return session


@pytest.mark.parametrize("how", ["another amount", "a result URL for another ref"])
async def test_a_session_paid_for_something_else_neither_pays_nor_fails_this_order(
    service: CheckoutService, store: Store, amazon: Amazon, backend: Backend, how: str
) -> None:
    """Pay once for a cheap order elsewhere, then send that session with this order's ref: Amazon refuses
    the finalize (already Completed), and the read-back session is Completed with a charge. It used to
    mark this order paid (checkout.completed to the merchant). It is another order's: left unbound."""
    checkout = await service.register(ORDER)
    if how == "another amount":
        foreign = await paid_elsewhere(amazon, "1.00")
    else:
        foreign = await paid_elsewhere(amazon, "14.00", result_return_url=(
            "https://shop.example/amazon-pay/result?ref=someone-elses-ref"))
    outcome = await service.finalize(checkout.ref, foreign)
    assert outcome.error == OutcomeError.UNKNOWN_SESSION
    after = await store.get_checkout(checkout.ref)
    assert after is not None and after.state == State.CREATED and after.checkout_session_id is None
    assert after.lease_owner is None and after.reason_code is None
    assert await store.list_events() == []
    genuine = amazon.session("14.00", result_return_url=(
        f"https://shop.example/amazon-pay/result?ref={checkout.ref}")).session_id
    assert (await service.finalize(checkout.ref, genuine)).checkout.state == State.COMPLETED


WEB_SHOP = "https://shop.example/checkout/review"  # a result URL of the merchant's web shop: it names no ref


@pytest.mark.parametrize(("scenario", "intent", "url"), [
    ("declined", "AuthorizeWithCapture", WEB_SHOP),
    ("declined", "AuthorizeWithCapture", None),
    ("expired", "AuthorizeWithCapture", WEB_SHOP),
    ("buyer-canceled", "AuthorizeWithCapture", None),
    ("completed", "Confirm", None),  # Open, another intent: Amazon refuses the finalize with a 400
])
async def test_a_session_that_does_not_name_this_ref_cannot_end_the_order_unpaid(
    service: CheckoutService, store: Store, amazon: Amazon, backend: Backend, scenario: str, intent: str,
    url: str | None
) -> None:
    """The same amount, but made elsewhere (a checkout started and abandoned on the merchant's web shop):
    sent with this order's ref, it declined, expired, canceled or failed the order, and the buyer's own
    session then got a 409. Only a session whose result URL names this ref may end the order unpaid."""
    checkout = await service.register(ORDER)
    foreign = amazon.core.state.create_session(SessionSpec(
        charge_amount=Price(Decimal("14.00"), "14.00", "USD"), payment_intent=intent, scenario=scenario,
        result_return_url=url)).session_id
    assert (await service.finalize(checkout.ref, foreign)).error == OutcomeError.UNKNOWN_SESSION
    after = await store.get_checkout(checkout.ref)
    assert after is not None and after.state == State.CREATED and after.checkout_session_id is None
    assert after.reason_code is None and await store.list_events() == []
    genuine = amazon.session("14.00", result_return_url=result_url_for(checkout.ref)).session_id
    assert (await service.finalize(checkout.ref, genuine)).checkout.state == State.COMPLETED


async def test_a_session_naming_this_ref_still_declines_it(
    service: CheckoutService, store: Store, amazon: Amazon, backend: Backend
) -> None:
    checkout = await service.register(ORDER)
    declined = amazon.session("14.00", "declined", result_return_url=result_url_for(checkout.ref)).session_id
    outcome = await service.finalize(checkout.ref, declined)
    assert outcome.error is None and outcome.checkout.state == State.DECLINED


async def test_an_open_session_for_another_amount_does_not_fail_the_order(
    service: CheckoutService, store: Store, amazon: Amazon, backend: Backend
) -> None:
    checkout = await service.register(ORDER)
    foreign = amazon.session("1.00").session_id  # Amazon: 400 InvalidParameterValue; still Open
    assert (await service.finalize(checkout.ref, foreign)).error == OutcomeError.UNKNOWN_SESSION
    after = await store.get_checkout(checkout.ref)
    assert after is not None and after.state == State.CREATED and after.checkout_session_id is None
    assert await store.list_events() == []
    sent = amazon.faults.sent
    assert (await service.finalize(checkout.ref, foreign)).error == OutcomeError.UNKNOWN_SESSION
    assert amazon.faults.sent == sent  # remembered like a made-up id


async def test_one_order_trying_new_session_ids_costs_amazon_one_call_an_interval(
    service: CheckoutService, store: Store, amazon: Amazon, clock: Clock, backend: Backend
) -> None:
    """Made-up ids from one ref, each new: each was a finalize from the quota every buyer shares. After
    FREE_TRIES, one an interval; the buyer behind them waits (Busy: the page refreshes), and pays."""
    checkout = await service.register(ORDER)
    sent = amazon.faults.sent
    answers = []
    for i in range(FREE_TRIES + 5):
        try:
            answers.append((await service.finalize(checkout.ref, f"00000000-0000-4000-8000-{i:012d}")).error)
        except Busy:
            answers.append("busy")
    assert answers == [OutcomeError.UNKNOWN_SESSION] * FREE_TRIES + ["busy"] * 5
    assert amazon.faults.sent - sent == FREE_TRIES
    genuine = amazon.session("14.00").session_id
    with pytest.raises(Busy):
        await service.finalize(checkout.ref, genuine)
    waiting = await store.get_checkout(checkout.ref)
    assert waiting is not None and waiting.checkout_session_id is None and waiting.lease_owner is None
    clock.now += TRY_INTERVAL
    assert (await service.finalize(checkout.ref, genuine)).checkout.state == State.COMPLETED


async def test_a_return_while_another_session_is_bound_and_unsettled_waits_not_conflicts(
    service: CheckoutService, store: Store, amazon: Amazon, backend: Backend
) -> None:
    """Another session bound and not settled (a made-up id whose finalize is at Amazon, or one waiting for
    the reconciler) may yet be unbound: the buyer's own return waits (the page refreshes), not a 409."""
    checkout = await service.register(ORDER)
    await store.bind_session(checkout.ref, "00000000-0000-4000-8000-00000000dead", now=1.0)  # in flight
    genuine = amazon.session("14.00").session_id
    with pytest.raises(Busy):
        await service.finalize(checkout.ref, genuine)
    await store.transition(checkout.ref, owner=None, now=2.0, state=State.CREATED,
                           changes={"checkout_session_id": None})  # the made-up id proved unknown
    assert (await service.finalize(checkout.ref, genuine)).checkout.state == State.COMPLETED
    with pytest.raises(SessionConflict):  # settled with the genuine one: now a conflict
        await service.finalize(checkout.ref, amazon.session("14.00").session_id)


async def test_a_session_made_for_another_ref_that_amazon_finalizes_is_settled_and_logged(
    service: CheckoutService, store: Store, amazon: Amazon, backend: Backend, caplog: pytest.LogCaptureFixture
) -> None:
    """Amazon answers the finalize 200: it took this order's amount, so the money is this order's and is
    never dropped; an ERROR line says the session was made for another order (whoever reconciles must know)."""
    checkout = await service.register(ORDER)
    made_for_another = amazon.session("14.00", result_return_url=(
        "https://shop.example/amazon-pay/result?ref=someone-elses-ref")).session_id
    assert (await service.finalize(checkout.ref, made_for_another)).checkout.state == State.COMPLETED
    assert [r.levelname for r in caplog.records if "not ref" in r.getMessage()] == ["ERROR"]
    assert made_for_another not in caplog.text and checkout.ref not in caplog.text



async def test_a_completed_session_for_this_amount_after_a_lost_answer_is_this_orders_whatever_its_url(
    service: CheckoutService, store: Store, amazon: Amazon, clock: Clock, backend: Backend
) -> None:
    """Amazon finalized it for this order and the answer was lost: read back (at once, or past the window
    when Amazon stayed dark), a result URL naming another ref must not drop the payment made for this order."""
    made_elsewhere = "https://shop.example/amazon-pay/result?ref=other"
    first = await service.register(ORDER)
    session = amazon.session("14.00", result_return_url=made_elsewhere).session_id
    amazon.faults.queue.extend(["lost", "timeout"])  # acted, answer lost; the retry unanswered; then read back
    assert (await service.finalize(first.ref, session)).checkout.state == State.COMPLETED

    later = await service.register(ORDER)
    session = amazon.session("14.00", result_return_url=made_elsewhere).session_id
    amazon.faults.queue.extend(["lost", "timeout", "timeout", "timeout"])  # and the reads unanswered too
    assert (await service.finalize(later.ref, session)).error == OutcomeError.AMAZON_UNAVAILABLE
    assert amazon.core.state.sessions[session].state == "Completed"
    clock.now = later.expires_at + 1
    bound = await store.get_checkout(later.ref)
    assert bound is not None and bound.checkout_session_id == session
    assert (await service.expire(bound)).state == State.COMPLETED  # past the window: only a read is sent


async def test_made_up_ids_across_orders_leave_the_buyers_first_ids_their_quota(
    store: Store, amazon: Amazon, clock: Clock, backend: Backend
) -> None:
    """Whoever opens orders can send each a few made-up ids, each a finalize from the quota every buyer
    shares. An order's new ids after its first are probes: only tokens no buyer reserved, within the
    probes' share (router/amazon_pay/quota.py). A probe refused there sent nothing and is left unbound."""
    amazon.client.quota = Quota({FINALIZE: Limit(burst=4, rate=0.001)}, probe_share=0.25, max_wait=0.0)
    service = CheckoutService(store, amazon.client, clock=clock, lease_seconds=5, wait_seconds=1)
    probed = await service.register(ORDER)
    sent = amazon.faults.sent
    for i in range(2):  # the order's first id (a buyer's token), then a probe (the probes' one token)
        outcome = await service.finalize(probed.ref, f"00000000-0000-4000-8000-{i:012d}")
        assert outcome.error == OutcomeError.UNKNOWN_SESSION
    with pytest.raises(Busy):  # the probes' share is spent: nothing sent, nothing left bound
        await service.finalize(probed.ref, "00000000-0000-4000-8000-000000000002")
    assert amazon.faults.sent - sent == 2
    left = await store.get_checkout(probed.ref)
    assert left is not None and left.checkout_session_id is None and left.lease_owner is None
    for _ in range(2):  # two buyers, each with the first id of an order of their own: both pay
        checkout = await service.register(ORDER)
        outcome = await service.finalize(checkout.ref, amazon.session("14.00").session_id)
        assert outcome.error is None and outcome.checkout.state == State.COMPLETED


@pytest.mark.parametrize("url", [WEB_SHOP, "https://shop.example/amazon-pay/result?ref=someone-elses-ref"])
async def test_a_session_not_naming_this_ref_that_goes_pending_cannot_decline_the_order(
    service: CheckoutService, store: Store, amazon: Amazon, backend: Backend, url: str
) -> None:
    """Amazon answers such a session's finalize 202 (pending) and declines it later: the decline used to end
    the order (checkout.declined) and lock out the buyer's own session with a 409. Only the order's own
    session may end it unpaid: when the pending one is declined, the order is open again, unbound."""
    checkout = await service.register(NewCheckout("order-2", "14.00", "USD", "AuthorizeWithCapture", True))
    foreign = amazon.session("14.00", "pending-then-declined", result_return_url=url, pending_polls=1).session_id
    assert (await service.finalize(checkout.ref, foreign)).checkout.state == State.PENDING
    for _ in range(3):
        after = await service.refresh_pending(await store.get_checkout(checkout.ref) or checkout)
        if after.state != State.PENDING:
            break
    assert after.state == State.CREATED and after.checkout_session_id is None and after.charge_id is None
    assert after.lease_owner is None
    assert [e.type for e in await store.list_events()] == ["checkout.pending"]
    genuine = amazon.session("14.00", result_return_url=result_url_for(checkout.ref)).session_id
    assert (await service.finalize(checkout.ref, genuine)).checkout.state == State.COMPLETED
