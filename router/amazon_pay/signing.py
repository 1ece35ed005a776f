"""Amazon Pay API v2 request signing: canonical request, string to sign, RSASSA-PSS, and an httpx.Auth.

Everything above `AmazonPayAuth` is a pure function; the emulator verifies with the same code.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import quote

import httpx
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey, RSAPublicKey

from router.outbound import InPlaceAuth, header_values, set_headers

ALGORITHM_V1 = "AMZN-PAY-RSASSA-PSS"
ALGORITHM_V2 = "AMZN-PAY-RSASSA-PSS-V2"
# The salt length follows the algorithm label; crossing them makes Amazon reject the signature.
SALT_LENGTHS: Mapping[str, int] = {ALGORITHM_V1: 20, ALGORITHM_V2: 32}
EMPTY_BODY_SHA256 = hashlib.sha256(b"").hexdigest()

REGION_ALIASES: Mapping[str, str] = {"na": "na", "us": "na", "eu": "eu", "de": "eu", "uk": "eu", "jp": "jp"}
REGION_HOSTS: Mapping[str, str] = {
    "na": "pay-api.amazon.com",
    "eu": "pay-api.amazon.eu",
    "jp": "pay-api.amazon.jp",
}

# Headers the client always signs (idempotency key added when present). user-agent is never signed:
# the HTTP stack may rewrite it.
STANDARD_SIGNED_HEADERS = ("accept", "content-type", "x-amz-pay-date", "x-amz-pay-host", "x-amz-pay-region")
IDEMPOTENCY_HEADER = "x-amz-pay-idempotency-key"

QueryInput = Mapping[str, str | Sequence[str]] | Sequence[tuple[str, str]] | None

_UNRESERVED = "-_.~"
_PERCENT_TRIPLET = re.compile(r"%[0-9A-Fa-f]{2}")
_COMPACT_DATE = "%Y%m%dT%H%M%SZ"
_ISO_DATE = "%Y-%m-%dT%H:%M:%SZ"


def salt_length(algorithm: str) -> int:
    """PSS salt length for an algorithm label; ValueError for labels Amazon does not define."""
    try:
        return SALT_LENGTHS[algorithm]
    except KeyError:
        raise ValueError(
            f"unknown signing algorithm {algorithm!r}; use {ALGORITHM_V2!r} or {ALGORITHM_V1!r}"
        ) from None


def normalize_region(region: str) -> str:
    """Map a region or its alias (us/uk/de, any case) to na, eu or jp."""
    key = region.strip().lower() if isinstance(region, str) else ""
    if key not in REGION_ALIASES:
        raise ValueError(f"unknown Amazon Pay region {region!r}; use na (us), eu (uk, de) or jp")
    return REGION_ALIASES[key]


def format_date(moment: datetime) -> str:
    """`YYYYMMDDTHHMMSSZ` in UTC, the format of x-amz-pay-date."""
    if moment.tzinfo is None:
        raise ValueError("format_date needs a timezone-aware datetime")
    return moment.astimezone(UTC).strftime(_COMPACT_DATE)


def parse_date(value: str) -> datetime:
    """Parse x-amz-pay-date in the documented form or the extended ISO form the Node SDK sends."""
    for fmt in (_COMPACT_DATE, _ISO_DATE):
        try:
            return datetime.strptime(value, fmt).replace(tzinfo=UTC)
        except ValueError:
            continue
    raise ValueError(f"unrecognized x-amz-pay-date {value!r}")


def _encode_keep_triplets(text: str, safe: str) -> str:
    """Percent-encode (UTF-8) every char outside unreserved+safe, keeping existing %XX triplets (upper-cased).

    Keeping triplets makes the function idempotent, so a path already encoded on the wire and the
    same path before encoding canonicalize identically.
    """
    out: list[str] = []
    pos = 0
    for match in _PERCENT_TRIPLET.finditer(text):
        out.append(quote(text[pos : match.start()], safe=_UNRESERVED + safe))
        out.append(match.group().upper())
        pos = match.end()
    out.append(quote(text[pos:], safe=_UNRESERVED + safe))
    return "".join(out)


def canonical_uri(path: str) -> str:
    """RFC 3986 path: '/' when empty, repeated slashes collapsed, each segment percent-encoded."""
    path = re.sub(r"/{2,}", "/", path or "/")
    if not path.startswith("/"):
        path = "/" + path
    return _encode_keep_triplets(path, safe="/")


def _query_pairs(params: QueryInput) -> list[tuple[str, str]]:
    if params is None:
        return []
    if isinstance(params, Mapping):
        pairs: list[tuple[str, str]] = []
        for key, value in params.items():
            values = [value] if isinstance(value, str) else list(value)
            pairs.extend((key, v) for v in values)
        return pairs
    return [(key, value) for key, value in params]


def _encoded_pairs(params: QueryInput) -> list[tuple[str, str]]:
    """Keys and values RFC 3986-encoded, as Amazon's Java and .NET SDKs do (space %20, '*' %2A, '~' kept)."""
    return [(quote(k, safe=_UNRESERVED), quote(v, safe=_UNRESERVED)) for k, v in _query_pairs(params)]


