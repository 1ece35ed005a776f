"""The return-router command as a new user runs it: real processes on real ports."""

from __future__ import annotations

import contextlib
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import httpx

from tests.bench._load import wait_for_port
from tests.support import free_port
from tests.support.config import BASE_CONFIG


@contextlib.contextmanager
def running(*args: str, cwd: Path, output: list[str] | None = None) -> Iterator[str]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "router.cli", *args, "--port", str(port)], cwd=cwd,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        wait_for_port(port, proc)  # type: ignore[arg-type]
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        printed = proc.communicate(timeout=15)[0].decode()
        assert "Traceback" not in printed, printed
        if output is not None:
            output.append(printed)


def test_serve_without_config_is_the_demo(tmp_path: Path) -> None:
    with running("serve", cwd=tmp_path) as url:
        assert httpx.get(url + "/healthz").json() == {"status": "ok"}
        assert httpx.get(url + "/readyz").status_code == 200
        aasa = httpx.get(url + "/.well-known/apple-app-site-association", headers={"host": "any.example"})
        assert aasa.status_code == 200 and aasa.headers["content-type"] == "application/json"
        landing = httpx.get(url + "/")
        assert landing.status_code == 200 and 'action="/demo/start"' in landing.text
        start = httpx.post(url + "/demo/start", content=b"scenario=completed&currency=USD&lang=en",
                           headers={"content-type": "application/x-www-form-urlencoded"}, follow_redirects=True)
        assert start.status_code == 200 and "Thank you, " in start.text  # "Thank you, NAME" (Amazon gave a name)
        assert httpx.get(url + "/metrics").status_code == 404  # metrics have a listener of their own


