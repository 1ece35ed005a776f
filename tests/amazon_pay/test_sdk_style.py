"""Requests built by hand the way each official SDK builds them, sent to the emulator over a socket.

Signatures here are made with `cryptography` directly (explicit salt), not with our sign().
"""

from __future__ import annotations

import base64
import hashlib
import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote, urlsplit

import httpx
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding

from router.amazon_pay.signing import (
    assemble_canonical_request,
    canonical_headers,
    canonical_uri,
    signed_header_list,
)
from tests.amazon_pay.helpers import LEGACY_KEY_ID, ORDER, SANDBOX_KEY_ID, KeyPair, create_session

V1, V2 = "AMZN-PAY-RSASSA-PSS", "AMZN-PAY-RSASSA-PSS-V2"
BODY = json.dumps(ORDER, separators=(",", ":")).encode()


def now_compact() -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")


def now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def pss_sign(keys: KeyPair, text: str, salt: int) -> str:
    padder = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=salt)
    return base64.b64encode(keys.private_key.sign(text.encode(), padder, hashes.SHA256())).decode()


def send(
    keys: KeyPair,
    url: str,
    method: str,
    path: str,
    headers: dict[str, str],
    signed: list[str],
    *,
    body: bytes = b"",
    label: str = V2,
    salt: int = 32,
    key_id: str = SANDBOX_KEY_ID,
    query: str = "",
    signed_query: str = "",
    signed_path: str | None = None,
    collapse: bool = False,
    java_spaces: bool = False,
) -> httpx.Response:
    """Sign like an SDK (caller picks every degree of freedom) and send exactly those bytes."""
    names = signed_header_list(signed)
    canonical = assemble_canonical_request(
        method,
        signed_path if signed_path is not None else canonical_uri(path),
        signed_query,
        canonical_headers(headers, names, collapse_whitespace=collapse, space_each_whitespace=java_spaces),
        names,
        hashlib.sha256(body).hexdigest(),
    )
    sts = f"{label}\n{hashlib.sha256(canonical.encode()).hexdigest()}"
    signature = pss_sign(keys, sts, salt)
    authorization = f"{label} PublicKeyId={key_id}, SignedHeaders={';'.join(names)}, Signature={signature}"
    target = url + path + (f"?{query}" if query else "")
    request = httpx.Request(method, target, headers={**headers, "authorization": authorization}, content=body)
    with httpx.Client() as client:
        return client.send(request)


def host_of(url: str) -> str:
    return urlsplit(url).netloc


def finalize_path(session_id: str, prefix: str = "/v2") -> str:
    return f"{prefix}/checkoutSessions/{session_id}/finalize"


@pytest.mark.parametrize("region", ["na", "NA", "us"])
def test_node_sdk_style(keys: KeyPair, emulator_url: str, region: str) -> None:
    session_id = create_session(emulator_url)
    headers = {
        "accept": "application/json",
        "content-type": "application/json",
        "user-agent": "amazon-pay-api-sdk-nodejs/2.3.4 (JS/v20.11.0; linux)",
        "x-amz-pay-date": now_iso(),
        "x-amz-pay-host": host_of(emulator_url),
        "x-amz-pay-idempotency-key": uuid.uuid4().hex,
        "x-amz-pay-region": region,
    }
    response = send(keys, emulator_url, "POST", finalize_path(session_id), headers, list(headers), body=BODY)
    assert response.status_code == 200, response.text
    assert response.json()["statusDetails"]["state"] == "Completed"
    assert response.headers["x-amz-pay-request-id"]


def test_node_sdk_style_query_keeps_sub_delims_unencoded(keys: KeyPair, emulator_url: str) -> None:
    session_id = create_session(emulator_url)
    headers = {"accept": "application/json", "content-type": "application/json", "x-amz-pay-date": now_iso()}
    raw = "note=a*b(c)!"
    response = send(
        keys,
        emulator_url,
        "GET",
        f"/v2/checkoutSessions/{session_id}",
        headers,
        list(headers),
        query=raw,
        signed_query=raw,
    )
    assert response.status_code == 200, response.text


