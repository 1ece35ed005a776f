"""`run` and its argument parsing: KEY_ID=PEM_FILE errors, and the emulator served over HTTPS."""

from __future__ import annotations

import ipaddress
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from router.amazon_pay import AmazonPayClient, create_emulator_app
from router.amazon_pay.emulator.app import parse_public_key_args, run
from tests.amazon_pay.helpers import ORDER, KeyPair, make_config
from tests.support import free_port, serve_app


def test_key_args_accept_public_and_private_pem_files(keys: KeyPair, tmp_path: Path) -> None:
    (tmp_path / "pub.pem").write_bytes(keys.public_pem)
    (tmp_path / "priv.pem").write_bytes(keys.private_pem)
    parsed = parse_public_key_args([f"SANDBOX-A={tmp_path / 'pub.pem'}", f"LIVE-B={tmp_path / 'priv.pem'}"])
    expected = keys.private_key.public_key().public_numbers()
    assert {k: v.public_numbers() == expected for k, v in parsed.items()} == {
        "SANDBOX-A": True,
        "LIVE-B": True,
    }


@pytest.mark.parametrize(
    ("arg", "message"),
    [
        ("SANDBOX-A", "KEY_ID=PEM_FILE"),
        ("=x.pem", "KEY_ID=PEM_FILE"),
        ("SANDBOX-A=/nonexistent/key.pem", "cannot read"),
        ("SANDBOX-A={garbage}", "not PEM text"),
    ],
)
def test_key_args_errors_are_clear(tmp_path: Path, arg: str, message: str) -> None:
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("hello")
    with pytest.raises(ValueError, match=message):
        parse_public_key_args([arg.format(garbage=garbage)])


def test_duplicate_key_ids_and_half_tls_are_refused(keys: KeyPair, tmp_path: Path) -> None:
    (tmp_path / "pub.pem").write_bytes(keys.public_pem)
    with pytest.raises(ValueError, match="more than once"):
        parse_public_key_args([f"K={tmp_path / 'pub.pem'}", f"K={tmp_path / 'pub.pem'}"])
    with pytest.raises(ValueError, match="together"):
        run("127.0.0.1", 0, [], str(tmp_path / "cert.pem"), None)
    with pytest.raises(ValueError, match="not a readable file"):
        run("127.0.0.1", 0, [], str(tmp_path / "cert.pem"), str(tmp_path / "key.pem"))


def self_signed(tmp_path: Path) -> tuple[Path, Path]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_file, key_file


@pytest.fixture
def https_emulator(keys: KeyPair, tmp_path: Path) -> Iterator[tuple[str, ssl.SSLContext]]:
    cert_file, key_file = self_signed(tmp_path)
    (tmp_path / "pub.pem").write_bytes(keys.public_pem)
    port = free_port()
    code = (
        "import sys; from router.amazon_pay.emulator.app import run; "
        "run('127.0.0.1', int(sys.argv[1]), [sys.argv[2]], sys.argv[3], sys.argv[4])"
    )
    args = [
        str(port),
        f"SANDBOX-AHTESTKEY0000000000000={tmp_path / 'pub.pem'}",
        str(cert_file),
        str(key_file),
    ]
    proc = subprocess.Popen(
        [sys.executable, "-c", code, *args], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    context = ssl.create_default_context(cafile=str(cert_file))
    url = f"https://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                httpx.get(f"{url}/_emulator/requests", verify=context)
                break
            except httpx.TransportError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(
                        f"emulator did not start: {proc.stderr.read() if proc.stderr else ''!r}"
                    ) from None
                time.sleep(0.1)
        yield url, context
    finally:
        proc.terminate()
        proc.wait(timeout=10)


async def test_run_serves_https(keys: KeyPair, https_emulator: tuple[str, ssl.SSLContext]) -> None:
    url, context = https_emulator
    created = httpx.post(f"{url}/_emulator/checkout-sessions", json=ORDER, verify=context)
    session_id = created.json()["checkoutSessionId"]
    transport = httpx.AsyncHTTPTransport(verify=context)
    async with AmazonPayClient(make_config(keys, url), transport=transport) as client:
        result = await client.finalize_checkout_session(session_id, ORDER, "tls-1")
    assert result.http_status == 200 and result.session.state == "Completed"


def test_reset_forgets_sessions_keys_and_log(keys: KeyPair) -> None:
    app = create_emulator_app({"SANDBOX-A": keys.private_key.public_key()})
    with serve_app(app) as url:
        created = httpx.post(f"{url}/_emulator/checkout-sessions", json=ORDER).json()["checkoutSessionId"]
        httpx.get(f"{url}/v2/checkoutSessions/{created}")  # unsigned: logged as a 400
        assert len(httpx.get(f"{url}/_emulator/requests").json()["requests"]) == 1
        assert httpx.post(f"{url}/_emulator/reset").json() == {"reset": True}
        assert httpx.get(f"{url}/_emulator/requests").json()["requests"] == []
        assert not app.state.emulator.state.sessions
