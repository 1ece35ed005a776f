"""Typed results and configuration for the Amazon Pay client (frozen dataclasses, validated on creation)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import urlsplit

from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey

from router.amazon_pay.signing import ALGORITHM_V2, normalize_region, salt_length

Environment = Literal["live", "sandbox"]


def mask_id(value: str | None) -> str:
    """First 4 and last 4 characters only: enough to correlate logs, not enough to act on a session."""
    if not value:
        return "-"
    if len(value) <= 12:
        return "…" + value[-2:]
    return f"{value[:4]}…{value[-4:]}"


def _str_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


@dataclass(frozen=True)
class Amount:
    amount: str
    currency_code: str

    @classmethod
    def from_json(cls, data: Any) -> Amount | None:
        """Amounts arrive as strings ("14.00") or, from some SDK callers, as numbers; keep the text."""
        if not isinstance(data, Mapping):
            return None
        amount, currency = data.get("amount"), data.get("currencyCode")
        if (
            isinstance(amount, bool)
            or not isinstance(amount, str | int | float)
            or not isinstance(currency, str)
        ):
            return None
        return cls(str(amount), currency)


def _status_details(data: Mapping[str, Any], what: str) -> Mapping[str, Any]:
    details = data.get("statusDetails")
    if not isinstance(details, Mapping) or not isinstance(details.get("state"), str):
        raise ValueError(f"{what} has no statusDetails.state")
    return details


@dataclass(frozen=True, repr=False)
class CheckoutSession:
    checkout_session_id: str
    state: str
    reason_code: str | None
    reason_description: str | None
    charge_id: str | None
    charge_permission_id: str | None
    buyer_name: str | None
    buyer_email: str | None
    buyer_id: str | None
    payment_descriptor: str | None
    billing_address: dict[str, Any] | None
    charge_amount: Amount | None
    raw: dict[str, Any] = field(compare=False)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> CheckoutSession:
        """Build from Amazon's JSON; ValueError when the id or statusDetails.state is missing."""
        session_id = data.get("checkoutSessionId")
        if not isinstance(session_id, str) or not session_id:
            raise ValueError("checkout session has no checkoutSessionId")
        details = _status_details(data, "checkout session")
        buyer = _mapping(data.get("buyer"))
        preferences = data.get("paymentPreferences")
        first_pref = _mapping(preferences[0]) if isinstance(preferences, list) and preferences else {}
        billing = data.get("billingAddress")
        return cls(
            checkout_session_id=session_id,
            state=details["state"],
            reason_code=_str_or_none(details.get("reasonCode")),
            reason_description=_str_or_none(details.get("reasonDescription")),
            charge_id=_str_or_none(data.get("chargeId")),
            charge_permission_id=_str_or_none(data.get("chargePermissionId")),
            buyer_name=_str_or_none(buyer.get("name")),
            buyer_email=_str_or_none(buyer.get("email")),
            buyer_id=_str_or_none(buyer.get("buyerId")),
            payment_descriptor=_str_or_none(first_pref.get("paymentDescriptor")),
            billing_address=dict(billing) if isinstance(billing, Mapping) else None,
            charge_amount=Amount.from_json(_mapping(data.get("paymentDetails")).get("chargeAmount")),
            raw=dict(data),
        )

    def __repr__(self) -> str:
        # Buyer data and the full session id stay out of reprs (and so out of logs and tracebacks).
        return (
            f"CheckoutSession(id={mask_id(self.checkout_session_id)!r}, state={self.state!r}, "
            f"reason_code={self.reason_code!r}, charge_id={mask_id(self.charge_id)!r})"
        )


@dataclass(frozen=True, repr=False)
class Charge:
    charge_id: str
    state: str
    reason_code: str | None
    charge_amount: Amount | None
    charge_permission_id: str | None
    raw: dict[str, Any] = field(compare=False)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Charge:
        charge_id = data.get("chargeId")
        if not isinstance(charge_id, str) or not charge_id:
            raise ValueError("charge has no chargeId")
        details = _status_details(data, "charge")
        return cls(
            charge_id=charge_id,
            state=details["state"],
            reason_code=_str_or_none(details.get("reasonCode")),
            charge_amount=Amount.from_json(data.get("chargeAmount")),
            charge_permission_id=_str_or_none(data.get("chargePermissionId")),
            raw=dict(data),
        )

    def __repr__(self) -> str:
        return (
            f"Charge(id={mask_id(self.charge_id)!r}, state={self.state!r}, reason_code={self.reason_code!r})"
        )


