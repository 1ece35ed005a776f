"""Shared helpers for the Amazon Pay tests (fixtures live in conftest.py)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import httpx
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey

from router.amazon_pay import ClientConfig, RetryPolicy, load_private_key

SANDBOX_KEY_ID = "SANDBOX-AHTESTKEY0000000000000"
LIVE_KEY_ID = "LIVE-AHTESTKEY00000000000000000"
LEGACY_KEY_ID = "AHLEGACYTESTKEY000000000000"
FAST_RETRY = RetryPolicy(
    max_attempts=4,
    base_delay=0.01,
    max_delay=0.05,
    jitter=False,
    connect_timeout=2,
    read_timeout=5,
    deadline=10,
)
ORDER = {"chargeAmount": {"amount": "14.00", "currencyCode": "USD"}, "paymentIntent": "AuthorizeWithCapture"}


@dataclass(frozen=True)
class KeyPair:
    private_pem: bytes = field(repr=False)
    public_pem: bytes = field(repr=False)

    @property
    def private_key(self) -> RSAPrivateKey:
        return load_private_key(self.private_pem)


def make_config(keys: KeyPair, url: str | None, **overrides: Any) -> ClientConfig:
    options: dict[str, Any] = {
        "public_key_id": SANDBOX_KEY_ID,
        "private_key": keys.private_key,
        "region": "us",
        "endpoint": url,
        "retry": FAST_RETRY,
    }
    options.update(overrides)
    return ClientConfig(**options)


def create_session(url: str, **spec: Any) -> str:
    """A checkout session in the emulator (test API); returns its id."""
    body = {
        "chargeAmount": {"amount": "14.00", "currencyCode": "USD"},
        "paymentIntent": "AuthorizeWithCapture",
    }
    body.update(spec)
    response = httpx.post(f"{url}/_emulator/checkout-sessions", json=body)
    assert response.status_code == 201, response.text
    return str(response.json()["checkoutSessionId"])


def received(url: str, session_id: str) -> list[dict[str, Any]]:
    """The emulator's log of Amazon-surface requests for one session."""
    entries = httpx.get(f"{url}/_emulator/requests").json()["requests"]
    return [e for e in entries if e["checkoutSessionId"] == session_id]