@pytest.mark.parametrize("token", ["token  with   spaces", "tok \tx", "a\t\tb"])
def test_java_sdk_style(keys: KeyPair, emulator_url: str, token: str) -> None:
    session_id = create_session(emulator_url)
    headers = {
        "accept": "application/json",
        "content-type": "application/json",
        "x-amz-pay-date": now_compact(),
        "x-amz-pay-host": host_of(emulator_url),
        "x-amz-pay-region": "NA",  # Region.toString()
        "x-amz-pay-idempotency-key": uuid.uuid4().hex,
        # Java trims, then replaces each whitespace character with one space: "tok \tx" signs as "tok  x".
        "x-amz-pay-authtoken": token,
        "user-agent": "amazon-pay-api-sdk-java/2.6.7 (Java/17; Linux)",
    }
    signed = [n for n in headers if n != "user-agent"]
    response = send(
        keys,
        emulator_url,
        "POST",
        finalize_path(session_id),
        headers,
        signed,
        body=BODY,
        label=V1,
        salt=20,
        java_spaces=True,
    )
    assert response.status_code == 200, response.text


def test_a_client_that_collapses_whitespace_runs(keys: KeyPair, emulator_url: str) -> None:
    session_id = create_session(emulator_url)
    headers = {"accept": "application/json", "x-amz-pay-date": now_compact(), "x-amz-pay-authtoken": "tok \t x"}
    response = send(keys, emulator_url, "GET", f"/v2/checkoutSessions/{session_id}", headers, list(headers),
                    collapse=True)
    assert response.status_code == 200, response.text


def test_php_sdk_style_with_legacy_key_and_sandbox_path(keys: KeyPair, emulator_url: str) -> None:
    session_id = create_session(emulator_url)
    headers = {
        "accept": "application/json",
        "content-type": "application/json",
        "x-amz-pay-region": "na",
        "x-amz-pay-idempotency-key": uuid.uuid4().hex[:13],
        "x-amz-pay-date": now_compact(),
        "x-amz-pay-host": host_of(emulator_url),
    }
    unsigned = {
        "x-amz-pay-sdk-type": "amazon-pay-api-sdk-php",
        "x-amz-pay-sdk-version": "2.7.2",
        "x-amz-pay-language-version": "8.2",
        "user-agent": "amazon-pay-api-sdk-php-2.7.2 (PHP/8.2)",
    }
    response = send(
        keys,
        emulator_url,
        "POST",
        finalize_path(session_id, "/sandbox/v2"),
        {**headers, **unsigned},
        list(headers),
        body=BODY,
        label=V1,
        salt=20,
        key_id=LEGACY_KEY_ID,
    )
    assert response.status_code == 200, response.text
    assert response.json()["releaseEnvironment"] == "Sandbox"


def test_dotnet_sdk_style_trailing_slash(keys: KeyPair, emulator_url: str) -> None:
    session_id = create_session(emulator_url)
    headers = {
        "accept": "application/json",
        "content-type": "application/json",
        "x-amz-pay-date": now_compact(),
        "x-amz-pay-host": host_of(emulator_url),
        "x-amz-pay-region": "na",
        "x-amz-pay-idempotency-key": uuid.uuid4().hex,
    }
    path = finalize_path(session_id) + "/"
    response = send(keys, emulator_url, "POST", path, headers, list(headers), body=BODY)
    assert response.status_code == 200, response.text


