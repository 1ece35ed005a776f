"""The JSON documents the emulator answers with: Amazon's shapes from fixtures/*.json, filled per object."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from functools import cache
from importlib import resources
from typing import Any

from router.amazon_pay.emulator.model import JSON, Charge, Session
from router.amazon_pay.signing import format_date

SESSION_LIFETIME = timedelta(hours=24)
CHARGE_LIFETIME = timedelta(days=30)


@cache
def _fixture_text(name: str) -> str:
    return resources.files(__package__).joinpath("fixtures", f"{name}.json").read_text(encoding="utf-8")


def fixture(name: str) -> Any:
    """A fresh copy of fixtures/<name>.json (callers fill it in place)."""
    return json.loads(_fixture_text(name))


def status_json(state: str, reason: str | None, description: str | None, when: datetime) -> JSON:
    return {
        "state": state,
        "reasonCode": reason,
        "reasonDescription": description,
        "lastUpdatedTimestamp": format_date(when),
    }


def address_json(name: str, currency: str) -> JSON:
    """A sample address in the currency's country (US when unknown)."""
    addresses = fixture("address")
    country = addresses["country_by_currency"].get(currency, "US")
    return {**addresses["template"], **addresses["samples"][country], "name": name, "countryCode": country}


def session_json(session: Session, environment: str) -> JSON:
    spec = session.spec
    doc: JSON = fixture("session")
    payment = doc["paymentDetails"]
    payment["paymentIntent"] = spec.payment_intent
    payment["canHandlePendingAuthorization"] = session.can_handle_pending
    payment["chargeAmount"] = spec.charge_amount.to_json()
    payment["totalOrderAmount"] = spec.total_order_amount.to_json() if spec.total_order_amount else None
    payment["presentmentCurrency"] = spec.charge_amount.currency
    doc["webCheckoutDetails"]["checkoutResultReturnUrl"] = spec.result_return_url
    doc.update(
        checkoutSessionId=session.session_id,
        buyer=dict(session.buyer),
        billingAddress=address_json(session.buyer["name"], spec.charge_amount.currency),
        statusDetails=status_json(session.state, session.reason_code, session.reason_description, session.updated),
        chargePermissionId=session.charge_permission_id,
        chargeId=session.charge_id,
        creationTimestamp=format_date(session.created),
        expirationTimestamp=format_date(session.created + SESSION_LIFETIME),
        releaseEnvironment=environment,
    )
    return doc


def charge_json(charge: Charge, environment: str) -> JSON:
    captured = charge.state == "Captured"
    doc: JSON = fixture("charge")
    doc.update(
        chargeId=charge.charge_id,
        chargePermissionId=charge.charge_permission_id,
        chargeAmount=charge.amount.to_json(),
        captureAmount=charge.amount.to_json() if captured else None,
        refundedAmount={"amount": "0.00", "currencyCode": charge.amount.currency} if captured else None,
        statusDetails=status_json(charge.state, charge.reason_code, None, charge.updated),
        creationTimestamp=format_date(charge.created),
        expirationTimestamp=format_date(charge.created + CHARGE_LIFETIME),
        releaseEnvironment=environment,
    )
    return doc
