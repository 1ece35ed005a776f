"""Request authentication for the emulator, as Amazon Pay's API front end does it. Pure: no I/O.

The SDKs canonicalize slightly differently (Node/PHP sign the path and header values as sent; Java/.NET
percent-encode the path, and Java replaces each whitespace character of a header value with one space
without collapsing runs, so `tok \\tx` is signed as `tok  x`; some clients collapse each run into one
space; Node leaves !'()* unencoded in query values), so a signature is accepted when it verifies over
any of those few canonical forms of the same request.
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import quote, unquote

from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey

from router.amazon_pay.signing import (
    REGION_ALIASES,
    SALT_LENGTHS,
    ParsedAuthorization,
    assemble_canonical_request,
    canonical_headers,
    canonical_query,
    canonical_uri,
    parse_authorization_header,
    parse_date,
    signed_header_list,
    string_to_sign,
    verify,
)

_NODE_SAFE = "-_.!~*'()"  # what JavaScript's encodeURIComponent leaves alone


class ApiError(Exception):
    """An Amazon-style error answer: HTTP status plus {"reasonCode", "message"}."""

    def __init__(self, status: int, reason_code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.reason_code = reason_code
        self.message = message


@dataclass(frozen=True)
class IncomingRequest:
    method: str
    raw_path: str  # percent-encoded path as received, without the query
    query_string: str  # raw query as received
    headers: Mapping[str, Sequence[str]]  # lower-case name -> values in arrival order
    body: bytes

    def header(self, name: str) -> str | None:
        values = self.headers.get(name)
        return ",".join(values) if values else None


def _required_header(request: IncomingRequest, name: str) -> str:
    value = request.header(name)
    if value is None:
        raise ApiError(400, "MissingHeader", f"The {name} header is missing from the request.")
    if not value.strip():
        raise ApiError(400, "MissingHeaderValue", f"The {name} header was sent without a value.")
    return value


def _parse_authorization(value: str) -> ParsedAuthorization:
    try:
        parsed = parse_authorization_header(value)
    except ValueError as exc:
        raise ApiError(400, "InvalidHeaderValue", f"The authorization header is malformed: {exc}.") from None
    if parsed.algorithm not in SALT_LENGTHS:
        raise ApiError(
            400,
            "InvalidHeaderValue",
            f"The value {parsed.algorithm} provided for the signing algorithm is invalid.",
        )
    if "x-amz-pay-date" not in parsed.signed_headers:
        raise ApiError(400, "InvalidHeaderValue", "SignedHeaders must include x-amz-pay-date.")
    return parsed


def _check_date(value: str, now: datetime, max_future_skew: float) -> None:
    try:
        moment = parse_date(value.strip())
    except ValueError:
        raise ApiError(
            400, "InvalidHeaderValue", f"The value {value} provided for x-amz-pay-date is invalid."
        ) from None
    if (moment - now).total_seconds() > max_future_skew:
        raise ApiError(
            400,
            "InvalidHeaderValue",
            f"The value {value} provided for x-amz-pay-date should not be in future",
        )


def _check_region(request: IncomingRequest) -> None:
    region = request.header("x-amz-pay-region")
    if region is not None and region.strip().lower() not in REGION_ALIASES:
        raise ApiError(
            400, "InvalidHeaderValue", f"The value {region} provided for x-amz-pay-region is invalid."
        )


def _query_pairs(query_string: str) -> list[tuple[str, str]]:
    pairs: list[tuple[str, str]] = []
    for part in query_string.split("&"):
        if part:
            key, _, value = part.partition("=")
            pairs.append((unquote(key), unquote(value)))
    return pairs


def _query_variants(query_string: str) -> list[str]:
    pairs = _query_pairs(query_string)
    node = "&".join(f"{k}={quote(v, safe=_NODE_SAFE)}" for k, v in sorted(pairs))
    without_empty = canonical_query([(k, v) for k, v in pairs if v])  # PHP drops empty values
    return list(dict.fromkeys([canonical_query(pairs), node, without_empty]))


def _path_variants(raw_path: str) -> list[str]:
    return list(dict.fromkeys([canonical_uri(raw_path), unquote(raw_path) or "/"]))


def _header_variants(request: IncomingRequest, names: list[str]) -> list[str]:
    values = {}
    for name in names:
        value = request.header(name)
        if value is None:
            raise ApiError(400, "MissingHeader", f"The signed header {name} is missing from the request.")
        values[name] = value
    plain = canonical_headers(values, names)
    java = canonical_headers(values, names, space_each_whitespace=True)
    collapsed = canonical_headers(values, names, collapse_whitespace=True)
    return list(dict.fromkeys([plain, java, collapsed]))


def strings_to_sign(request: IncomingRequest, auth: ParsedAuthorization) -> list[str]:
    """Every string to sign the request could have been signed over; the first is the strict RFC form."""
    names = signed_header_list(auth.signed_headers)
    body_hash = hashlib.sha256(request.body).hexdigest()
    combos = itertools.product(
        _path_variants(request.raw_path),
        _query_variants(request.query_string),
        _header_variants(request, names),
    )
    return [
        string_to_sign(auth.algorithm, assemble_canonical_request(request.method, p, q, h, names, body_hash))
        for p, q, h in combos
    ]


def authenticate(
    request: IncomingRequest,
    public_keys: Mapping[str, RSAPublicKey],
    now: datetime,
    max_future_skew: float,
) -> str:
    """Return the caller's PublicKeyId, or raise ApiError exactly as Amazon Pay would answer."""
    auth = _parse_authorization(_required_header(request, "authorization"))
    date = _required_header(request, "x-amz-pay-date")
    key = public_keys.get(auth.public_key_id)
    if key is None:
        raise ApiError(401, "UnauthorizedAccess", "The PublicKeyId provided is not registered or not active.")
    _check_date(date, now, max_future_skew)
    _check_region(request)
    candidates = strings_to_sign(request, auth)
    if not any(verify(key, auth.algorithm, candidate, auth.signature) for candidate in candidates):
        raise ApiError(
            403,
            "InvalidRequestSignature",
            f"Unable to verify signature, signing String [{candidates[0]}] , signature [{auth.signature}]",
        )
    return auth.public_key_id