def encode_query(params: QueryInput) -> str:
    """The query as sent: the pairs in their order, each encoded as `canonical_query` encodes it."""
    return "&".join(f"{k}={v}" for k, v in _encoded_pairs(params))


def canonical_query(params: QueryInput) -> str:
    """Keys and values RFC 3986-encoded (space %20, '*' %2A, '~' kept), sorted by key then value."""
    return "&".join(f"{k}={v}" for k, v in sorted(_encoded_pairs(params)))


_JAVA_WHITESPACE = re.compile(r"[ \t\n\x0b\f\r]")  # what Java's \s matches


def signed_header_list(signed_header_names: Iterable[str]) -> list[str]:
    """Lower-cased, de-duplicated, sorted header names: the order of CanonicalHeaders and SignedHeaders."""
    return sorted({name.strip().lower() for name in signed_header_names})


def canonical_headers(
    headers: Mapping[str, str],
    signed_header_names: Iterable[str],
    *,
    collapse_whitespace: bool = False,
    space_each_whitespace: bool = False,
) -> str:
    """`name:value\\n` per signed header, sorted. Values are trimmed; inner whitespace is kept as sent, or
    (`space_each_whitespace`, as Amazon's Java SDK does) each whitespace character becomes one space
    without collapsing runs, or (`collapse_whitespace`) each run becomes one space."""
    lowered = {name.lower(): value for name, value in headers.items()}
    lines: list[str] = []
    for name in signed_header_list(signed_header_names):
        if name not in lowered:
            raise ValueError(f"signed header {name!r} is missing from the request")
        value = lowered[name].strip()
        if collapse_whitespace:
            value = " ".join(value.split())
        elif space_each_whitespace:
            value = _JAVA_WHITESPACE.sub(" ", value)
        lines.append(f"{name}:{value}\n")
    return "".join(lines)


def canonical_request(
    method: str,
    path: str,
    query: QueryInput,
    headers: Mapping[str, str],
    signed_header_names: Iterable[str],
    body: bytes,
    *,
    collapse_whitespace: bool = False,
) -> str:
    names = signed_header_list(signed_header_names)
    return assemble_canonical_request(
        method,
        canonical_uri(path),
        canonical_query(query),
        canonical_headers(headers, names, collapse_whitespace=collapse_whitespace),
        names,
        hashlib.sha256(body).hexdigest(),
    )


def assemble_canonical_request(
    method: str, uri: str, query: str, headers_block: str, signed_names: Sequence[str], body_sha256: str
) -> str:
    """Join already-canonical parts (the emulator builds SDK-specific variants of some parts)."""
    return "\n".join([method.upper(), uri, query, headers_block, ";".join(signed_names), body_sha256])


def string_to_sign(algorithm: str, canonical_request: str) -> str:
    salt_length(algorithm)  # reject unknown labels early
    return f"{algorithm}\n{hashlib.sha256(canonical_request.encode('utf-8')).hexdigest()}"


_SHA256 = hashes.SHA256()  # immutable: one for every signature


@functools.cache
def _pss(algorithm: str) -> padding.PSS:
    """The padding of one algorithm label, built once (it holds no state)."""
    return padding.PSS(mgf=padding.MGF1(_SHA256), salt_length=salt_length(algorithm))


def sign(private_key: RSAPrivateKey, algorithm: str, string_to_sign: str) -> str:
    """RSASSA-PSS (SHA-256, MGF1-SHA-256, salt per label) over the UTF-8 string; standard base64."""
    raw = private_key.sign(string_to_sign.encode("utf-8"), _pss(algorithm), _SHA256)
    return base64.b64encode(raw).decode("ascii")


def verify(public_key: RSAPublicKey, algorithm: str, string_to_sign: str, signature_b64: str) -> bool:
    try:
        raw = base64.b64decode(signature_b64, validate=True)
        public_key.verify(raw, string_to_sign.encode("utf-8"), _pss(algorithm), _SHA256)
    except (InvalidSignature, ValueError):
        return False
    return True


def sign_payload(private_key: RSAPrivateKey, algorithm: str, payload_json: str) -> str:
    """Button payload signature: StringToSign = algorithm + hex(sha256(payload)), no date or headers."""
    return sign(private_key, algorithm, string_to_sign(algorithm, payload_json))


def authorization_header(
    algorithm: str, public_key_id: str, signed_header_names: Iterable[str], signature: str
) -> str:
    names = ";".join(signed_header_list(signed_header_names))
    return f"{algorithm} PublicKeyId={public_key_id}, SignedHeaders={names}, Signature={signature}"


