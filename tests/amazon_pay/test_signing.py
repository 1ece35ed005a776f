"""Signing: every test vector of the reference §9, encoding rules, PSS salts, and the httpx.Auth."""

from __future__ import annotations

import base64
import functools
import hashlib
from datetime import UTC, datetime, timedelta, timezone

import httpx
import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from router.amazon_pay.signing import (
    ALGORITHM_V1,
    ALGORITHM_V2,
    EMPTY_BODY_SHA256,
    AmazonPayAuth,
    authorization_header,
    canonical_headers,
    canonical_query,
    canonical_request,
    canonical_uri,
    format_date,
    normalize_region,
    parse_authorization_header,
    parse_date,
    sign,
    sign_payload,
    string_to_sign,
    verify,
)
from tests.amazon_pay.helpers import KeyPair

JAVA_HEADERS = {
    "accept": "application/json",
    "content-type": "application/json",
    "x-amz-pay-date": "20180524T223710Z",
    "x-amz-pay-host": "pay-api.amazon.eu",
    "x-amz-pay-region": "EU",
}
HEADER_BLOCK = (
    "accept:application/json\ncontent-type:application/json\nx-amz-pay-date:20180524T223710Z\n"
    "x-amz-pay-host:pay-api.amazon.eu\nx-amz-pay-region:EU\n\n"
    "accept;content-type;x-amz-pay-date;x-amz-pay-host;x-amz-pay-region\n" + EMPTY_BODY_SHA256
)
NONUNRESERVED = '@#$%^&+=/,?><`";:\\|][{} '
NONUNRESERVED_Q = "%40%23%24%25%5E%26%2B%3D%2F%2C%3F%3E%3C%60%22%3B%3A%5C%7C%5D%5B%7B%7D%20"

FINALIZE_BODY = (
    b'{"chargeAmount":{"amount":"14.00","currencyCode":"USD"},"paymentIntent":"AuthorizeWithCapture"}'
)
FINALIZE_PATH = "/v2/checkoutSessions/bd504926-f659-4ad7-a1a9-9a747aaf5275/finalize"


def java(method: str, path: str, query: object) -> tuple[str, str]:
    request = canonical_request(method, path, query, JAVA_HEADERS, list(JAVA_HEADERS), b"")  # type: ignore[arg-type]
    return request, string_to_sign(ALGORITHM_V1, request)


@pytest.mark.parametrize(
    ("method", "path", "query", "prefix", "digest"),
    [
        ("GET", "/", None, "GET\n/\n\n", "bb49552975c396f1e49d5510e1555b8b0627dc491bc61aaefdb561f202ad8020"),
        (
            "GET",
            "/\u1234",
            None,
            "GET\n/%E1%88%B4\n\n",
            "77f6544c8fb336d430895659da1e30415a1558b4b013f4d7926bb3a6275f701d",
        ),
        (
            "POST",
            "/",
            {"f oo": ["b ar"]},
            "POST\n/\nf%20oo=b%20ar\n",
            "99be3aeb19b5a1aebafc807d59f3740d3e604ae31cf928592fa70739ea64bb32",
        ),
        (
            "POST",
            "/",
            {NONUNRESERVED: NONUNRESERVED},
            f"POST\n/\n{NONUNRESERVED_Q}={NONUNRESERVED_Q}\n",
            "66bbbf2b5d6d297a9393abbc0b4f9d62e30666bb0ec0dea8f1d4e45551440e4c",
        ),
        (
            "GET",
            "/",
            [("A.10", "foo"), ("A.2", "foo"), ("A.1", "foo")],
            "GET\n/\nA.1=foo&A.10=foo&A.2=foo\n",
            "29d908d70c4bb50d62272976787245b52ed52e569fdae56ef3aa6d8979978ee7",
        ),
    ],
    ids=["get-vanilla", "get-utf8", "post-query-space", "post-query-nonunreserved", "get-query-sort-by-key"],
)
def test_java_sdk_vectors(method: str, path: str, query: object, prefix: str, digest: str) -> None:
    request, sts = java(method, path, query)
    assert request == prefix + HEADER_BLOCK
    assert sts == f"{ALGORITHM_V1}\n{digest}"


