"""The real `serve --log-format json`: every stderr line is JSON, request ids correlate end to end, ids are masked.

A return and API calls go to a subprocess router in front of the Amazon Pay emulator (headers it got
are recorded by a thin ASGI wrapper) and a webhook receiver; then the output is read as an operator's
log shipper would.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.types import Receive, Scope, Send

from router.amazon_pay import create_emulator_app
from router.amazon_pay.keys import load_public_key
from tests.support import free_port, http_client, serve_app, wait_until
from tests.support.config import AUTH, HOST, KEY_ID, TOKEN, WEBHOOK_SECRET, process_config
from tests.support.processes import return_path
from tests.support.receiver import Receiver

ROOT = Path(__file__).resolve().parents[2]


class Recorded:
    """The emulator, noting the x-request-id header of every request it got."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.request_ids: list[str | None] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith("/v2/"):
            found = [v.decode() for k, v in scope["headers"] if k == b"x-request-id"]
            self.request_ids.append(found[0] if found else None)
        await self.app(scope, receive, send)


@pytest.fixture
def world(tmp_path: Path, key_files: tuple[Path, Path], receiver: Receiver) -> Iterator[dict[str, Any]]:
    emulator = Recorded(create_emulator_app({KEY_ID: load_public_key(key_files[1].read_bytes())}))
    hooks = receiver.up()
    with serve_app(emulator) as emulator_url:
        config = tmp_path / "router.toml"
        config.write_text(process_config(emulator_url, key_files[0], f"sqlite:///{tmp_path / 'router.db'}",
                                         webhook_url=hooks.url)
                          + '\n[metrics]\nlisten = ""\n')
        port = free_port()
        err = (tmp_path / "stderr.log").open("wb")
        env = {**os.environ, "RR_TEST_TOKEN": TOKEN, "RR_TEST_WEBHOOK_SECRET": WEBHOOK_SECRET,
               "PYTHONPATH": str(ROOT)}
        proc = subprocess.Popen([sys.executable, "-m", "router.cli", "serve", "--config", str(config),
                                 "--port", str(port), "--log-format", "json"],
                                cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=err)
        url = f"http://127.0.0.1:{port}"
        try:
            wait_until(lambda: _healthy(url), "the router to answer", timeout=30)
            yield {"url": url, "emulator": emulator, "emulator_url": emulator_url, "hooks": hooks,
                   "stderr": tmp_path / "stderr.log", "proc": proc}
        finally:
            proc.terminate()
            proc.wait(timeout=20)
            err.close()


