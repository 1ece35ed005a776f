"""The emulator keeps Amazon's clocks: Open sessions expire after 24 h, every session is gone after 30 days."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from router.amazon_pay.emulator.auth import ApiError
from router.amazon_pay.emulator.state import EmulatorState, parse_session_spec

SPEC = {"chargeAmount": {"amount": "14.00", "currencyCode": "USD"}, "paymentIntent": "AuthorizeWithCapture"}
FINALIZE = json.dumps(SPEC).encode()


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 12, 1, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


def test_an_open_session_is_canceled_as_expired_after_24_hours() -> None:
    clock = Clock()
    state = EmulatorState(clock)
    session = state.create_session(parse_session_spec(SPEC))
    clock.now += timedelta(hours=23, minutes=59)
    assert state.get_session(session.session_id, "sandbox")[1]["statusDetails"]["state"] == "Open"
    clock.now += timedelta(minutes=1)
    with pytest.raises(ApiError) as canceled:
        state.finalize(session.session_id, FINALIZE, "sandbox")
    assert (canceled.value.status, canceled.value.reason_code) == (422, "CheckoutSessionCanceled")
    details = state.get_session(session.session_id, "sandbox")[1]["statusDetails"]
    assert (details["state"], details["reasonCode"]) == ("Canceled", "Expired")
    assert state.charges == {}


def test_a_completed_session_stays_completed_and_every_session_is_gone_after_30_days() -> None:
    clock = Clock()
    state = EmulatorState(clock)
    paid = state.create_session(parse_session_spec(SPEC))
    assert state.finalize(paid.session_id, FINALIZE, "sandbox")[0] == 200
    clock.now += timedelta(days=29, hours=23)
    assert state.get_session(paid.session_id, "sandbox")[1]["statusDetails"]["state"] == "Completed"
    clock.now += timedelta(hours=1)
    with pytest.raises(ApiError) as gone:
        state.get_session(paid.session_id, "sandbox")
    assert (gone.value.status, gone.value.reason_code) == (404, "ResourceNotFound")
    assert paid.session_id not in state.sessions