def test_v2_label_keeps_the_hash_and_changes_only_the_first_line() -> None:
    request, _ = java("GET", "/", None)
    assert string_to_sign(ALGORITHM_V2, request) == (
        "AMZN-PAY-RSASSA-PSS-V2\nbb49552975c396f1e49d5510e1555b8b0627dc491bc61aaefdb561f202ad8020"
    )


@pytest.mark.parametrize(
    ("method", "query", "digest"),
    [
        ("GET", None, "13fdf6db844bdfb9e9c0e27a4251ca04e60c29ca2132249c5dd1cb09c26e22f5"),
        ("POST", None, "322307b5dae22c3d59350c3de9202a488f337f674c8f430b186282008264bd2b"),
        ("POST", {"f oo": "b ar"}, "79481e4e38a053f7be8bda701c0d302d39df18bf468578b133c3be8e93fea86a"),
    ],
    ids=["SimpleGet", "SimplePost", "PostWithSpacesInQueryParameter"],
)
def test_dotnet_sdk_vectors(method: str, query: object, digest: str) -> None:
    headers = {**JAVA_HEADERS, "x-amz-pay-region": "eu"}
    request = canonical_request(method, "/", query, headers, list(headers), b"")  # type: ignore[arg-type]
    assert string_to_sign(ALGORITHM_V1, request) == f"{ALGORITHM_V1}\n{digest}"


def test_button_payload_vector() -> None:
    payload = (
        '{"storeId":"amzn1.application-oa2-client.xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx","webCheckoutDetails":'
        '{"checkoutReviewReturnUrl":"https://localhost/test/CheckoutReview.php",'
        '"checkoutResultReturnUrl":"https://localhost/test/CheckoutResult.php"}}'
    )
    digest = "8dec52d799607be40f82d5c8e7ecb6c171e6591c41b1111a576b16076c89381c"
    assert string_to_sign(ALGORITHM_V1, payload) == f"{ALGORITHM_V1}\n{digest}"
    assert string_to_sign(ALGORITHM_V2, payload) == f"{ALGORITHM_V2}\n{digest}"


def test_button_payload_signature_verifies(keys: KeyPair) -> None:
    payload = '{"storeId":"amzn1.application-oa2-client.x"}'
    signature = sign_payload(keys.private_key, ALGORITHM_V2, payload)
    assert verify(
        keys.private_key.public_key(), ALGORITHM_V2, string_to_sign(ALGORITHM_V2, payload), signature
    )


def node_finalize_headers(date: str) -> dict[str, str]:
    return {
        "accept": "application/json",
        "content-type": "application/json",
        "user-agent": "amazon-pay-api-sdk-nodejs/2.3.4 (JS/X; linux)",
        "x-amz-pay-date": date,
        "x-amz-pay-host": "pay-api.amazon.com",
        "x-amz-pay-idempotency-key": "abc123",
        "x-amz-pay-region": "na",
    }


def test_node_finalize_vector() -> None:
    assert hashlib.sha256(FINALIZE_BODY).hexdigest() == (
        "93c7d3dbd6c1d9010728b8b9bf2ad097cacfa7e8717b74175ffd23198287335c"
    )
    headers = node_finalize_headers("2025-01-02T03:04:05Z")
    request = canonical_request("POST", FINALIZE_PATH, None, headers, list(headers), FINALIZE_BODY)
    assert request == (
        f"POST\n{FINALIZE_PATH}\n\naccept:application/json\ncontent-type:application/json\n"
        "user-agent:amazon-pay-api-sdk-nodejs/2.3.4 (JS/X; linux)\nx-amz-pay-date:2025-01-02T03:04:05Z\n"
        "x-amz-pay-host:pay-api.amazon.com\nx-amz-pay-idempotency-key:abc123\nx-amz-pay-region:na\n\n"
        "accept;content-type;user-agent;x-amz-pay-date;x-amz-pay-host;x-amz-pay-idempotency-key;x-amz-pay-region\n"
        "93c7d3dbd6c1d9010728b8b9bf2ad097cacfa7e8717b74175ffd23198287335c"
    )
    assert string_to_sign(ALGORITHM_V2, request) == (
        "AMZN-PAY-RSASSA-PSS-V2\nf5fa05d8893df30e48926180f5caba8cbdb87dd9f9a8cfcaa5756e3d80b6445f"
    )
    legacy = canonical_request(
        "POST", "/sandbox" + FINALIZE_PATH, None, headers, list(headers), FINALIZE_BODY
    )
    assert string_to_sign(ALGORITHM_V2, legacy).endswith(
        "\n51f0b7aaccbe7037b4796b7194582126af41016a2a2c06f8fd2181e99a89557b"
    )