def test_python_sample_style_signs_four_headers(keys: KeyPair, emulator_url: str) -> None:
    session_id = create_session(emulator_url)
    headers = {
        "accept": "application/json",
        "content-type": "application/json",
        "x-amz-pay-date": now_compact(),
        "x-amz-pay-idempotency-key": uuid.uuid4().hex,
    }
    response = send(
        keys,
        emulator_url,
        "POST",
        finalize_path(session_id),
        headers,
        list(headers),
        body=BODY,
        label=V1,
        salt=20,
    )
    assert response.status_code == 200, response.text


def base_headers(url: str) -> dict[str, str]:
    return {
        "accept": "application/json",
        "content-type": "application/json",
        "x-amz-pay-date": now_compact(),
        "x-amz-pay-host": host_of(url),
        "x-amz-pay-region": "na",
    }


@pytest.mark.parametrize(("label", "salt"), [(V1, 32), (V2, 20)])
def test_label_and_salt_must_agree(keys: KeyPair, emulator_url: str, label: str, salt: int) -> None:
    headers = base_headers(emulator_url)
    path = f"/v2/checkoutSessions/{create_session(emulator_url)}"
    response = send(keys, emulator_url, "GET", path, headers, list(headers), label=label, salt=salt)
    assert response.status_code == 403
    body = response.json()
    assert body["reasonCode"] == "InvalidRequestSignature"
    assert body["message"].startswith(f"Unable to verify signature, signing String [{label}\n")
    assert response.headers["x-amz-pay-request-id"]


def test_signed_path_must_be_the_sent_path(keys: KeyPair, emulator_url: str) -> None:
    session_id = create_session(emulator_url)
    headers = base_headers(emulator_url)
    response = send(
        keys,
        emulator_url,
        "GET",
        f"/sandbox/v2/checkoutSessions/{session_id}",
        headers,
        list(headers),
        signed_path=f"/v2/checkoutSessions/{session_id}",
    )
    assert response.status_code == 403


def raw_request(
    url: str, method: str, path: str, headers: dict[str, str], body: bytes = b""
) -> httpx.Response:
    return httpx.request(method, url + path, headers=headers, content=body)


@pytest.mark.parametrize(
    ("drop", "blank", "status", "reason"),
    [
        ("authorization", None, 400, "MissingHeader"),
        ("x-amz-pay-date", None, 400, "MissingHeader"),
        (None, "x-amz-pay-date", 400, "MissingHeaderValue"),
    ],
)
def test_missing_headers(
    keys: KeyPair, emulator_url: str, drop: str | None, blank: str | None, status: int, reason: str
) -> None:
    headers = {
        **base_headers(emulator_url),
        "authorization": f"{V2} PublicKeyId={SANDBOX_KEY_ID}, "
        "SignedHeaders=accept;x-amz-pay-date, Signature=AAAA",
    }
    if drop:
        del headers[drop]
    if blank:
        headers[blank] = ""
    response = raw_request(emulator_url, "GET", "/v2/checkoutSessions/x", headers)
    assert (response.status_code, response.json()["reasonCode"]) == (status, reason)
    assert response.headers["x-amz-pay-request-id"]


@pytest.mark.parametrize(
    ("authorization", "date", "message"),
    [
        ("garbage", None, "authorization header is malformed"),
        (
            f"AMZN-PAY-RSASSA-PKCS PublicKeyId={SANDBOX_KEY_ID}, SignedHeaders=x-amz-pay-date, Signature=AA",
            None,
            "signing algorithm",
        ),
        (
            f"{V2} PublicKeyId={SANDBOX_KEY_ID}, SignedHeaders=accept, Signature=AA",
            None,
            "must include x-amz-pay-date",
        ),
        (
            f"{V2} PublicKeyId={SANDBOX_KEY_ID}, SignedHeaders=x-amz-pay-date, Signature=AA",
            "yesterday",
            "invalid",
        ),
    ],
)
def test_invalid_header_values(emulator_url: str, authorization: str, date: str | None, message: str) -> None:
    headers = {**base_headers(emulator_url), "authorization": authorization}
    if date:
        headers["x-amz-pay-date"] = date
    response = raw_request(emulator_url, "GET", "/v2/checkoutSessions/x", headers)
    assert (response.status_code, response.json()["reasonCode"]) == (400, "InvalidHeaderValue")
    assert message in response.json()["message"]