def test_serve_refuses_a_bad_config_naming_every_key(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text(BASE_CONFIG.replace('flow = "error"', 'flow = "eror"').replace("ABCDE12345.", "X."))
    result = subprocess.run([sys.executable, "-m", "router.cli", "serve", "--config", str(bad)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert f"{bad}: routes[2].flow: must be one of success, cancel, error" in result.stderr
    assert f"{bad}: ios.app_ids[0]:" in result.stderr
    assert "Traceback" not in result.stderr


def test_serve_with_config_and_two_workers(tmp_path: Path) -> None:
    config = tmp_path / "rr.toml"
    config.write_text(BASE_CONFIG + '\n[storage]\nurl = "sqlite:///rr.db"\n')
    with running("serve", "--config", str(config), "--workers", "2", cwd=tmp_path) as url:
        for _ in range(6):
            answer = httpx.get(url + "/.well-known/assetlinks.json", headers={"host": "pay.example.com"})
            assert answer.status_code == 200
        assert httpx.get(url + "/.well-known/assetlinks.json", headers={"host": "x.test"}).status_code == 404
    assert (tmp_path / "rr.db").exists()


def test_keygen_and_emulator(tmp_path: Path) -> None:
    subprocess.run([sys.executable, "-m", "router.cli", "keygen", "--out", "k"], cwd=tmp_path, check=True,
                   capture_output=True)
    assert (tmp_path / "k-private.pem").stat().st_mode & 0o077 == 0
    again = subprocess.run([sys.executable, "-m", "router.cli", "keygen", "--out", "k"], cwd=tmp_path,
                           capture_output=True, text=True)
    assert again.returncode == 2 and "not overwriting" in again.stderr
    with running("emulator", "--public-key", f"SANDBOX-K={tmp_path / 'k-public.pem'}", cwd=tmp_path) as url:
        answer = httpx.get(url + "/v2/checkoutSessions/abc", headers={
            "authorization": "AMZN-PAY-RSASSA-PSS-V2 PublicKeyId=SANDBOX-OTHER, SignedHeaders=x-amz-pay-date, "
                             "Signature=AAAA", "x-amz-pay-date": "20250101T000000Z"})
        assert answer.status_code == 401 and answer.json()["reasonCode"] == "UnauthorizedAccess"


def test_events_list_and_redeliver(tmp_path: Path) -> None:
    import asyncio
    import json

    from router.checkout.events import event_for
    from router.checkout.model import Checkout, State
    from router.store import open_store

    config = tmp_path / "rr.toml"
    config.write_text(BASE_CONFIG + f'\n[storage]\nurl = "sqlite:///{tmp_path}/ev.db"\n')

    async def park_one() -> str:
        store = open_store(f"sqlite:///{tmp_path}/ev.db")
        await store.open()
        try:
            checkout = Checkout(ref="r" * 32, merchant_reference="o", amount="1", currency="JPY",
                                payment_intent="Confirm", can_handle_pending=False, created_at=1.0, expires_at=9e9)
            await store.create_checkout(checkout)
            event = event_for(replace(checkout, state=State.COMPLETED), 2.0)
            assert event is not None
            await store.transition(checkout.ref, owner=None, now=2.0, state=State.COMPLETED, events=[event])
            claimed = await store.claim_events("w", 3.0, 60, 10)
            await store.event_failed(claimed[0].id, "w", 3.0, "HTTP 500", None)
            return event.id
        finally:
            await store.close()

    event_id = asyncio.run(park_one())
    cli = [sys.executable, "-m", "router.cli", "events"]
    listed = subprocess.run([*cli, "list", "--failed", "--config", str(config)], capture_output=True, text=True)
    rows = [json.loads(line) for line in listed.stdout.splitlines()]
    assert [(r["id"], r["status"], r["last_error"]) for r in rows] == [(event_id, "failed", "HTTP 500")]
    assert "r" * 32 not in listed.stdout  # refs are masked
    again = subprocess.run([*cli, "redeliver", "--all-failed", "--config", str(config)], capture_output=True,
                           text=True)
    assert again.returncode == 0 and "queued 1 event(s)" in again.stdout
    none = subprocess.run([*cli, "redeliver", "--config", str(config)], capture_output=True, text=True)
    assert none.returncode == 2


def test_access_log_hides_session_ids_and_refs() -> None:
    from router.redact import redact_path

    path = "/v1/checkout-sessions/bd504926-f659-4ad7-a1a9-9a747aaf5275/finalize"
    assert redact_path(path) == "/v1/checkout-sessions/bd50…5275/finalize"
    assert redact_path("/amazon-pay/result?ref=abc&amazonCheckoutSessionId=x") == "/amazon-pay/result?…"
    assert redact_path("/.well-known/apple-app-site-association") == "/.well-known/apple-app-site-association"
    # an id in an id's place is masked whatever its shape: letters and dashes only, or short
    assert redact_path("/v1/checkout-sessions/abcdefgh-ijklmnop-qrstuv/finalize") == (
        "/v1/checkout-sessions/abcd…stuv/finalize")
    assert redact_path("/v1/checkout-sessions/short1234567") == "/v1/checkout-sessions/shor…4567"
    assert redact_path("/v1/checkout-sessions/abcdefgh") == "/v1/checkout-sessions/…"
    assert redact_path("/v1/checkouts/refrefrefref") == "/v1/checkouts/refr…fref"
    assert redact_path("/v1/checkouts") == "/v1/checkouts"


def test_served_logs_never_show_a_full_session_id(tmp_path: Path) -> None:
    session_id = "bd504926-f659-4ad7-a1a9-9a747aaf5275"
    output: list[str] = []
    with running("serve", cwd=tmp_path, output=output) as url:
        httpx.post(f"{url}/v1/checkout-sessions/{session_id}/finalize", json={"ref": "r" * 32})
        httpx.get(f"{url}/amazon-pay/result", params={"ref": "r" * 32, "amazonCheckoutSessionId": session_id})
    assert session_id not in output[0] and "r" * 32 not in output[0]
    assert "/v1/checkout-sessions/bd50…5275/finalize" in output[0]


def test_emulator_throttle_flag(tmp_path: Path) -> None:
    import asyncio

    from router.amazon_pay import AmazonPayClient, AmazonPayError, ClientConfig, RetryPolicy, load_private_key

    subprocess.run([sys.executable, "-m", "router.cli", "keygen", "--out", "k"], cwd=tmp_path, check=True,
                   capture_output=True)
    key = load_private_key((tmp_path / "k-private.pem").read_bytes())
    order = {"chargeAmount": {"amount": "14.00", "currencyCode": "USD"}, "paymentIntent": "Authorize"}

    async def finalize_three(url: str) -> list[int | None]:
        config = ClientConfig(public_key_id="SANDBOX-K", private_key=key, region="us", endpoint=url,
                              retry=RetryPolicy(max_attempts=1))
        statuses: list[int | None] = []
        # The sessions first: only the three finalize calls fall in the bucket's refill time (1 s), however slow
        # the machine.
        sessions = [httpx.post(url + "/_emulator/checkout-sessions", json=order).json()["checkoutSessionId"]
                    for _ in range(3)]
        async with AmazonPayClient(config) as client:
            for i, session in enumerate(sessions):
                try:
                    statuses.append((await client.finalize_checkout_session(session, order, f"k{i}")).http_status)
                except AmazonPayError as exc:
                    statuses.append(exc.status)
        return statuses

    public = f"SANDBOX-K={tmp_path / 'k-public.pem'}"
    with running("emulator", "--throttle", "--public-key", public, cwd=tmp_path) as url:
        assert asyncio.run(finalize_three(url)) == [200, 200, 429]  # Sandbox finalize: a burst of 2
    with running("emulator", "--public-key", public, cwd=tmp_path) as url:
        assert asyncio.run(finalize_three(url)) == [200, 200, 200]  # off by default