def test_recommended_header_set_finalize_vector() -> None:
    headers = node_finalize_headers("20250102T030405Z")
    del headers["user-agent"]
    request = canonical_request("POST", FINALIZE_PATH, None, headers, list(headers), FINALIZE_BODY)
    assert hashlib.sha256(request.encode()).hexdigest() == (
        "716bc049e4c96d1480293cb8d7e7cc12ce18f9b386878e12b8fcd013d94ff64b"
    )


def test_canonical_query_rules() -> None:
    assert canonical_query(None) == ""
    assert canonical_query({}) == ""
    assert canonical_query({"a": "x*y~z"}) == "a=x%2Ay~z"  # '*' encoded, '~' kept (RFC 3986)
    assert canonical_query({"k": "a+b c"}) == "k=a%2Bb%20c"  # never '+' for a space
    assert canonical_query({"k": ["b", "a"]}) == "k=a&k=b"  # repeated values sorted
    assert canonical_query({"b": "1", "B": "2", "a": "3"}) == "B=2&a=3&b=1"  # code-point order
    assert canonical_query({"ü": "é"}) == "%C3%BC=%C3%A9"  # UTF-8 percent-encoding


def test_canonical_uri_rules() -> None:
    assert canonical_uri("") == "/"
    assert canonical_uri("/v2//checkoutSessions/") == "/v2/checkoutSessions/"
    assert canonical_uri("/a b/c") == "/a%20b/c"
    assert canonical_uri("/a%2fb") == "/a%2Fb"  # existing escapes kept, hex upper-cased
    assert canonical_uri("/100%") == "/100%25"  # a lone '%' is encoded


@given(st.text(max_size=40))
def test_canonical_uri_is_idempotent(path: str) -> None:
    once = canonical_uri("/" + path)
    assert canonical_uri(once) == once


def test_canonical_headers_trim_and_optionally_collapse() -> None:
    headers = {"User-Agent": "  a   b  ", "Accept": "x"}
    assert canonical_headers(headers, ["user-agent", "ACCEPT"]) == "accept:x\nuser-agent:a   b\n"
    assert canonical_headers(headers, ["user-agent"], collapse_whitespace=True) == "user-agent:a b\n"


def test_canonical_headers_java_form_spaces_each_whitespace_without_collapsing() -> None:
    headers = {"X-Amz-Pay-Authtoken": " tok \tx\t\ny "}
    java = canonical_headers(headers, ["x-amz-pay-authtoken"], space_each_whitespace=True)
    assert java == "x-amz-pay-authtoken:tok  x  y\n"  # one space per character: runs stay runs
    with pytest.raises(ValueError, match="x-amz-pay-date"):
        canonical_headers(headers, ["x-amz-pay-date"])


@pytest.mark.parametrize(
    ("given_region", "expected"),
    [("us", "na"), ("NA", "na"), ("de", "eu"), ("UK", "eu"), ("Eu", "eu"), (" jp ", "jp")],
)
def test_normalize_region(given_region: str, expected: str) -> None:
    assert normalize_region(given_region) == expected


@pytest.mark.parametrize("bad", ["", "fr", "north-america", "u s"])
def test_normalize_region_rejects_unknown(bad: str) -> None:
    with pytest.raises(ValueError, match="region"):
        normalize_region(bad)


def test_dates() -> None:
    moment = datetime(2019, 9, 23, 23, 19, 8, tzinfo=UTC)
    assert format_date(moment) == "20190923T231908Z"
    assert format_date(moment.astimezone(timezone(timedelta(hours=9)))) == "20190923T231908Z"
    assert parse_date("20190923T231908Z") == moment
    assert parse_date("2019-09-23T23:19:08Z") == moment
    with pytest.raises(ValueError):
        format_date(datetime(2019, 9, 23))
    with pytest.raises(ValueError):
        parse_date("Mon, 23 Sep 2019 23:19:08 GMT")


