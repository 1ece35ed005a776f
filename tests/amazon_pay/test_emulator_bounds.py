"""The emulator's state stays bounded: the oldest sessions (with their charges) and saved answers go first."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from router.amazon_pay.emulator.auth import ApiError
from router.amazon_pay.emulator.state import EmulatorState, parse_session_spec

SPEC = {"chargeAmount": {"amount": "14.00", "currencyCode": "USD"}, "paymentIntent": "AuthorizeWithCapture"}
FINALIZE = json.dumps({"chargeAmount": {"amount": "14.00", "currencyCode": "USD"},
                       "paymentIntent": "AuthorizeWithCapture"}).encode()


def test_oldest_sessions_and_their_charges_are_dropped() -> None:
    state = EmulatorState(lambda: datetime.now(UTC), max_sessions=3, max_saved=2)
    ids = []
    for n in range(5):
        session = state.create_session(parse_session_spec(SPEC))
        ids.append(session.session_id)
        key = f"key-{n}"
        status, _ = state.idempotent("merchant", key, "fp",
                                     lambda s=session: state.finalize(s.session_id, FINALIZE, "sandbox"))
        assert status == 200
    assert list(state.sessions) == ids[2:]
    assert {c.session_id for c in state.charges.values()} == set(ids[2:])  # charges left with their session
    assert list(state.saved) == [("merchant", "key-3"), ("merchant", "key-4")]
    with pytest.raises(ApiError) as dropped:
        state.get_session(ids[0], "sandbox")
    assert dropped.value.status == 404