def test_skew_window_and_far_past_dates(keys: KeyPair, emulator_url: str) -> None:
    path = f"/v2/checkoutSessions/{create_session(emulator_url)}"
    for offset, status in (  # ahead of Amazon's clock fails (reference 1.6); the emulator allows 5 s
        (timedelta(seconds=2), 200),
        (timedelta(seconds=30), 400),
        (timedelta(seconds=120), 400),
        (timedelta(days=-3), 200),
    ):
        headers = {
            **base_headers(emulator_url),
            "x-amz-pay-date": (datetime.now(UTC) + offset).strftime("%Y%m%dT%H%M%SZ"),
        }
        response = send(keys, emulator_url, "GET", path, headers, list(headers))
        assert response.status_code == status, (offset, response.text)


@pytest.mark.parametrize(
    ("method", "path", "status", "reason"),
    [
        ("GET", "/v1/checkoutSessions/x", 400, "InvalidAPIVersion"),
        ("GET", "/v2/refunds/x", 404, "ResourceNotFound"),
        ("DELETE", "/v2/checkoutSessions/x", 405, "UnsupportedOperation"),
        ("GET", "/v2/checkoutSessions/x/finalize", 405, "UnsupportedOperation"),
    ],
)
def test_routing_errors_after_authentication(
    keys: KeyPair, emulator_url: str, method: str, path: str, status: int, reason: str
) -> None:
    headers = base_headers(emulator_url)
    response = send(keys, emulator_url, method, path, headers, list(headers))
    assert (response.status_code, response.json()["reasonCode"]) == (status, reason)


def test_bad_idempotency_key_is_rejected(keys: KeyPair, emulator_url: str) -> None:
    session_id = create_session(emulator_url)
    headers = {**base_headers(emulator_url), "x-amz-pay-idempotency-key": str(uuid.uuid4())}
    response = send(keys, emulator_url, "POST", finalize_path(session_id), headers, list(headers), body=BODY)
    assert (response.status_code, response.json()["reasonCode"]) == (400, "InvalidHeaderValue")


def test_percent_encoded_session_id_round_trips(keys: KeyPair, emulator_url: str) -> None:
    session_id = create_session(emulator_url)
    headers = base_headers(emulator_url)
    encoded = quote(session_id, safe="").replace("-", "%2D")  # over-encoding is still the same id
    response = send(keys, emulator_url, "GET", f"/v2/checkoutSessions/{encoded}", headers, list(headers))
    assert response.status_code == 200 and response.json()["checkoutSessionId"] == session_id


def test_test_api_validation_and_request_ids(emulator_url: str) -> None:
    bad_specs: list[dict[str, Any]] = [
        {"paymentIntent": "AuthorizeWithCapture"},
        {**ORDER, "scenario": "lost-in-mail"},
        {**ORDER, "fail_first_n": -1},
        {**ORDER, "chargeAmount": {"amount": "ten", "currencyCode": "USD"}},
        {**ORDER, "buyer": {"ssn": "1"}},
    ]
    for spec in bad_specs:
        response = httpx.post(f"{emulator_url}/_emulator/checkout-sessions", json=spec)
        assert response.status_code == 400, spec
        assert response.json()["reasonCode"] and response.headers["x-amz-pay-request-id"]
    broken = httpx.post(f"{emulator_url}/_emulator/checkout-sessions", content=b"{")
    assert broken.status_code == 400
    session_id = create_session(emulator_url)
    uuid.UUID(session_id)  # looks like Amazon's ids
    log = httpx.get(f"{emulator_url}/_emulator/requests")
    assert log.status_code == 200 and isinstance(log.json()["requests"], list)