def test_authorization_header_round_trip() -> None:
    value = authorization_header(ALGORITHM_V2, "SANDBOX-K", ["x-amz-pay-date", "Accept"], "c2ln")
    assert (
        value
        == "AMZN-PAY-RSASSA-PSS-V2 PublicKeyId=SANDBOX-K, SignedHeaders=accept;x-amz-pay-date, Signature=c2ln"
    )
    parsed = parse_authorization_header(value)
    assert (parsed.algorithm, parsed.public_key_id, parsed.signed_headers, parsed.signature) == (
        ALGORITHM_V2,
        "SANDBOX-K",
        ("accept", "x-amz-pay-date"),
        "c2ln",
    )
    with pytest.raises(ValueError, match="Signature"):
        parse_authorization_header("AMZN-PAY-RSASSA-PSS PublicKeyId=a, SignedHeaders=b")


@pytest.mark.parametrize(
    ("algorithm", "salt", "other_salt"), [(ALGORITHM_V2, 32, 20), (ALGORITHM_V1, 20, 32)]
)
def test_signature_uses_the_labelled_salt_only(
    keys: KeyPair, algorithm: str, salt: int, other_salt: int
) -> None:
    sts = string_to_sign(algorithm, "canonical")
    raw = base64.b64decode(sign(keys.private_key, algorithm, sts), validate=True)
    public = keys.private_key.public_key()

    def pss(length: int) -> padding.PSS:
        return padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=length)

    public.verify(raw, sts.encode(), pss(salt), hashes.SHA256())  # raises if wrong
    with pytest.raises(InvalidSignature):
        public.verify(raw, sts.encode(), pss(other_salt), hashes.SHA256())
    other = ALGORITHM_V1 if algorithm == ALGORITHM_V2 else ALGORITHM_V2
    assert not verify(public, other, sts, base64.b64encode(raw).decode())


def test_verify_rejects_garbage_and_other_keys(keys: KeyPair, other_keys: KeyPair) -> None:
    sts = string_to_sign(ALGORITHM_V2, "x")
    signature = sign(keys.private_key, ALGORITHM_V2, sts)
    assert verify(keys.private_key.public_key(), ALGORITHM_V2, sts, signature)
    assert not verify(other_keys.private_key.public_key(), ALGORITHM_V2, sts, signature)
    assert not verify(keys.private_key.public_key(), ALGORITHM_V2, sts + "y", signature)
    assert not verify(keys.private_key.public_key(), ALGORITHM_V2, sts, "not base64!")
    with pytest.raises(ValueError, match="unknown signing algorithm"):
        string_to_sign("AMZN-PAY-RSASSA-PKCS1", "x")


@settings(max_examples=15, deadline=None)
@given(body=st.binary(max_size=200), region=st.sampled_from(["us", "de", "jp"]))
def test_auth_signs_what_it_sends(keys: KeyPair, body: bytes, region: str) -> None:
    auth = AmazonPayAuth(
        "SANDBOX-K", keys.private_key, region, clock=lambda: datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
    )
    request = httpx.Request("POST", "https://127.0.0.1:8443/v2/x%20y?b=2&a=1", content=body)
    request.headers["x-amz-pay-idempotency-key"] = "abc123"
    signed = next(auth.auth_flow(request))
    parsed = parse_authorization_header(signed.headers["authorization"])
    assert parsed.signed_headers == (
        "accept",
        "content-type",
        "x-amz-pay-date",
        "x-amz-pay-host",
        "x-amz-pay-idempotency-key",
        "x-amz-pay-region",
    )
    assert signed.headers["x-amz-pay-host"] == "127.0.0.1:8443"
    assert signed.headers["x-amz-pay-date"] == "20250102T030405Z"
    assert signed.headers["x-amz-pay-region"] == normalize_region(region)
    expected = canonical_request(
        "POST", "/v2/x y", {"a": "1", "b": "2"}, signed.headers, parsed.signed_headers, body
    )
    assert verify(
        keys.private_key.public_key(), ALGORITHM_V2, string_to_sign(ALGORITHM_V2, expected), parsed.signature
    )


