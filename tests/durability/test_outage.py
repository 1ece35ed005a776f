"""The database goes away for a moment: clear 503s (never a 500 or a traceback), then recovery."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator

import httpx

from tests.support import http_client, wait_until
from tests.support.concurrency import in_background
from tests.support.config import AUTH, HOST
from tests.support.emulator import Emulator
from tests.support.processes import Launcher, RouterProcess, page_kind, return_path
from tests.support.stores import stored_checkout, stored_events

from .proxy import ThreadedProxy, via_proxy

NEW_CHECKOUT = {"merchantReference": "order-1", "chargeAmount": {"amount": "14.00", "currencyCode": "USD"},
                "paymentIntent": "AuthorizeWithCapture"}


def assert_unavailable(router: RouterProcess, ref: str, session_id: str) -> None:
    """Every way in answers a clear, retryable 503."""
    page = router.buyer_return(ref, session_id)
    assert page.status_code == 503 and page_kind(page) == "unavailable", page.text[-500:]
    assert page.headers["content-type"].startswith("text/html")
    assert "Traceback" not in page.text
    api = router.finalize(ref, session_id)
    assert api.status_code == 503 and api.headers["retry-after"]
    assert api.json()["error"]["code"] == "unavailable"
    created = httpx.post(f"{router.url}/v1/checkouts", json=NEW_CHECKOUT, headers=AUTH, timeout=30)
    assert created.status_code == 503 and created.json()["error"]["code"] == "unavailable"
    assert httpx.get(f"{router.url}/healthz").status_code == 200  # the process itself is fine


def assert_recovers(
    router: RouterProcess, emulator: Emulator, db_url: str, ref: str, session_id: str
) -> None:
    page = router.buyer_return(ref, session_id)
    assert (page.status_code, page_kind(page)) == (200, "success")
    assert len(emulator.requests("finalizeCheckoutSession", session_id)) == 1
    assert len(emulator.charges(session_id)) == 1
    stored = stored_checkout(db_url, ref)
    assert stored.state == "completed" and stored.lease_owner is None
    assert [e.type for e in stored_events(db_url) if e.ref == ref] == ["checkout.completed"]


def test_postgres_outage(launch: Launcher, emulator: Emulator, pg_url: str, pg_proxy: ThreadedProxy) -> None:
    router = launch(via_proxy(pg_url, pg_proxy))
    ref = router.register()
    session_id = emulator.create_session()
    pg_proxy.stop()  # the server is gone: open connections cut, new ones refused
    assert_unavailable(router, ref, session_id)
    assert httpx.get(f"{router.url}/readyz").status_code == 503
    assert emulator.requests("finalizeCheckoutSession", session_id) == []  # nothing reached Amazon
    assert stored_checkout(pg_url, ref).checkout_session_id is None  # nothing half-written either

    pg_proxy.start()
    wait_until(lambda: http_client().get(f"{router.url}/readyz").status_code == 200, "the store to recover")
    assert_recovers(router, emulator, pg_url, ref, session_id)


def test_the_error_url_of_a_paid_order_never_says_unpaid_while_the_store_is_down(
    launch: Launcher, emulator: Emulator, pg_url: str, pg_proxy: ThreadedProxy
) -> None:
    """Amazon's error URL names the order; with the store unreachable the router cannot know it is paid,
    so it says "briefly unavailable" (and refreshes), never "no payment was made"."""
    router = launch(via_proxy(pg_url, pg_proxy))
    ref = router.register()
    assert page_kind(router.buyer_return(ref, emulator.create_session())) == "success"
    pg_proxy.stop()
    with httpx.Client(timeout=30, headers={"host": HOST}) as client:
        named = client.get(f"{router.url}/amazon-pay/error?ref={ref}")
        assert (named.status_code, page_kind(named)) == (503, "unavailable"), named.text[-500:]
        assert "no payment was made" not in named.text and named.headers["retry-after"]
        assert "shop.example.com/cart" not in named.text  # as when Amazon is unreachable: no "back to the shop"
        plain = client.get(f"{router.url}/amazon-pay/error")  # no order named: nothing to look up
        assert (plain.status_code, page_kind(plain)) == (200, "amazon_error")
        pg_proxy.start()
        wait_until(lambda: http_client().get(f"{router.url}/readyz").status_code == 200, "the store to recover")
        again = client.get(f"{router.url}/amazon-pay/error?ref={ref}")
    assert (again.status_code, page_kind(again)) == (200, "success")


def test_postgres_lost_while_storing_amazons_answer(
    launch: Launcher, emulator: Emulator, pg_url: str, pg_proxy: ThreadedProxy
) -> None:
    router = launch(via_proxy(pg_url, pg_proxy))
    ref = router.register()
    session_id = emulator.create_session(latency_ms=1000, latency_first_n=1)
    with httpx.Client(timeout=60) as client:
        url = router.url + return_path(ref, session_id)
        answer = in_background(lambda: client.get(url, headers={"host": HOST}))
        emulator.wait_for(lambda: emulator.calls(session_id) >= 1, "the finalize to reach Amazon")
        pg_proxy.stop()  # the database goes away while Amazon is answering
        page = answer()
    assert isinstance(page, httpx.Response)
    assert page.status_code == 503 and page_kind(page) == "unavailable"
    assert len(emulator.charges(session_id)) == 1  # charged at Amazon; our write did not happen
    pg_proxy.start()
    # Nobody needs to come back: the reconciler finishes with the same key once the lease runs out.
    wait_until(lambda: stored_checkout(pg_url, ref).state == "completed", "the reconciler to finish")
    finalizes = emulator.requests("finalizeCheckoutSession", session_id)
    assert len(finalizes) == 2 and len({f["idempotencyKey"] for f in finalizes}) == 1
    assert len(emulator.charges(session_id)) == 1
    assert [e.type for e in stored_events(pg_url) if e.ref == ref] == ["checkout.completed"]
    again = router.buyer_return(ref, session_id)
    assert (again.status_code, page_kind(again)) == (200, "success")


@contextlib.contextmanager
def exclusive_lock(path: str) -> Iterator[None]:
    """Another connection holds SQLite's write lock (past the router's busy timeout)."""
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("BEGIN EXCLUSIVE")
        yield
        conn.execute("ROLLBACK")
    finally:
        conn.close()


def test_sqlite_locked(launch: Launcher, emulator: Emulator, sqlite_url: str) -> None:
    router = launch(sqlite_url + "?busy_timeout=0.5")
    ref = router.register()
    session_id = emulator.create_session()
    with exclusive_lock(sqlite_url.removeprefix("sqlite:///")):
        assert_unavailable(router, ref, session_id)
        assert emulator.requests("finalizeCheckoutSession", session_id) == []
    assert stored_checkout(sqlite_url, ref).checkout_session_id is None
    assert_recovers(router, emulator, sqlite_url, ref, session_id)