def _healthy(url: str) -> bool:
    try:
        return http_client().get(f"{url}/healthz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def _lines(path: Path) -> list[dict[str, Any]]:
    text = path.read_text()
    return [json.loads(line) for line in text.splitlines()]  # fails on any line that is not JSON


def _return_with(world: dict[str, Any], scenario: str) -> str:
    """A checkout whose return meets `scenario` at Amazon; the return's request id."""
    answer = httpx.post(f"{world['url']}/v1/checkouts", headers=AUTH, timeout=30,
                        json={"merchantReference": f"order-{scenario}", "paymentIntent": "AuthorizeWithCapture",
                              "chargeAmount": {"amount": "14.00", "currencyCode": "USD"}})
    created = httpx.post(f"{world['emulator_url']}/_emulator/checkout-sessions",
                         json={"chargeAmount": {"amount": "14.00", "currencyCode": "USD"},
                               "paymentIntent": "AuthorizeWithCapture", "scenario": scenario,
                               "webCheckoutDetails": {"checkoutResultReturnUrl":
                                                      answer.json()["returnUrls"]["checkoutResultReturnUrl"]}})
    returned = httpx.get(world["url"] + return_path(answer.json()["ref"], created.json()["checkoutSessionId"]),
                         headers={"host": HOST}, timeout=60)
    assert returned.status_code < 500
    return str(returned.headers["x-request-id"])


def test_json_logs_carry_request_ids_and_mask_ids(world: dict[str, Any]) -> None:
    url = world["url"]
    answer = httpx.post(f"{url}/v1/checkouts", headers={**AUTH, "x-request-id": "api-call.1"}, timeout=30,
                        json={"merchantReference": "order-4711", "paymentIntent": "AuthorizeWithCapture",
                              "chargeAmount": {"amount": "14.00", "currencyCode": "USD"}})
    assert answer.status_code == 201, answer.text
    assert answer.headers["x-request-id"] == "api-call.1"  # a valid incoming id is kept
    ref = answer.json()["ref"]
    created = httpx.post(f"{world['emulator_url']}/_emulator/checkout-sessions",
                         json={"chargeAmount": {"amount": "14.00", "currencyCode": "USD"},
                               "paymentIntent": "AuthorizeWithCapture", "scenario": "completed"})
    session_id = created.json()["checkoutSessionId"]
    bad = httpx.get(f"{url}/healthz", headers={"x-request-id": "no spaces allowed"})
    assert bad.headers["x-request-id"] != "no spaces allowed"  # invalid: a new one instead
    returned = httpx.get(url + return_path(ref, session_id), headers={"host": HOST}, timeout=60)
    assert returned.status_code == 200
    rid = returned.headers["x-request-id"]
    assert len(rid) >= 8

    # Amazon got the id of the return that caused the call; the merchant's webhook too.
    assert rid in world["emulator"].request_ids
    wait_until(lambda: any(d.headers.get("return-router-request-id") == rid for d in world["hooks"].deliveries()),
               "a webhook carrying the return's request id", timeout=20)

    # A decline and a buyer's cancel are ordinary outcomes: INFO, never WARNING.
    ordinary = [_return_with(world, scenario) for scenario in ("declined", "buyer-canceled")]

    world["proc"].terminate()
    world["proc"].wait(timeout=20)
    time.sleep(0.1)
    lines = _lines(world["stderr"])
    for line in lines:
        assert {"time", "level", "logger", "message", "request_id"} <= line.keys(), line

    start = [line for line in lines if line["logger"] == "router.start"]
    assert len(start) == 1
    assert start[0]["storage"] == "sqlite" and start[0]["webhooks"] == "on"
    assert start[0]["amazon_pay"]["mode"] == "sandbox" and start[0]["amazon_pay"]["key_id"] != KEY_ID
    assert any(str(url.rsplit(":", 1)[1]) in listener for listener in start[0]["listeners"])

    of_return = [line for line in lines if line["request_id"] == rid]
    access = [line for line in of_return if line["logger"] == "uvicorn.access"]
    assert len(access) == 1
    assert access[0]["method"] == "GET" and access[0]["status"] == 200 and access[0]["host"] == HOST
    assert access[0]["path"] == "/amazon-pay/result?…" and access[0]["platform"] == "other"
    assert isinstance(access[0]["duration_ms"], float)
    assert any(line["logger"].startswith("router.") for line in of_return)  # the service's own lines too
    assert all(line.get("ref") == f"{ref[:4]}…{ref[-4:]}" for line in of_return if line["logger"] != "uvicorn.access")
    assert any(line["request_id"] == "api-call.1" and line["logger"] == "uvicorn.access" for line in lines)

    for request_id in ordinary:
        mine = [line for line in lines if line["request_id"] == request_id]
        assert any(line["logger"] == "router.amazon_pay" for line in mine), mine  # Amazon was asked
        assert [line for line in mine if line["level"] != "INFO"] == []

    text = world["stderr"].read_text()
    assert ref not in text and session_id not in text  # only masked


def test_every_worker_writes_json(tmp_path: Path, key_files: tuple[Path, Path]) -> None:
    """uvicorn's worker processes configure logging anew: their lines are JSON too."""
    config = tmp_path / "router.toml"
    config.write_text(process_config("http://127.0.0.1:9", key_files[0], f"sqlite:///{tmp_path / 'r.db'}")
                      + '\n[metrics]\nlisten = ""\n')
    port = free_port()
    env = {**os.environ, "RR_TEST_TOKEN": TOKEN, "PYTHONPATH": str(ROOT)}
    with (tmp_path / "stderr.log").open("wb") as err:
        proc = subprocess.Popen([sys.executable, "-m", "router.cli", "serve", "--config", str(config), "--port",
                                 str(port), "--workers", "2", "--log-format", "json"],
                                cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=err)
        try:
            url = f"http://127.0.0.1:{port}"
            wait_until(lambda: _healthy(url) and (tmp_path / "stderr.log").read_text().count(
                "Application startup complete") >= 2, "both workers", timeout=60)
            ids = [httpx.get(f"{url}/healthz").headers["x-request-id"] for _ in range(6)]
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    lines = _lines(tmp_path / "stderr.log")
    assert len({line["message"] for line in lines if line["message"].startswith("Started server process")}) == 2
    logged = {line["request_id"] for line in lines if line["logger"] == "uvicorn.access"}
    assert set(ids) <= logged


def test_lines_about_a_checkout_name_its_merchant_reference(world: dict[str, Any]) -> None:
    """The return's lines, the reconciler's and the webhook worker's carry merchant_reference, exactly
    as registered: printable merchant text with spaces, quotes and "=" stays one JSON field."""
    url = world["url"]
    refused = httpx.post(f"{url}/v1/checkouts", headers=AUTH, timeout=30,
                         json={"merchantReference": "o-1\n{\"level\": \"ERROR\"}", "paymentIntent": "Authorize",
                               "chargeAmount": {"amount": "14.00", "currencyCode": "USD"}})
    assert refused.status_code == 400  # a line break never gets as far as a log line
    order = 'Bestellung 4711 "eilig" level=ERROR'
    answer = httpx.post(f"{url}/v1/checkouts", headers={**AUTH, "x-request-id": "register.1"}, timeout=30,
                        json={"merchantReference": order, "paymentIntent": "AuthorizeWithCapture",
                              "canHandlePendingAuthorization": True,
                              "chargeAmount": {"amount": "14.00", "currencyCode": "USD"}})
    assert answer.status_code == 201, answer.text
    ref = answer.json()["ref"]
    created = httpx.post(f"{world['emulator_url']}/_emulator/checkout-sessions",
                         json={"chargeAmount": {"amount": "14.00", "currencyCode": "USD"}, "pending_polls": 3,
                               "paymentIntent": "AuthorizeWithCapture", "scenario": "pending-then-authorized"})
    session_id = created.json()["checkoutSessionId"]
    returned = httpx.get(url + return_path(ref, session_id), headers={"host": HOST, "x-request-id": "return.1"},
                         timeout=60)
    assert returned.status_code == 200 and 'data-kind="pending"' in returned.text
    # The reconciler settles it in the background; both events go out.
    wait_until(lambda: len(world["hooks"].deliveries()) == 2, "checkout.pending and checkout.authorized", timeout=30)
    app_read = httpx.get(f"{url}/v1/checkout-sessions/{session_id}", params={"ref": ref},
                         headers={"x-request-id": "app.1"}, timeout=30)
    assert app_read.status_code == 200 and app_read.json()["state"] == "authorized"
    error = httpx.get(f"{url}/amazon-pay/error", params={"ref": ref}, headers={"host": HOST, "x-request-id": "err.1"})
    assert error.status_code == 200 and 'data-kind="success"' in error.text  # paid: never "no payment was made"
    world["proc"].terminate()
    world["proc"].wait(timeout=20)
    lines = _lines(world["stderr"])

    def about(**match: str) -> list[dict[str, Any]]:
        return [line for line in lines if all(line.get(k) == v for k, v in match.items())]

    assert about(request_id="register.1", logger="uvicorn.access")[0]["merchant_reference"] == order
    assert about(request_id="app.1", logger="uvicorn.access")[0]["merchant_reference"] == order
    assert about(request_id="err.1", logger="router.web.flows")[0]["merchant_reference"] == order
    of_return = about(request_id="return.1")
    assert {line["logger"] for line in of_return} >= {"uvicorn.access", "router.checkout.service"}
    assert all(line["merchant_reference"] == order for line in of_return), of_return
    masked = f"{ref[:4]}…{ref[-4:]}"
    settled = [line for line in about(logger="router.checkout.service", request_id="-")
               if "→ authorized" in line["message"]]
    assert len(settled) == 1 and settled[0]["merchant_reference"] == order and settled[0]["ref"] == masked
    deliveries = [line for line in about(logger="router.webhooks.worker") if "delivered" in line["message"]]
    assert len(deliveries) == 2
    assert all(line["merchant_reference"] == order and line["ref"] == masked for line in deliveries)
    # checkout.pending came from the return: its delivery line names that request; the reconciler's none.
    assert sorted(line["request_id"] for line in deliveries) == ["-", "return.1"]


def test_a_failed_finalize_names_ref_and_session_alike_from_a_return_and_from_the_app_api(
        world: dict[str, Any]) -> None:
    """The finalize-failed WARNING carries `ref` and `session_id` fields whether the ids came in a return's
    query or in the app API's path and body."""
    url = world["url"]

    def failing_checkout() -> tuple[str, str]:
        answer = httpx.post(f"{url}/v1/checkouts", headers=AUTH, timeout=30,
                            json={"merchantReference": "order-fails", "paymentIntent": "AuthorizeWithCapture",
                                  "chargeAmount": {"amount": "14.00", "currencyCode": "USD"}})
        created = httpx.post(f"{world['emulator_url']}/_emulator/checkout-sessions",
                             json={"chargeAmount": {"amount": "14.00", "currencyCode": "USD"},
                                   "paymentIntent": "AuthorizeWithCapture", "fail_first_n": 100, "fail_status": 503})
        return answer.json()["ref"], created.json()["checkoutSessionId"]

    by_return, by_app = failing_checkout(), failing_checkout()
    returned = httpx.get(url + return_path(*by_return), headers={"host": HOST, "x-request-id": "return.fails"},
                         timeout=60)
    app_call = httpx.post(f"{url}/v1/checkout-sessions/{by_app[1]}/finalize", json={"ref": by_app[0]},
                          headers={"x-request-id": "app.fails"}, timeout=60)
    assert returned.status_code == 503 and app_call.status_code == 503, app_call.text  # "can't confirm yet"
    world["proc"].terminate()
    world["proc"].wait(timeout=20)
    lines = _lines(world["stderr"])
    for request_id, (ref, session_id) in (("return.fails", by_return), ("app.fails", by_app)):
        failed = [line for line in lines if line["request_id"] == request_id and line["level"] == "WARNING"
                  and line["message"].startswith("finalize ")]
        assert failed, request_id
        masked = {"ref": f"{ref[:4]}…{ref[-4:]}", "session_id": f"{session_id[:4]}…{session_id[-4:]}"}
        assert all({name: line.get(name) for name in masked} == masked for line in failed), failed