def test_auth_host_omits_default_port_and_repr_hides_key(keys: KeyPair) -> None:
    auth = AmazonPayAuth("LIVE-AHXYZ", keys.private_key, "eu", ALGORITHM_V1)
    signed = next(auth.auth_flow(httpx.Request("GET", "https://pay-api.amazon.eu:443/v2/charges/c")))
    assert signed.headers["x-amz-pay-host"] == "pay-api.amazon.eu"
    assert signed.headers["authorization"].startswith("AMZN-PAY-RSASSA-PSS PublicKeyId=LIVE-AHXYZ, ")
    assert "x-amz-pay-idempotency-key" not in signed.headers["authorization"]
    assert "PRIVATE" not in repr(auth) and "RSAPrivateKey" not in repr(auth)


def test_auth_uses_a_fresh_date_per_attempt(keys: KeyPair) -> None:
    moments = iter([datetime(2025, 1, 2, 3, 4, s, tzinfo=UTC) for s in (5, 9)])
    auth = AmazonPayAuth("SANDBOX-K", keys.private_key, "na", clock=lambda: next(moments))
    first = next(auth.auth_flow(httpx.Request("GET", "https://h/v2/a")))
    second = next(auth.auth_flow(httpx.Request("GET", "https://h/v2/a")))
    assert (first.headers["x-amz-pay-date"], second.headers["x-amz-pay-date"]) == (
        "20250102T030405Z",
        "20250102T030409Z",
    )
    assert first.headers["authorization"] != second.headers["authorization"]


# --- AmazonPayAuth.sign_request (built for speed) against the pure functions above ---------------------------

_SEGMENT = st.lists(st.sampled_from([*"aZ09-._~!*'() %@:+=,;é€", "%2f", "%7E", "%41", "%zz"]),
                    max_size=6).map("".join)
_QUERY = st.lists(
    st.tuples(st.sampled_from(["a", "b", "A", "x y", "é", "k~*"]), st.text(alphabet="1 a+=&%~*é/", max_size=5)),
    max_size=5,
)
_SIGNED_EXTRA = st.lists(st.sampled_from([
    ("accept", " application/json "), ("Accept", "text/plain"), ("content-type", "application/json;\tcharset=utf-8"),
    ("x-amz-pay-idempotency-key", "key-1"), ("X-Amz-Pay-Idempotency-Key", " key-2"), ("x-amz-pay-date", "stale"),
    ("user-agent", "not signed"), ("x-amz-pay-region", "jp"),
]), max_size=5)


@functools.cache
def _loaded(keys: KeyPair) -> RSAPrivateKey:
    return keys.private_key  # loading checks the key: slow enough to matter per example


@settings(max_examples=150, deadline=None)
@given(
    method=st.sampled_from(["GET", "POST", "DELETE", "patch"]),
    segments=st.lists(_SEGMENT, max_size=4),
    query=_QUERY,
    headers=_SIGNED_EXTRA,
    body=st.binary(max_size=40),
    prefix=st.sampled_from(["", "/mounted"]),
)
def test_sign_request_signs_what_canonical_request_builds(
    keys: KeyPair, method: str, segments: list[str], query: list[tuple[str, str]],
    headers: list[tuple[str, str]], body: bytes, prefix: str,
) -> None:
    """Paths needing encoding or not, queries with repeats (or none), repeated and padded signed headers."""
    moment = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
    private = _loaded(keys)
    auth = AmazonPayAuth("SANDBOX-K", private, "us", clock=lambda: moment, path_prefix=prefix)
    url = "https://pay-api.amazon.com" + prefix + "/" + "/".join(segments)
    try:
        request = httpx.Request(method, url, params=query or None, headers=headers, content=body)
    except httpx.InvalidURL:
        return
    auth.sign_request(request)

    path = request.url.raw_path.decode("ascii").partition("?")[0]
    if prefix and path.startswith(prefix + "/"):
        path = path[len(prefix):]
    names = ["accept", "content-type", "x-amz-pay-date", "x-amz-pay-host", "x-amz-pay-region"]
    if "x-amz-pay-idempotency-key" in request.headers:
        names.append("x-amz-pay-idempotency-key")
    expected = canonical_request(request.method, path, request.url.params.multi_items(), request.headers, names, body)
    parsed = parse_authorization_header(request.headers["authorization"])
    assert request.headers["authorization"] == authorization_header(ALGORITHM_V2, "SANDBOX-K", names,
                                                                     parsed.signature)
    assert verify(private.public_key(), ALGORITHM_V2, string_to_sign(ALGORITHM_V2, expected), parsed.signature)
