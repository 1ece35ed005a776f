"""Requests that must never do lasting harm to a payment, over real HTTP (issue 8): malformed session ids,
a cancel URL loaded after the buyer returned, probes with made-up session ids, and readiness."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import httpx
import pytest

from router.app import create_app
from router.config import Settings
from router.store import open_store
from tests.support import serve_app
from tests.support.emulator import Emulator
from tests.support.routers import Router

RESULT, CANCEL = "/amazon-pay/result", "/amazon-pay/cancel"


def finalize(router: Router, session_path: str, ref: str) -> httpx.Response:
    """POST the app finalize with `session_path` put in the URL exactly as given (already encoded)."""
    return httpx.post(f"{router.url}/v1/checkout-sessions/{session_path}/finalize", json={"ref": ref}, timeout=60)


def stored(db: Path, ref: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The stored checkout row (as the merchant API shows it is not enough: lease columns) and its events."""
    async def read() -> tuple[dict[str, Any], list[dict[str, Any]]]:
        store = open_store(f"sqlite:///{db}")
        await store.open()
        try:
            checkout = await store.get_checkout(ref)
            events = [e for e in await store.list_events(limit=1000) if e.ref == ref]
        finally:
            await store.close()
        assert checkout is not None
        row = {"state": checkout.state, "session": checkout.checkout_session_id, "lease": checkout.lease_owner}
        return row, [json.loads(e.body) for e in sorted(events, key=lambda e: e.seq)]
    return asyncio.run(read())


def kind(page: httpx.Response) -> str:
    start = page.text.index('data-kind="') + len('data-kind="')
    return page.text[start:page.text.index('"', start)]


@pytest.mark.parametrize("bad", ["aaaaaaaa\n", "aaaaaaaa\r\n", "aaaaaaaa\u00e9", "aaaaaaaa\u0660", "\naaaaaaaa"])
def test_a_malformed_session_id_never_blocks_the_checkout(router: Router, emulator: Emulator, tmp_path: Path,
                                                          bad: str) -> None:
    ref = router.register()["ref"]
    api = finalize(router, quote(bad, safe=""), ref)
    assert api.status_code == 400 and api.json() == {
        "error": {"code": "invalid_session_id", "message": "the checkout session id is malformed"}}
    page = router.get(f"{RESULT}?{urlencode({'ref': ref, 'amazonCheckoutSessionId': bad})}")
    assert page.status_code == 400 and kind(page) == "bad_request"
    assert stored(tmp_path / "rr.db", ref)[0] == {"state": "created", "session": None, "lease": None}
    assert emulator.requests("finalizeCheckoutSession") == []
    genuine = finalize(router, emulator.create_session(), ref)  # the buyer's real return still pays
    assert genuine.status_code == 200 and genuine.json()["state"] == "completed"


def test_cancel_url_after_the_return_never_cancels_the_payment(router: Router, emulator: Emulator,
                                                               tmp_path: Path) -> None:
    ref = router.register()["ref"]
    # Amazon answers 503 to the whole return (2 finalize + 2 getCheckoutSession attempts), then recovers.
    session_id = emulator.create_session(fail_first_n=4, fail_status=503)
    back = router.get(f"{RESULT}?{urlencode({'ref': ref, 'amazonCheckoutSessionId': session_id})}")
    assert kind(back) == "unavailable"
    assert stored(tmp_path / "rr.db", ref)[0] == {"state": "created", "session": session_id, "lease": None}

    cancel = router.get(f"{CANCEL}?ref={ref}")  # a link preview, or anyone with the ref
    assert cancel.status_code == 200 and kind(cancel) == "success", cancel.text
    reload = router.get(f"{RESULT}?{urlencode({'ref': ref, 'amazonCheckoutSessionId': session_id})}")
    assert kind(reload) == "success"
    row, events = stored(tmp_path / "rr.db", ref)
    assert row["state"] == "completed"
    assert [e["type"] for e in events] == ["checkout.completed"] and "supersedes" not in events[0]
    finalized = [r for r in emulator.requests("finalizeCheckoutSession") if r.get("status") == 200]
    assert len(finalized) == 1


def test_cancel_url_while_amazon_is_down_says_unavailable_not_canceled(router: Router, emulator: Emulator,
                                                                       tmp_path: Path) -> None:
    ref = router.register()["ref"]
    session_id = emulator.create_session(fail_first_n=8, fail_status=503)
    router.get(f"{RESULT}?{urlencode({'ref': ref, 'amazonCheckoutSessionId': session_id})}")
    cancel = router.get(f"{CANCEL}?ref={ref}")
    assert kind(cancel) == "unavailable"
    assert stored(tmp_path / "rr.db", ref)[0]["state"] == "created"


