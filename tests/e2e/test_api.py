"""The merchant API and the app API over real sockets, against the emulator."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from router.amazon_pay.keys import load_public_key
from router.amazon_pay.signing import ALGORITHM_V2, string_to_sign, verify
from router.app import create_app
from router.checkout.probes import LOOK_INTERVAL
from router.config import Settings
from tests.support import serve_app
from tests.support.config import AUTH, KEY_ID, TOKEN
from tests.support.emulator import Emulator
from tests.support.routers import Router


def finalize(router: Router, session_id: str, ref: str) -> httpx.Response:
    return httpx.post(f"{router.url}/v1/checkout-sessions/{session_id}/finalize", json={"ref": ref}, timeout=60)


def test_register_returns_ref_and_return_urls(router: Router) -> None:
    body = router.register()
    assert len(body["ref"]) >= 22  # at least 128 bits
    urls = body["returnUrls"]
    assert set(urls) == {"checkoutResultReturnUrl", "checkoutCancelUrl", "checkoutErrorUrl"}
    result = urlsplit(urls["checkoutResultReturnUrl"])
    assert (result.scheme, result.netloc, result.path) == ("https", "pay.example.com", "/amazon-pay/result")
    assert parse_qs(result.query) == {"ref": [body["ref"]]}
    assert urlsplit(urls["checkoutCancelUrl"]).path == "/amazon-pay/cancel"
    assert body["checkout"]["state"] == "created"
    assert "button" not in body  # no store_id configured


def test_merchant_api_needs_the_token(router: Router) -> None:
    for headers in ({}, {"authorization": "Bearer wrong"}, {"authorization": f"Basic {TOKEN}"}):
        answer = httpx.post(f"{router.url}/v1/checkouts", json={}, headers=headers)
        assert answer.status_code == 401
        assert answer.json()["error"]["code"] == "unauthorized"
    twice = httpx.post(f"{router.url}/v1/checkouts", json={},
                       headers=[("authorization", f"Bearer {TOKEN}"), ("authorization", "Bearer other")])
    assert twice.status_code == 401 and "one Authorization header" in twice.json()["error"]["message"]


@pytest.mark.parametrize(("body", "code"), [
    ({"merchantReference": "o", "chargeAmount": {"amount": "10.5", "currencyCode": "JPY"},
      "paymentIntent": "Confirm"}, "invalid_amount"),
    ({"merchantReference": "o", "chargeAmount": {"amount": "14.001", "currencyCode": "USD"},
      "paymentIntent": "Confirm"}, "invalid_amount"),
    ({"merchantReference": "o", "chargeAmount": {"amount": "-1", "currencyCode": "USD"},
      "paymentIntent": "Confirm"}, "invalid_amount"),
    ({"merchantReference": "o", "chargeAmount": {"amount": "1", "currencyCode": "XXX"},
      "paymentIntent": "Confirm"}, "invalid_amount"),
    ({"merchantReference": "o", "chargeAmount": {"amount": "1", "currencyCode": "USD"},
      "paymentIntent": "Pay"}, "invalid_payment_intent"),
    ({"chargeAmount": {"amount": "1", "currencyCode": "USD"}, "paymentIntent": "Confirm"},
     "invalid_merchant_reference"),
    ({"merchantReference": "o", "chargeAmount": {"amount": "1", "currencyCode": "USD"},
      "paymentIntent": "Confirm", "extra": 1}, "unknown_field"),
])
def test_register_rejects_bad_bodies(router: Router, body: dict[str, object], code: str) -> None:
    answer = httpx.post(f"{router.url}/v1/checkouts", json=body, headers={"authorization": f"Bearer {TOKEN}"})
    assert answer.status_code == 400 and answer.json()["error"]["code"] == code


def test_register_rejects_malformed_and_huge_bodies(router: Router) -> None:
    auth = {"authorization": f"Bearer {TOKEN}", "content-type": "application/json"}
    assert httpx.post(f"{router.url}/v1/checkouts", content=b"{nope", headers=auth).status_code == 400
    assert httpx.post(f"{router.url}/v1/checkouts", content=b"[]", headers=auth).status_code == 400
    huge = b'{"merchantReference": "' + b"x" * 20000 + b'"}'
    assert httpx.post(f"{router.url}/v1/checkouts", content=huge, headers=auth).status_code == 413
    plain = {"authorization": f"Bearer {TOKEN}", "content-type": "text/plain"}
    assert httpx.post(f"{router.url}/v1/checkouts", content=b"{}", headers=plain).status_code == 415


def test_jpy_amounts_are_whole(jp_router: Router) -> None:
    body = jp_router.register(amount="1000", currency="JPY")
    assert body["checkout"]["chargeAmount"] == {"amount": "1000", "currencyCode": "JPY"}


def test_app_finalizes_once_and_reads_back(router: Router, emulator: Emulator) -> None:
    ref = router.register()["ref"]
    session_id = emulator.create_session()
    first = finalize(router, session_id, ref)
    assert first.status_code == 200, first.text
    body = first.json()
    assert body["state"] == "completed" and body["chargeId"] and body["chargePermissionId"]
    assert body["buyer"]["maskedEmail"].count("*") >= 3
    again = finalize(router, session_id, ref)
    assert again.json() == body
    read = httpx.get(f"{router.url}/v1/checkout-sessions/{session_id}", params={"ref": ref})
    assert read.status_code == 200 and read.json()["state"] == "completed"
    assert len(emulator.requests("finalizeCheckoutSession")) == 1
    merchant = httpx.get(f"{router.url}/v1/checkouts/{ref}", headers={"authorization": f"Bearer {TOKEN}"})
    assert merchant.json()["state"] == "completed" and merchant.json()["paymentIntent"] == "AuthorizeWithCapture"


def test_app_pending_then_authorized(router: Router, emulator: Emulator) -> None:
    ref = router.register(pending=True)["ref"]
    session_id = emulator.create_session(scenario="pending-then-authorized")
    first = finalize(router, session_id, ref)
    assert first.status_code == 202 and first.json()["state"] == "pending"
    states = []
    for _ in range(5):  # the app polls; the emulator settles the charge on its second get_charge
        read = httpx.get(f"{router.url}/v1/checkout-sessions/{session_id}", params={"ref": ref})
        states.append((read.status_code, read.json()["state"]))
        if read.status_code != 202:
            break
        time.sleep(float(read.headers["retry-after"]))  # as told: a poll sooner gets the stored state
    assert states[0] == (202, "pending") and states[-1] == (200, "authorized"), states
    assert len(emulator.requests("finalizeCheckoutSession")) == 1


def test_polling_a_pending_order_faster_than_told_costs_amazon_one_read_an_interval(
    router: Router, emulator: Emulator
) -> None:
    """A reload loop on one's own pending order (the app API's GET, or the result page) spent a getCharge
    from the quota every buyer shares on each request; sooner than the interval, the stored state."""
    ref = router.register(pending=True)["ref"]
    session_id = emulator.create_session(scenario="pending-then-authorized", pending_polls=1000)
    assert finalize(router, session_id, ref).status_code == 202
    reads, started = len(emulator.requests("getCharge")), time.monotonic()
    for _ in range(5):
        read = httpx.get(f"{router.url}/v1/checkout-sessions/{session_id}", params={"ref": ref})
        assert (read.status_code, read.json()["state"]) == (202, "pending")
        page = router.get(f"/amazon-pay/result?ref={ref}&amazonCheckoutSessionId={session_id}")
        assert page.status_code == 200 and 'data-kind="pending"' in page.text
    # One read, and one more for each interval the ten requests took (a loaded machine may be that slow).
    allowed = 1 + int((time.monotonic() - started) // LOOK_INTERVAL)
    assert 1 <= len(emulator.requests("getCharge")) - reads <= allowed < 10


@pytest.mark.parametrize(("scenario", "status", "code"), [
    ("declined", 402, "payment_declined"),
    ("expired", 410, "checkout_expired"),
    ("buyer-canceled", 409, "checkout_canceled"),
])
def test_app_unpaid_outcomes(router: Router, emulator: Emulator, scenario: str, status: int, code: str) -> None:
    ref = router.register()["ref"]
    session_id = emulator.create_session(scenario=scenario, ref=ref)
    answer = finalize(router, session_id, ref)
    assert answer.status_code == status, answer.text
    assert answer.json()["error"]["code"] == code
    assert set(answer.json()) == {"error"}  # nothing about the order in an error answer


def test_app_errors(router: Router, emulator: Emulator) -> None:
    ref = router.register()["ref"]
    session_id = emulator.create_session()
    assert finalize(router, session_id, "x" * 30).status_code == 404
    assert finalize(router, "bad id!", ref).status_code in (400, 404)
    assert finalize(router, "<script>", ref).status_code in (400, 404)
    other = emulator.create_session()
    assert finalize(router, session_id, ref).status_code == 200
    conflict = finalize(router, other, ref)
    assert conflict.status_code == 409 and conflict.json()["error"]["code"] == "session_conflict"
    no_ref = httpx.post(f"{router.url}/v1/checkout-sessions/{session_id}/finalize", json={})
    assert no_ref.status_code == 400
    unknown = httpx.get(f"{router.url}/v1/checkout-sessions/{session_id}", params={"ref": "nope"})
    assert unknown.status_code == 404


def test_a_session_of_another_order_says_so_and_leaves_this_order_to_pay(router: Router, emulator: Emulator) -> None:
    paid, other = router.register(reference="order-x")["ref"], router.register(reference="order-v")["ref"]
    session_id = emulator.create_session(ref=paid)
    assert finalize(router, session_id, paid).status_code == 200
    conflict = finalize(router, session_id, other)
    assert conflict.status_code == 409 and conflict.json()["error"] == {
        "code": "session_conflict", "message": "this checkout session belongs to another order"}
    # True of it: the order was not settled, and it pays with its own session.
    assert httpx.get(f"{router.url}/v1/checkouts/{other}", headers=AUTH).json()["state"] == "created"
    assert finalize(router, emulator.create_session(ref=other), other).status_code == 200
    # An order settled with another session is still told so.
    settled = finalize(router, emulator.create_session(), paid)
    assert settled.status_code == 409 and "settled with another" in settled.json()["error"]["message"]


def test_a_repeated_ref_on_the_session_read_is_refused(router: Router, emulator: Emulator) -> None:
    """As the pages refuse a return URL naming two checkouts: which ref counts is left to no layer."""
    ref, other = router.register()["ref"], router.register(reference="order-2")["ref"]
    session_id = emulator.create_session(ref=ref)
    assert finalize(router, session_id, ref).status_code == 200
    url = f"{router.url}/v1/checkout-sessions/{session_id}"
    for refs in ([ref, other], [other, ref], [ref, ref]):
        answer = httpx.get(url, params=[("ref", r) for r in refs])
        assert answer.status_code == 400 and answer.json()["error"]["code"] == "repeated_ref", (refs, answer.text)
        assert set(answer.json()) == {"error"}
    assert httpx.get(url, params={"ref": ref}).status_code == 200


def test_amazon_unavailable_is_a_retryable_503(router: Router, emulator: Emulator) -> None:
    ref = router.register()["ref"]
    session_id = emulator.create_session(fail_first_n=4, fail_status=503)
    answer = finalize(router, session_id, ref)
    assert answer.status_code == 503 and answer.json()["error"]["code"] == "amazon_unavailable"
    assert answer.headers["retry-after"]
    # Polled meanwhile, the bound, unfinished checkout is not paid: an app that shows the confirmation on
    # a 200 must not get one (it read 200 with state "created").
    polled = httpx.get(f"{router.url}/v1/checkout-sessions/{session_id}", params={"ref": ref})
    assert polled.status_code == 503 and polled.json()["error"]["code"] == "in_progress", polled.text
    assert polled.headers["retry-after"] and "checkout" not in polled.json()
    later = finalize(router, session_id, ref)  # faults used up: the same key now succeeds
    assert later.status_code == 200 and later.json()["state"] == "completed"
    keys = {r["idempotencyKey"] for r in emulator.requests("finalizeCheckoutSession")}
    assert len(keys) == 1


async def test_fifty_concurrent_finalizes_reach_amazon_once(router: Router, emulator: Emulator) -> None:
    ref = router.register()["ref"]
    session_id = emulator.create_session(latency_ms=300)
    async with httpx.AsyncClient(timeout=60) as client:
        answers = await asyncio.gather(*(
            client.post(f"{router.url}/v1/checkout-sessions/{session_id}/finalize", json={"ref": ref})
            for _ in range(50)))
    assert {a.status_code for a in answers} == {200}
    assert len({a.text for a in answers}) == 1
    assert len(emulator.requests("finalizeCheckoutSession")) == 1


def test_openapi_document(router: Router) -> None:
    doc = httpx.get(f"{router.url}/v1/openapi.json").json()
    assert doc["openapi"].startswith("3.")
    assert "/v1/checkout-sessions/{checkoutSessionId}/finalize" in doc["paths"]


def test_a_session_amazon_does_not_know_does_not_block_the_ref(router: Router, emulator: Emulator) -> None:
    ref = router.register()["ref"]
    bogus = finalize(router, "00000000-0000-4000-8000-000000000000", ref)
    assert bogus.status_code == 404 and bogus.json()["error"]["code"] == "unknown_session"
    real = finalize(router, emulator.create_session(), ref)  # the genuine return still binds and pays
    assert real.status_code == 200 and real.json()["state"] == "completed"


def test_signed_button_payload_when_store_id_is_set(make_settings: Callable[..., Settings],
                                                    key_files: tuple[Path, Path]) -> None:
    settings = make_settings('store_id = "amzn1.application-oa2-client.0123456789abcdef"\n', region="jp")
    with serve_app(create_app(settings, background=False)) as url:
        body = Router(url).register(amount="1000", currency="JPY")
    button = body["button"]
    assert button["publicKeyId"] == KEY_ID and button["algorithm"] == ALGORITHM_V2
    payload = json.loads(button["payloadJSON"])
    assert payload["storeId"] == "amzn1.application-oa2-client.0123456789abcdef"
    assert payload["webCheckoutDetails"]["checkoutResultReturnUrl"] == body["returnUrls"]["checkoutResultReturnUrl"]
    assert payload["paymentDetails"]["chargeAmount"] == {"amount": "1000", "currencyCode": "JPY"}
    public_key = load_public_key(key_files[1].read_bytes())
    signed = string_to_sign(ALGORITHM_V2, button["payloadJSON"])  # Amazon's button scheme: hash of the JSON
    assert verify(public_key, ALGORITHM_V2, signed, button["signature"])
    assert not verify(public_key, ALGORITHM_V2, signed.replace("V2", "V2 "), button["signature"])


def test_checkouts_expire(make_settings: Callable[..., Settings], emulator: Emulator) -> None:
    settings = make_settings("\n[checkout]\nttl_hours = 0.0002\n")  # 0.72 s
    with serve_app(create_app(settings, background=False)) as url:
        router = Router(url)
        ref = router.register()["ref"]
        time.sleep(1.0)
        answer = finalize(router, emulator.create_session(), ref)
        assert answer.status_code == 410 and answer.json()["error"]["code"] == "checkout_expired"
    assert emulator.requests("finalizeCheckoutSession") == []  # nothing was sent to Amazon
