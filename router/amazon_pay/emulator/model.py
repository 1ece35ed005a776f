"""The emulator's records: prices, what a test asked for, sessions, charges (plain data, no behaviour)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

JSON = dict[str, Any]


@dataclass(frozen=True)
class Price:
    amount: Decimal
    text: str
    currency: str

    def to_json(self) -> JSON:
        return {"amount": self.text, "currencyCode": self.currency}


@dataclass(frozen=True)
class SessionSpec:
    """What a test asks for via POST /_emulator/checkout-sessions."""

    charge_amount: Price
    payment_intent: str
    scenario: str = "completed"
    total_order_amount: Price | None = None
    supplementary_data: str | None = None
    buyer: Mapping[str, str] = field(default_factory=dict)
    result_return_url: str | None = None  # webCheckoutDetails.checkoutResultReturnUrl
    fail_first_n: int = 0
    fail_status: int = 503
    retry_after: float | None = None
    latency_ms: int = 0
    latency_first_n: int | None = None  # None: every call is delayed
    pending_polls: int = 1


@dataclass
class Charge:
    charge_id: str
    charge_permission_id: str
    session_id: str
    amount: Price
    state: str
    final_state: str
    polls_left: int
    created: datetime
    updated: datetime
    reason_code: str | None = None


@dataclass
class Session:
    session_id: str
    spec: SessionSpec
    buyer: JSON
    state: str
    created: datetime
    updated: datetime
    reason_code: str | None = None
    reason_description: str | None = None
    charge_id: str | None = None
    charge_permission_id: str | None = None
    can_handle_pending: bool = False
    calls: int = 0
