"""When a session Amazon reports cannot be this checkout's (router/checkout/amazon.py). Pure."""

from __future__ import annotations

from typing import Any

import pytest

from router.amazon_pay.models import CheckoutSession
from router.checkout.amazon import another_orders
from tests.support.stores import checkout

ORDER = checkout("ref-1", amount="14.00", currency="USD")


def session(amount: Any = "14.00", currency: str = "USD", result_url: str | None = None) -> CheckoutSession:
    return CheckoutSession.from_json({
        "checkoutSessionId": "sess-0123456789", "statusDetails": {"state": "Completed"},
        "paymentDetails": {"chargeAmount": {"amount": amount, "currencyCode": currency}},
        "webCheckoutDetails": {"checkoutResultReturnUrl": result_url}})


@pytest.mark.parametrize("found", [
    session(), session("14"), session(14), session("14.000"),
    session(result_url="https://shop.example/amazon-pay/result?ref=ref-1"),
    session(result_url="https://shop.example/amazon-pay/result?x=1"),  # the merchant's own URL: no ref
    session(result_url="https://[shop.example/amazon-pay/result?ref=ref-2"),  # urlsplit cannot read it
    CheckoutSession.from_json({"checkoutSessionId": "sess-0123456789", "statusDetails": {"state": "Open"}}),
])
def test_a_session_nothing_says_is_anothers_is_taken_as_it_is(found: CheckoutSession) -> None:
    assert another_orders(found, ORDER) is None


@pytest.mark.parametrize(("found", "why"), [
    (session("1.00"), "another amount"),
    (session("14.00", "EUR"), "another amount"),
    (session("not a number"), "another amount"),
    (session(result_url="https://shop.example/amazon-pay/result?ref=ref-2"), "a result URL for another ref"),
])
def test_another_amount_or_another_ref_is_another_orders(found: CheckoutSession, why: str) -> None:
    assert another_orders(found, ORDER) == why


def test_by_url_off_leaves_the_amount_only() -> None:
    named_another = session(result_url="https://shop.example/amazon-pay/result?ref=ref-2")
    assert another_orders(named_another, ORDER, by_url=False) is None
    assert another_orders(session("1.00"), ORDER, by_url=False) == "another amount"