@dataclass(frozen=True)
class ParsedAuthorization:
    algorithm: str
    public_key_id: str
    signed_headers: tuple[str, ...]
    signature: str


def parse_authorization_header(value: str) -> ParsedAuthorization:
    """Split `ALG PublicKeyId=.., SignedHeaders=a;b, Signature=..`; ValueError when malformed."""
    algorithm, _, rest = value.strip().partition(" ")
    fields: dict[str, str] = {}
    for part in rest.split(","):
        name, sep, field_value = part.strip().partition("=")
        if sep:
            fields[name.strip()] = field_value.strip()
    missing = [name for name in ("PublicKeyId", "SignedHeaders", "Signature") if not fields.get(name)]
    if not algorithm or missing:
        raise ValueError(f"authorization header lacks {', '.join(missing) or 'an algorithm'}")
    names = tuple(name.strip().lower() for name in fields["SignedHeaders"].split(";") if name.strip())
    return ParsedAuthorization(algorithm, fields["PublicKeyId"], names, fields["Signature"])


def _now() -> datetime:
    return datetime.now(UTC)


class AmazonPayAuth(InPlaceAuth):
    """Signs each request (and each retry, with a fresh date) over the exact body bytes being sent."""

    requires_request_body = True

    def __init__(
        self,
        public_key_id: str,
        private_key: RSAPrivateKey,
        region: str,
        algorithm: str = ALGORITHM_V2,
        *,
        clock: Callable[[], datetime] = _now,
        path_prefix: str = "",
    ) -> None:
        if not public_key_id or not isinstance(public_key_id, str):
            raise ValueError("public_key_id must be a non-empty string")
        salt_length(algorithm)
        self._public_key_id = public_key_id
        self._private_key = private_key
        self._region = normalize_region(region)
        self._algorithm = algorithm
        self._clock = clock
        # An endpoint override may add a path prefix (a proxy, a mounted emulator); like the Node SDK,
        # the canonical URI is the API path only (/v2/…, /sandbox/v2/…), which is what reaches Amazon.
        self._path_prefix = path_prefix.rstrip("/")
        # Built once, without and with the idempotency key (keyed by whether the request has one): the sorted
        # signed names and the authorization header up to the signature.
        self._signed: dict[bool, tuple[list[str], str]] = {}
        for with_key in (False, True):
            names = signed_header_list(STANDARD_SIGNED_HEADERS + ((IDEMPOTENCY_HEADER,) if with_key else ()))
            self._signed[with_key] = (names, authorization_header(algorithm, public_key_id, names, ""))

    def __repr__(self) -> str:
        return (
            f"AmazonPayAuth(public_key_id={self._public_key_id[:12]!r}…, region={self._region!r}, "
            f"algorithm={self._algorithm!r})"
        )

    def sign_request(self, request: httpx.Request) -> None:
        """Set the x-amz-pay-* headers and the authorization header on `request` in place.

        The same canonical request as `canonical_request` (tests hold them equal), built with less work per
        call: the signed names are sorted once, a path of plain characters is its own canonical URI, the
        query is parsed only when there is one, and the headers are decoded once.
        A query is sent as it is signed, RFC 3986-encoded (`encode_query`): httpx would send a space as '+',
        which the server may read as a '+', and the signature would no longer match.
        """
        headers = request.headers
        set_headers(headers, _JSON, {
            "x-amz-pay-date": format_date(self._clock()),
            "x-amz-pay-host": request.url.netloc.decode("ascii"),
            "x-amz-pay-region": self._region,
        })
        values = header_values(headers)  # lower-cased names, a repeated header's values joined with ", "
        names, authorization = self._signed[IDEMPOTENCY_HEADER in values]
        path, _, query = request.url.raw_path.decode("ascii").partition("?")
        pairs = request.url.params.multi_items() if query else []  # httpx's reading: '+' is a space
        if query:
            request.url = request.url.copy_with(query=encode_query(pairs).encode("ascii"))
        if self._path_prefix and path.startswith(self._path_prefix + "/"):
            path = path[len(self._path_prefix) :]
        canonical = assemble_canonical_request(
            request.method,
            path if _PLAIN_PATH.fullmatch(path) else canonical_uri(path),
            canonical_query(pairs) if query else "",
            "".join([f"{name}:{values[name].strip()}\n" for name in names]),
            names,
            hashlib.sha256(request.content).hexdigest(),
        )
        signature = sign(self._private_key, self._algorithm, string_to_sign(self._algorithm, canonical))
        set_headers(headers, {}, {"authorization": authorization + signature})


_JSON = {"accept": "application/json", "content-type": "application/json"}  # unless the request has its own
# A path that canonical_uri leaves as it is: starts with '/', only unreserved characters and single slashes.
_PLAIN_PATH = re.compile(r"(?:/[A-Za-z0-9._~-]+)+/?|/")