def test_a_cancel_then_a_genuine_return_is_reported_as_superseding_it(router: Router, emulator: Emulator,
                                                                      tmp_path: Path) -> None:
    ref = router.register()["ref"]
    assert kind(router.get(f"{CANCEL}?ref={ref}")) == "canceled"  # before any return: a cancel
    session_id = emulator.create_session()
    page = router.get(f"{RESULT}?{urlencode({'ref': ref, 'amazonCheckoutSessionId': session_id})}")
    assert kind(page) == "success"
    _, events = stored(tmp_path / "rr.db", ref)
    assert [e["type"] for e in events] == ["checkout.canceled", "checkout.completed"]
    assert "supersedes" not in events[0] and events[1]["supersedes"] == "checkout.canceled"


def test_a_probe_learns_nothing_and_costs_amazon_one_look(router: Router, emulator: Emulator) -> None:
    ref = router.register(reference="secret-order-42", amount="99.00")["ref"]
    probe = "00000000-0000-4000-8000-000000000000"
    first = finalize(router, probe, ref)
    assert first.status_code == 404
    assert first.json() == {"error": {"code": "unknown_session",
                                      "message": "Amazon Pay does not know this checkout session, "
                                                 "or it is another order's."}}
    assert "secret-order-42" not in first.text and "99.00" not in first.text
    calls = len(emulator.requests())
    assert [r["operation"] for r in emulator.requests()] == ["finalizeCheckoutSession"]  # Amazon's 404 not read back
    for _ in range(3):
        again = finalize(router, probe, ref)
        assert again.status_code == 404 and again.json()["error"]["code"] == "unknown_session"
    assert len(emulator.requests()) == calls  # remembered: no Amazon call for a repeated pair
    page = router.get(f"{RESULT}?{urlencode({'ref': ref, 'amazonCheckoutSessionId': probe})}")
    assert kind(page) == "bad_request" and len(emulator.requests()) == calls
    genuine = finalize(router, emulator.create_session(amount="99.00"), ref)
    assert genuine.status_code == 200 and genuine.json()["state"] == "completed"


def test_a_strangers_own_session_for_another_amount_neither_fails_nor_blocks_the_order(
        router: Router, emulator: Emulator, tmp_path: Path) -> None:
    """A real session made for 1.00, sent with the ref of a 99.00 order: Amazon refuses the finalize, the
    session is still Open. The order stays open and unbound, no event is sent, and the buyer's own session
    then pays (it used to fail the order and answer the buyer's session 409)."""
    ref = router.register(reference="order-99", amount="99.00")["ref"]
    foreign = emulator.create_session(amount="1.00")
    answer = finalize(router, foreign, ref)
    assert answer.status_code == 404 and answer.json()["error"]["code"] == "unknown_session"
    page = router.get(f"{RESULT}?{urlencode({'ref': ref, 'amazonCheckoutSessionId': foreign})}")
    assert page.status_code == 400 and kind(page) == "bad_request"  # remembered: no second Amazon call
    assert [r["operation"] for r in emulator.requests(session_id=foreign)] == [
        "finalizeCheckoutSession", "getCheckoutSession"]
    row, events = stored(tmp_path / "rr.db", ref)
    assert row == {"state": "created", "session": None, "lease": None} and events == []
    genuine = finalize(router, emulator.create_session(amount="99.00"), ref)
    assert genuine.status_code == 200 and genuine.json()["state"] == "completed"
    assert not emulator.charges(foreign)


def test_unpaid_answers_carry_the_error_only(router: Router, emulator: Emulator) -> None:
    ref = router.register(reference="secret-order-43")["ref"]
    answer = finalize(router, emulator.create_session(scenario="declined", ref=ref), ref)
    assert answer.status_code == 402 and set(answer.json()) == {"error"}
    assert "secret-order-43" not in answer.text


def test_readyz_says_not_ready_when_the_database_cannot_be_written(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    db = tmp_path / "ready.db"
    with serve_app(create_app(make_settings(db=f"sqlite:///{db}"), background=False)) as url:
        assert httpx.get(f"{url}/readyz").status_code == 200
        blocker = sqlite3.connect(db, isolation_level=None)
        try:
            blocker.execute("BEGIN IMMEDIATE")  # another process holds the write lock
            answer = httpx.get(f"{url}/readyz", timeout=30)
            assert answer.status_code == 503 and answer.json()["store"] == "not writable"
            assert answer.headers["retry-after"]
            assert httpx.get(f"{url}/healthz").status_code == 200  # alive, just not ready
            blocker.execute("ROLLBACK")
        finally:
            blocker.close()
        assert httpx.get(f"{url}/readyz", timeout=30).status_code == 200
