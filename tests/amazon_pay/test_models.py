"""Models, configuration validation and retry arithmetic (pure)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from router.amazon_pay import ALGORITHM_V1, CheckoutSession, ClientConfig, RetryPolicy, mask_id
from router.amazon_pay.client import base_url, serialize_payload, validate_idempotency_key
from router.amazon_pay.errors import AmazonPayError, AmazonPayTransportError
from router.amazon_pay.models import Charge
from router.amazon_pay.retry import MAX_RETRY_AFTER, backoff_delay, next_delay, parse_retry_after
from tests.amazon_pay.helpers import KeyPair

SESSION_ID = "bd504926-f659-4ad7-a1a9-9a747aaf5275"
SESSION_JSON: dict[str, Any] = {
    "checkoutSessionId": SESSION_ID,
    "statusDetails": {"state": "Completed", "reasonCode": None, "reasonDescription": None},
    "chargeId": "S01-1234567-1234567-C123456",
    "chargePermissionId": "S01-1234567-1234567",
    "buyer": {"buyerId": "amzn1.account.X", "name": "Jane Doe", "email": "jane@example.com"},
    "paymentPreferences": [{"paymentDescriptor": "Visa ****1111"}],
    "billingAddress": {"name": "Jane Doe", "countryCode": "US"},
    "paymentDetails": {"chargeAmount": {"amount": "14.00", "currencyCode": "USD"}},
}


def test_checkout_session_from_json_and_masked_repr() -> None:
    session = CheckoutSession.from_json(SESSION_JSON)
    assert session.state == "Completed" and session.charge_id == "S01-1234567-1234567-C123456"
    assert (session.buyer_name, session.buyer_email, session.buyer_id) == (
        "Jane Doe",
        "jane@example.com",
        "amzn1.account.X",
    )
    assert session.payment_descriptor == "Visa ****1111"
    assert session.billing_address == {"name": "Jane Doe", "countryCode": "US"}
    assert session.charge_amount is not None and session.charge_amount.amount == "14.00"
    text = repr(session)
    assert SESSION_ID not in text and "bd50…5275" in text
    assert "Jane" not in text and "jane@example.com" not in text


def test_from_json_rejects_incomplete_objects_and_accepts_numeric_amounts() -> None:
    with pytest.raises(ValueError, match="checkoutSessionId"):
        CheckoutSession.from_json({"statusDetails": {"state": "Open"}})
    with pytest.raises(ValueError, match="statusDetails"):
        CheckoutSession.from_json({"checkoutSessionId": "x"})
    sparse = CheckoutSession.from_json(
        {
            "checkoutSessionId": "x",
            "statusDetails": {"state": "Open"},
            "paymentDetails": {"chargeAmount": {"amount": 10, "currencyCode": "USD"}},
        }
    )
    assert sparse.buyer_name is None and sparse.billing_address is None and sparse.charge_amount is not None
    assert sparse.charge_amount.amount == "10"
    charge = Charge.from_json(
        {"chargeId": "C1", "statusDetails": {"state": "Declined", "reasonCode": "HardDeclined"}}
    )
    assert (charge.state, charge.reason_code, charge.charge_amount) == ("Declined", "HardDeclined", None)


def test_mask_id() -> None:
    assert mask_id(SESSION_ID) == "bd50…5275"
    assert mask_id("short") == "…rt"
    assert mask_id(None) == "-"


def test_config_environment_and_paths(keys: KeyPair) -> None:
    key = keys.private_key
    assert ClientConfig("SANDBOX-A", key).api_path_prefix == "/v2"
    assert ClientConfig("live-a", key, environment="live").api_path_prefix == "/v2"
    assert ClientConfig("LEGACY", key, environment="sandbox").api_path_prefix == "/sandbox/v2"
    assert ClientConfig("LEGACY", key, environment="live").api_path_prefix == "/live/v2"
    with pytest.raises(ValueError, match="legacy"):
        ClientConfig("LEGACY", key)
    with pytest.raises(ValueError, match="sandbox key"):
        ClientConfig("SANDBOX-A", key, environment="live")
    config = ClientConfig("SANDBOX-A", key, region="UK", algorithm=ALGORITHM_V1)
    assert config.region == "eu" and base_url(config) == "https://pay-api.amazon.eu"
    assert (
        base_url(ClientConfig("SANDBOX-A", key, endpoint="http://127.0.0.1:9/prefix/"))
        == "http://127.0.0.1:9/prefix"
    )
    assert "PRIVATE" not in repr(config) and "private_key" not in repr(config)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"public_key_id": ""}, "public_key_id"),
        ({"region": "fr"}, "region"),
        ({"algorithm": "RSA"}, "algorithm"),
        ({"environment": "prod"}, "environment"),
        ({"endpoint": "ftp://x"}, "endpoint"),
        ({"endpoint": "https://x/?q=1"}, "endpoint"),
        ({"private_key": "-----BEGIN PRIVATE KEY-----"}, "private_key"),
    ],
)
def test_config_rejects_bad_values(keys: KeyPair, overrides: dict[str, Any], message: str) -> None:
    options: dict[str, Any] = {"public_key_id": "SANDBOX-A", "private_key": keys.private_key, **overrides}
    with pytest.raises(ValueError, match=message):
        ClientConfig(**options)


@pytest.mark.parametrize(
    "overrides",
    [
        {"max_attempts": 0},
        {"max_attempts": 1.5},
        {"base_delay": -1},
        {"deadline": 0},
        {"read_timeout": float("inf")},
    ],
)
def test_retry_policy_validation(overrides: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="RetryPolicy"):
        RetryPolicy(**overrides)


def test_backoff_and_retry_after() -> None:
    policy = RetryPolicy(base_delay=1.0, max_delay=8.0, jitter=False)
    assert [backoff_delay(policy, n, lambda: 0.0) for n in (1, 2, 3, 4, 5)] == [1.0, 2.0, 4.0, 8.0, 8.0]
    jittered = RetryPolicy(base_delay=1.0, max_delay=8.0, jitter=True)
    assert backoff_delay(jittered, 3, lambda: 0.0) == 2.0 and backoff_delay(jittered, 3, lambda: 1.0) == 4.0
    now = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert parse_retry_after("7", now) == 7.0
    assert parse_retry_after("0.25", now) == 0.25
    assert parse_retry_after("Thu, 02 Jan 2025 03:04:15 GMT", now) == 10.0
    assert parse_retry_after("Thu, 02 Jan 2025 03:00:00 GMT", now) == 0.0
    assert parse_retry_after("soon", now) is None and parse_retry_after(None, now) is None
    assert next_delay(policy, 1, 3.0, lambda: 0.0) == 3.0 and next_delay(policy, 2, None, lambda: 0.0) == 2.0
    assert parse_retry_after("3600", now) == 3600.0  # as Amazon said it; obeyed at most MAX_RETRY_AFTER:
    assert next_delay(policy, 1, 3600.0, lambda: 0.0) == MAX_RETRY_AFTER == 30.0


def test_idempotency_key_and_payload_rules() -> None:
    assert validate_idempotency_key("a" * 32) == "a" * 32
    for bad in ["", "a" * 33, "bd504926-f659-4ad7-a1a9-9a747aaf5275", "has space", "ümlaut"]:
        with pytest.raises(ValueError, match="idempotency_key"):
            validate_idempotency_key(bad)
    assert serialize_payload({"a": {"b": "ü"}, "n": 1}) == '{"a":{"b":"ü"},"n":1}'.encode()
    with pytest.raises(ValueError, match="JSON"):
        serialize_payload({"x": float("nan")})
    with pytest.raises(ValueError, match="JSON"):
        serialize_payload({"x": object()})


def test_error_retryable_flags_and_text() -> None:
    assert AmazonPayError("x", status=503).retryable and AmazonPayError("x", status=429).retryable
    assert AmazonPayError("x", status=425).retryable and not AmazonPayError("x", status=422).retryable
    assert AmazonPayTransportError("x").retryable
    text = str(AmazonPayError("boom", status=400, reason_code="InvalidParameterValue", request_id="r-1"))
    assert "InvalidParameterValue" in text and "r-1" in text
