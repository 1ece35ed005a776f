"""The Amazon Pay calls go through the egress proxy the environment names, as the webhook deliveries do
(router.env_proxy): a router on a real socket finalizes against the emulator over TLS, through a CONNECT
tunnel of a real proxy (tests.support.forward_proxy), with the signature verified; NO_PROXY bypasses it."""

from __future__ import annotations

import base64
import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from router.amazon_pay import create_emulator_app
from router.amazon_pay.keys import load_public_key
from router.app import create_app
from tests.deploy.certs import Certificates, make_certificates
from tests.support import serve_app
from tests.support.config import KEY_ID
from tests.support.forward_proxy import forward_proxy, proxy_env
from tests.support.routers import Router, load_settings

# Amazon's API host as a merchant behind an egress proxy sees it: only the proxy resolves it (".invalid" never
# resolves, RFC 6761), so a call that went direct could not reach it at all.
AMAZON = "pay-api.amazon.invalid"


@dataclass
class TlsEmulator:
    port: int
    certificates: Certificates

    def post(self, path: str, body: dict[str, object]) -> httpx.Response:
        context = ssl.create_default_context(cafile=str(self.certificates.ca))
        return httpx.post(f"https://localhost:{self.port}{path}", json=body, verify=context, trust_env=False)

    def requests(self, operation: str) -> list[dict[str, object]]:
        context = ssl.create_default_context(cafile=str(self.certificates.ca))
        log = httpx.get(f"https://localhost:{self.port}/_emulator/requests", verify=context, trust_env=False)
        return [entry for entry in log.json()["requests"] if entry["operation"] == operation]


@pytest.fixture
def emulator(tmp_path: Path, key_files: tuple[Path, Path]) -> Iterator[TlsEmulator]:
    certificates = make_certificates(tmp_path, [AMAZON, "localhost"])
    app = create_emulator_app({KEY_ID: load_public_key(key_files[1].read_bytes())})
    with serve_app(app, ssl_certfile=str(certificates.cert), ssl_keyfile=str(certificates.key)) as url:
        yield TlsEmulator(int(urlsplit(url).port or 0), certificates)


def finalize_through_router(tmp_path: Path, key_files: tuple[Path, Path], emulator: TlsEmulator,
                            endpoint: str) -> httpx.Response:
    """A checkout registered and finalized by a router whose Amazon Pay endpoint is `endpoint`."""
    settings = load_settings(tmp_path / "router.toml", endpoint, key_files[0], f"sqlite:///{tmp_path}/rr.db")
    created = emulator.post("/_emulator/checkout-sessions", {
        "chargeAmount": {"amount": "14.00", "currencyCode": "USD"}, "paymentIntent": "AuthorizeWithCapture"})
    assert created.status_code == 201, created.text
    session_id = created.json()["checkoutSessionId"]
    with serve_app(create_app(settings, background=False)) as url:
        ref = Router(url).register()["ref"]
        return httpx.post(f"{url}/v1/checkout-sessions/{session_id}/finalize", json={"ref": ref}, timeout=60,
                          trust_env=False)


def test_finalize_goes_through_the_https_proxy_with_a_verified_signature(
    tmp_path: Path, key_files: tuple[Path, Path], emulator: TlsEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    with forward_proxy(hosts={AMAZON: "127.0.0.1"}, credentials="egress:s3cr@t") as proxy:
        proxy_env(monkeypatch, HTTPS_PROXY=f"http://egress:s3cr%40t@127.0.0.1:{proxy.port}",
                  SSL_CERT_FILE=str(emulator.certificates.ca))
        answer = finalize_through_router(tmp_path, key_files, emulator, f"https://{AMAZON}:{emulator.port}")
    assert answer.status_code == 200, answer.text
    assert answer.json()["state"] == "completed"
    [tunnel] = proxy.seen  # one CONNECT, to Amazon's host: the signed request itself went inside it, over TLS
    assert tunnel.line == f"CONNECT {AMAZON}:{emulator.port} HTTP/1.1"
    assert tunnel.headers["proxy-authorization"] == "Basic " + base64.b64encode(b"egress:s3cr@t").decode()
    [call] = emulator.requests("finalizeCheckoutSession")
    # publicKeyId is set only once the signature verified; the Host (and the signed x-amz-pay-host) is Amazon's
    assert (call["status"], call["publicKeyId"], call["host"]) == (200, KEY_ID, f"{AMAZON}:{emulator.port}")


def test_a_host_no_proxy_names_is_reached_directly(
    tmp_path: Path, key_files: tuple[Path, Path], emulator: TlsEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    with forward_proxy() as proxy:
        proxy_env(monkeypatch, HTTPS_PROXY=proxy.url, NO_PROXY="localhost", SSL_CERT_FILE=str(emulator.certificates.ca))
        answer = finalize_through_router(tmp_path, key_files, emulator, f"https://localhost:{emulator.port}")
    assert answer.status_code == 200 and answer.json()["state"] == "completed", answer.text
    assert proxy.seen == []
    [call] = emulator.requests("finalizeCheckoutSession")
    assert (call["status"], call["publicKeyId"], call["host"]) == (200, KEY_ID, f"localhost:{emulator.port}")