@dataclass(frozen=True)
class FinalizeResult:
    """200: finalized (paid only if session.state is Completed). 202: authorization pending; poll."""

    http_status: Literal[200, 202]
    session: CheckoutSession

    @property
    def pending(self) -> bool:
        return self.http_status == 202


def _check_positive(name: str, value: float, *, allow_zero: bool = False) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"RetryPolicy.{name} must be a finite number")
    if value < 0 or (value == 0 and not allow_zero):
        raise ValueError(f"RetryPolicy.{name} must be {'>= 0' if allow_zero else '> 0'}, got {value}")


@dataclass(frozen=True)
class RetryPolicy:
    """Retries 408/425/429/5xx and connection/timeout errors with capped exponential backoff.

    Delays are base_delay * 2**(attempt-1) capped at max_delay (jitter: a random 50-100 % of that);
    a Retry-After answer replaces the computed delay. Nothing waits or sends beyond `deadline`
    seconds after the first attempt started.
    """

    max_attempts: int = 4
    base_delay: float = 1.0
    max_delay: float = 8.0
    jitter: bool = True
    connect_timeout: float = 5.0
    read_timeout: float = 30.0
    deadline: float = 60.0

    def __post_init__(self) -> None:
        if (
            isinstance(self.max_attempts, bool)
            or not isinstance(self.max_attempts, int)
            or self.max_attempts < 1
        ):
            raise ValueError("RetryPolicy.max_attempts must be an integer >= 1")
        _check_positive("base_delay", self.base_delay, allow_zero=True)
        _check_positive("max_delay", self.max_delay, allow_zero=True)
        for name in ("connect_timeout", "read_timeout", "deadline"):
            _check_positive(name, getattr(self, name))


def _check_endpoint(endpoint: str) -> str:
    parts = urlsplit(endpoint)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment:
        raise ValueError(f"endpoint must be an http(s) URL without query or fragment, got {endpoint!r}")
    return endpoint.rstrip("/")


@dataclass(frozen=True)
class ClientConfig:
    """Everything the client needs. Keys prefixed LIVE-/SANDBOX- select their environment themselves;
    legacy (unprefixed) keys need `environment`, which becomes a /live or /sandbox path prefix."""

    public_key_id: str
    private_key: RSAPrivateKey = field(repr=False)
    region: str = "na"
    environment: Environment | None = None
    algorithm: str = ALGORITHM_V2
    endpoint: str | None = None
    retry: RetryPolicy = field(default_factory=RetryPolicy)

    def __post_init__(self) -> None:
        if not isinstance(self.public_key_id, str) or not self.public_key_id.strip():
            raise ValueError("public_key_id must be a non-empty string")
        if not isinstance(self.private_key, RSAPrivateKey):
            raise ValueError("private_key must be an RSA private key (see keys.load_private_key)")
        object.__setattr__(self, "region", normalize_region(self.region))
        salt_length(self.algorithm)
        if self.environment not in (None, "live", "sandbox"):
            raise ValueError(f"environment must be 'live', 'sandbox' or None, got {self.environment!r}")
        self._check_environment()
        if self.endpoint is not None:
            object.__setattr__(self, "endpoint", _check_endpoint(self.endpoint))

    def _check_environment(self) -> None:
        key_env = self.key_environment
        if key_env is None and self.environment is None:
            raise ValueError(
                "a legacy public_key_id (no LIVE-/SANDBOX- prefix) needs environment 'live' or 'sandbox'"
            )
        if key_env is not None and self.environment not in (None, key_env):
            raise ValueError(f"public_key_id is a {key_env} key but environment is {self.environment!r}")

    @property
    def key_environment(self) -> Environment | None:
        """The environment a LIVE-/SANDBOX- key carries, or None for a legacy key."""
        upper = self.public_key_id.upper()
        if upper.startswith("LIVE"):
            return "live"
        if upper.startswith("SANDBOX"):
            return "sandbox"
        return None

    @property
    def api_path_prefix(self) -> str:
        """`/v2` for environment-specific keys, `/sandbox/v2` or `/live/v2` for legacy keys."""
        if self.key_environment is not None:
            return "/v2"
        return f"/{self.environment}/v2"
