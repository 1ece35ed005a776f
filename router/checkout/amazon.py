"""What Amazon Pay's answers mean for a checkout, and what a checkout sends to Amazon. Pure.

The client protocol the service needs, the idempotency key, the finalize body (identical bytes on every
retry), and the mapping of Amazon's session, charge and reason codes to the checkout's states.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any, Protocol
from urllib.parse import parse_qs, urlsplit

from router.amazon_pay.models import Charge, CheckoutSession, FinalizeResult
from router.checkout.model import Checkout, State
from router.redact import mask_email

DECLINE_REASONS = {"Declined", "HardDeclined", "SoftDeclined", "AmazonRejected", "PaymentMethodNotAllowed",
                   "MFAFailed", "ProcessingFailure", "TransactionAmountExceeded"}


class AmazonPay(Protocol):
    """What the orchestrator needs from the Amazon Pay client."""

    async def finalize_checkout_session(
        self, checkout_session_id: str, payload: Mapping[str, Any], idempotency_key: str
    ) -> FinalizeResult: ...

    async def get_checkout_session(self, checkout_session_id: str) -> CheckoutSession: ...

    async def get_charge(self, charge_id: str) -> Charge: ...


def idempotency_key(ref: str, checkout_session_id: str) -> str:
    """32 characters of [A-Za-z0-9_-], the same for every attempt at one ref + session."""
    digest = hashlib.sha256(f"finalize\x00{ref}\x00{checkout_session_id}".encode()).digest()
    return base64.urlsafe_b64encode(digest).decode()[:32]


def finalize_payload(checkout: Checkout) -> dict[str, Any]:
    """The finalize body: built only from stored fields, so every retry sends identical bytes."""
    payload: dict[str, Any] = {
        "chargeAmount": {"amount": checkout.amount, "currencyCode": checkout.currency},
        "paymentIntent": checkout.payment_intent,
        "canHandlePendingAuthorization": checkout.can_handle_pending,
    }
    if checkout.total_order_amount is not None:
        payload["totalOrderAmount"] = {"amount": checkout.total_order_amount, "currencyCode": checkout.currency}
    if checkout.supplementary_data is not None:
        payload["supplementaryData"] = checkout.supplementary_data
    return payload


def another_orders(session: CheckoutSession, checkout: Checkout, *, by_url: bool = True,
                   failing: bool = False) -> str | None:
    """Why a session read back from Amazon cannot be this checkout's, or None when nothing says so.

    Another amount or currency: its finalize with this order's can never succeed, and a Completed one paid
    for something else. A result URL naming another ref (unless not `by_url`): made from the URLs
    registering another order gave out. `failing` (the session would decline, cancel, expire or fail the
    order): one whose result URL names no ref too, since only the order's own session may end it unpaid.
    Every session a buyer paid or was declined on carries the result URL it returned to, and the one made
    for this order (from the URLs registering it gave out) names its ref; a session opened elsewhere (the
    merchant's web shop, a checkout abandoned before Amazon's page) must not lock out the buyer's own. A
    session that would pay the order and names no ref is taken as it is (the merchant's own button may
    leave the ref out of its URL): the money is never dropped.
    """
    asked = session.charge_amount
    if asked is not None and not _same_money(asked.amount, asked.currency_code, checkout.amount, checkout.currency):
        return "another amount"
    if not by_url:
        return None
    refs = _result_url_refs(session)
    if refs and checkout.ref not in refs:
        return "a result URL for another ref"
    if failing and not refs:
        return "a result URL naming no ref"
    return None


def _result_url_refs(session: CheckoutSession) -> list[str]:
    """The refs the session's result URL names (none when it has no URL, or one urlsplit cannot read)."""
    details = session.raw.get("webCheckoutDetails")
    url = details.get("checkoutResultReturnUrl") if isinstance(details, Mapping) else None
    if not isinstance(url, str):
        return []
    try:
        return parse_qs(urlsplit(url).query).get("ref", [])
    except ValueError:  # "https://[host/…": it names no ref we can see
        return []


def _same_money(amount: str, currency: str, other_amount: str, other_currency: str) -> bool:
    """"14" and "14.00" are the same amount."""
    try:
        return currency == other_currency and Decimal(amount) == Decimal(other_amount)
    except InvalidOperation:
        return False


def state_of_session(session: CheckoutSession) -> State | None:
    """Our state for what Amazon says about a session; None while it is still Open."""
    if session.state == "Completed":
        return State.COMPLETED
    if session.state == "Canceled":
        return state_of_reason(session.reason_code)
    return None


def state_of_reason(reason_code: str | None) -> State:
    if reason_code == "BuyerCanceled":
        return State.CANCELED
    if reason_code in ("Expired", "ExpiredUnused", "TransactionTimedOut"):
        return State.EXPIRED
    if reason_code in DECLINE_REASONS:
        return State.DECLINED
    return State.FAILED


def state_of_charge(charge: Charge) -> State | None:
    """Our state for a charge after a pending authorization; None while still pending."""
    if charge.state in ("Authorized", "Captured", "CaptureInitiated"):
        return State.AUTHORIZED
    if charge.state == "Declined":
        return State.DECLINED
    if charge.state == "Canceled":
        return state_of_reason(charge.reason_code) if charge.reason_code != "BuyerCanceled" else State.CANCELED
    return None


def buyer_summary(session: CheckoutSession) -> dict[str, Any]:
    """What the buyer's page and the app need: no more than that is stored."""
    return {
        "buyerName": session.buyer_name,
        "maskedEmail": mask_email(session.buyer_email) if session.buyer_email else None,
        "paymentDescriptor": session.payment_descriptor,
        "billingAddress": _address_summary(session.billing_address),
    }


def _address_summary(address: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if not address:
        return None
    keys = ("name", "city", "stateOrRegion", "postalCode", "countryCode")
    return {k: address[k] for k in keys if address.get(k)}


def session_fields(session: CheckoutSession) -> dict[str, Any]:
    """The checkout columns a session answer sets (ids, reason, the buyer's summary)."""
    return {
        "charge_id": session.charge_id,
        "charge_permission_id": session.charge_permission_id,
        "reason_code": session.reason_code,
        "result": buyer_summary(session),
    }
