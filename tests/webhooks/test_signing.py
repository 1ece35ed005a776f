"""Signatures: the Stripe-like `t=…,v1=…` header, checked against an independent HMAC computation."""

from __future__ import annotations

import hashlib
import hmac

import pytest
from hypothesis import given
from hypothesis import strategies as st

from router.store.base import OutboxEvent
from router.webhooks.signature import (
    MAX_T_DIGITS,
    USER_AGENT,
    hmac_signature,
    parse_signature_header,
    verify_signature,
    webhook_headers,
)

SECRET = "whsec_test_0123456789abcdef"
BODY = b'{"id":"evt_1","type":"checkout.completed","created":1700000000,"data":{"ref":"r"}}'
T = 1_700_000_000


def test_known_vector_matches_an_independent_hmac() -> None:
    expected = hmac.new(SECRET.encode(), f"{T}.".encode() + BODY, hashlib.sha256).hexdigest()
    assert hmac_signature(SECRET, BODY, T) == f"t={T},v1={expected}"


def test_fixed_vector() -> None:
    # Computed outside Python with: printf '1.{}' | openssl dgst -sha256 -hmac key
    assert hmac_signature("key", b"{}", 1) == (
        "t=1,v1=1ba6b8171186efc613e8bcc0cbdab2748f24984d7c5a84faa2637afa0e40d224"
    )


def test_good_signature_verifies() -> None:
    header = hmac_signature(SECRET, BODY, T)
    assert verify_signature(SECRET, BODY, header, now=T + 10)


@pytest.mark.parametrize(
    ("secret", "body", "now"),
    [
        (SECRET, BODY + b" ", T),  # tampered body
        (SECRET, BODY.replace(b"completed", b"declined"), T),
        ("whsec_other", BODY, T),  # wrong secret
        (SECRET, BODY, T + 301),  # stale
        (SECRET, BODY, T - 301),  # from the future beyond the tolerance
        ("", BODY, T),  # no secret: fail closed
    ],
)
def test_bad_signature_fails(secret: str, body: bytes, now: float) -> None:
    assert not verify_signature(secret, body, hmac_signature(SECRET, BODY, T), now=now)


def test_tolerance_is_configurable() -> None:
    header = hmac_signature(SECRET, BODY, T)
    assert verify_signature(SECRET, BODY, header, now=T + 300)
    assert not verify_signature(SECRET, BODY, header, now=T + 60, tolerance=30)


@pytest.mark.parametrize(
    "header",
    [
        "",
        "garbage",
        f"t={T}",  # no signature
        "v1=abcd",  # no timestamp
        f"t=,v1={'0' * 64}",
        f"t=abc,v1={'0' * 64}",
        f"t=-5,v1={'0' * 64}",
        f"t={T},t={T},v1={'0' * 64}",  # two timestamps
        f"t={T},v1=",
        f"t={T};v1={'0' * 64}",
        f"t=１２３,v1={'0' * 64}",  # non-ASCII digits
        f"t={'9' * 400},v1={'0' * 64}",  # beyond a float: would overflow the tolerance check
        f"t={'9' * 5000},v1={'0' * 64}",  # beyond int()'s 4,300 digits
    ],
)
def test_malformed_header_fails(header: str) -> None:
    assert parse_signature_header(header) is None
    assert not verify_signature(SECRET, BODY, header, now=T)


def test_several_v1_values_for_secret_rotation() -> None:
    old = hmac_signature("whsec_old", BODY, T).split(",")[1]
    new = hmac_signature("whsec_new", BODY, T).split(",")[1]
    header = f"t={T},{old},{new}"
    assert verify_signature("whsec_old", BODY, header, now=T)
    assert verify_signature("whsec_new", BODY, header, now=T)
    assert not verify_signature("whsec_gone", BODY, header, now=T)


def test_unknown_schemes_are_ignored_and_spaces_tolerated() -> None:
    v1 = hmac_signature(SECRET, BODY, T).split(",")[1]
    assert verify_signature(SECRET, BODY, f"t={T}, v0=deadbeef, {v1}", now=T)


def test_non_hex_signature_does_not_crash() -> None:
    assert not verify_signature(SECRET, BODY, f"t={T},v1=ü{'0' * 63}", now=T)


def test_sign_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="secret"):
        hmac_signature("", BODY, T)
    with pytest.raises(ValueError, match="timestamp"):
        hmac_signature(SECRET, BODY, -1)
    with pytest.raises(ValueError, match="timestamp"):
        hmac_signature(SECRET, BODY, 1.5)  # type: ignore[arg-type]


@given(body=st.binary(max_size=512), secret=st.text(min_size=1, max_size=40),
       t=st.integers(min_value=0, max_value=10**MAX_T_DIGITS - 1), flip=st.integers(min_value=0))
def test_roundtrip_and_any_flipped_byte_fails(body: bytes, secret: str, t: int, flip: int) -> None:
    header = hmac_signature(secret, body, t)
    assert verify_signature(secret, body, header, now=t)
    if body:
        i = flip % len(body)
        tampered = body[:i] + bytes([body[i] ^ 0x01]) + body[i + 1:]
        assert not verify_signature(secret, tampered, header, now=t)


def test_headers_of_an_attempt() -> None:
    event = OutboxEvent(id="evt_abc", ref="ref_0123456789abcdefghij", type="checkout.pending",
                        created=T, body=BODY, seq=1)
    headers = webhook_headers(event, SECRET, T + 5)
    assert headers["Content-Type"] == "application/json"
    assert headers["User-Agent"] == USER_AGENT
    assert USER_AGENT.startswith("return-router/") and len(USER_AGENT) > len("return-router/")
    assert headers["Return-Router-Event-Id"] == "evt_abc"
    assert headers["Return-Router-Event-Type"] == "checkout.pending"
    assert verify_signature(SECRET, BODY, headers["Return-Router-Signature"], now=T + 5)
    assert headers["Return-Router-Signature"].startswith(f"t={T + 5},v1=")
    assert SECRET not in "".join(headers.values())
