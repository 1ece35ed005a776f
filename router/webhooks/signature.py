"""The webhook signature contract: headers, the `t=…,v1=…` HMAC-SHA256 signature and its check.

Merchants verify exactly this (docs/backend.md); the worker signs each attempt at send time.
"""

from __future__ import annotations

import hashlib
import hmac
import time

from router.store.base import OutboxEvent
from router.version import version

SIGNATURE_HEADER = "Return-Router-Signature"
EVENT_ID_HEADER = "Return-Router-Event-Id"
EVENT_TYPE_HEADER = "Return-Router-Event-Type"


USER_AGENT = f"return-router/{version()}"


# --- signatures ----------------------------------------------------------------------------------


def _digest(secret: str, body: bytes, timestamp: int) -> str:
    message = str(timestamp).encode() + b"." + body
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def hmac_signature(secret: str, body: bytes, timestamp: int) -> str:
    """The `Return-Router-Signature` value: `t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "t.body")>`."""
    if not secret:
        raise ValueError("webhook secret must not be empty")
    if isinstance(timestamp, bool) or not isinstance(timestamp, int) or timestamp < 0:
        raise ValueError("timestamp must be a non-negative integer (Unix seconds)")
    return f"t={timestamp},v1={_digest(secret, body, timestamp)}"


MAX_T_DIGITS = 12  # unix seconds until the year 33658; a longer `t` would overflow the time arithmetic


def parse_signature_header(header: str) -> tuple[int, list[str]] | None:
    """(timestamp, [v1 signatures]) from a header, or None when it is malformed.

    Unknown schemes (v0=…, v2=…) are ignored so the format can grow; exactly one `t` is required.
    """
    timestamp: int | None = None
    signatures: list[str] = []
    for part in header.split(","):
        key, sep, value = part.strip().partition("=")
        if not sep or not value:
            return None
        if key == "t":
            if timestamp is not None or not value.isascii() or not value.isdigit() or len(value) > MAX_T_DIGITS:
                return None
            timestamp = int(value)
        elif key == "v1":
            signatures.append(value)
    if timestamp is None or not signatures:
        return None
    return timestamp, signatures


def verify_signature(
    secret: str, body: bytes, header: str, *, tolerance: int = 300, now: float | None = None
) -> bool:
    """True when one of the header's v1 signatures matches and its timestamp is within `tolerance`.

    Several v1 values are accepted so a sender can sign with an old and a new secret while the
    receiver rotates. Every comparison is constant-time; anything malformed fails closed.
    """
    if not secret or not isinstance(header, str):
        return False
    parsed = parse_signature_header(header)
    if parsed is None:
        return False
    timestamp, candidates = parsed
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance:
        return False
    expected = _digest(secret, body, timestamp).encode()
    matched = False
    for candidate in candidates:  # no early exit: the time taken does not tell which one matched
        matched |= hmac.compare_digest(expected, candidate.encode("ascii", "replace"))
    return matched


def webhook_headers(event: OutboxEvent, secret: str, timestamp: int) -> dict[str, str]:
    """Every header of one delivery attempt of `event`, signed at `timestamp`."""
    return {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        EVENT_ID_HEADER: event.id,
        EVENT_TYPE_HEADER: event.type,
        SIGNATURE_HEADER: hmac_signature(secret, event.body, timestamp),
    }


