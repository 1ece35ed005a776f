"""Amazon Pay API v2: request signing, an async client and a faithful local emulator.

Self-contained: nothing here imports the rest of `router`.
"""

from router.amazon_pay.client import AmazonPayClient, serialize_payload, validate_idempotency_key
from router.amazon_pay.emulator.app import create_emulator_app, run
from router.amazon_pay.errors import AmazonPayError, AmazonPayProtocolError, AmazonPayTransportError
from router.amazon_pay.keys import generate_key_pair, load_private_key, load_public_key
from router.amazon_pay.models import Amount, Charge, CheckoutSession, ClientConfig, FinalizeResult, RetryPolicy, mask_id
from router.amazon_pay.signing import (
    ALGORITHM_V1,
    ALGORITHM_V2,
    AmazonPayAuth,
    authorization_header,
    canonical_headers,
    canonical_query,
    canonical_request,
    canonical_uri,
    format_date,
    normalize_region,
    sign,
    sign_payload,
    string_to_sign,
    verify,
)

__all__ = [
    "ALGORITHM_V1",
    "ALGORITHM_V2",
    "AmazonPayAuth",
    "AmazonPayClient",
    "AmazonPayError",
    "AmazonPayProtocolError",
    "AmazonPayTransportError",
    "Amount",
    "Charge",
    "CheckoutSession",
    "ClientConfig",
    "FinalizeResult",
    "RetryPolicy",
    "authorization_header",
    "canonical_headers",
    "canonical_query",
    "canonical_request",
    "canonical_uri",
    "create_emulator_app",
    "format_date",
    "generate_key_pair",
    "load_private_key",
    "load_public_key",
    "mask_id",
    "normalize_region",
    "run",
    "serialize_payload",
    "sign",
    "sign_payload",
    "string_to_sign",
    "validate_idempotency_key",
    "verify",
]
