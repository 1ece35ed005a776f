"""kill -9 in the middle of a finalize: the lease runs out, the same key is replayed, one charge."""

from __future__ import annotations

import time

import httpx

from router.checkout.service import idempotency_key
from tests.support.concurrency import in_background
from tests.support.config import LEASE_SECONDS
from tests.support.emulator import Emulator
from tests.support.processes import Launcher, page_kind
from tests.support.stores import stored_checkout, stored_events

from .proxy import ThreadedProxy, via_proxy


def assert_replayed_once(emulator: Emulator, ref: str, session_id: str) -> list[dict[str, object]]:
    """Two finalize calls with the one key derived from ref + session, and a single charge."""
    finalizes = emulator.requests("finalizeCheckoutSession", session_id)
    assert len(finalizes) == 2, finalizes
    assert {f["idempotencyKey"] for f in finalizes} == {idempotency_key(ref, session_id)}
    assert [f["status"] for f in finalizes] == [200, 200]
    assert finalizes[0]["bodySha256"] == finalizes[1]["bodySha256"]  # byte-identical request
    assert len(emulator.charges(session_id)) == 1
    return finalizes


def test_holder_killed_mid_call_loses_its_lease(launch: Launcher, emulator: Emulator, db_url: str) -> None:
    a, b = launch(db_url, name="a"), launch(db_url, name="b")
    ref = a.register()
    # Only A's call is slow (1.5 s), and it ends before A's lease (2 s) does: the orphaned call is
    # answered and saved first, so B's later call with the same key gets the saved response.
    session_id = emulator.create_session(latency_ms=1500, latency_first_n=1)
    a_answer = in_background(lambda: a.buyer_return(ref, session_id))
    emulator.wait_for(lambda: emulator.calls(session_id) >= 1, "A's finalize to reach Amazon")
    a.kill()
    killed_at = time.time()
    held = stored_checkout(db_url, ref)
    assert held.state == "created" and held.lease_owner is not None and held.lease_until is not None

    answer = b.buyer_return(ref, session_id)  # B waits out A's lease, then finishes the job
    assert (answer.status_code, page_kind(answer)) == (200, "success")
    assert time.time() >= held.lease_until  # B did not take over a live lease...
    assert time.time() - killed_at < LEASE_SECONDS + 10  # ...and was not kept waiting much longer
    assert isinstance(a_answer(), httpx.HTTPError)  # A's buyer never got an answer from A

    assert_replayed_once(emulator, ref, session_id)
    stored = stored_checkout(db_url, ref)
    assert stored.state == "completed" and stored.charge_id == emulator.charges(session_id)[0].charge_id
    assert [e.type for e in stored_events(db_url) if e.ref == ref] == ["checkout.completed"]


def test_killed_after_amazon_answered_before_storing(
    launch: Launcher, emulator: Emulator, pg_url: str, pg_proxy: ThreadedProxy
) -> None:
    a = launch(via_proxy(pg_url, pg_proxy), name="a")  # A reaches PostgreSQL through the proxy
    ref = a.register()
    session_id = emulator.create_session(latency_ms=1500, latency_first_n=1)
    in_background(lambda: a.buyer_return(ref, session_id))
    emulator.wait_for(lambda: emulator.calls(session_id) >= 1, "A's finalize to reach Amazon")
    pg_proxy.freeze()  # from here on nothing A writes reaches the database
    emulator.wait_for(lambda: len(emulator.requests("finalizeCheckoutSession", session_id)) == 1,
                      "Amazon to answer A")
    time.sleep(0.3)  # A has Amazon's answer and is stuck storing it
    a.kill()
    pg_proxy.stop()  # the bytes A sent while frozen are dropped with its connections

    lost = stored_checkout(pg_url, ref)
    assert lost.state == "created" and lost.charge_id is None and lost.lease_owner is not None
    assert len(emulator.charges(session_id)) == 1  # charged at Amazon, unknown to us

    b = launch(pg_url, name="b")  # the restart; no buyer comes back: the reconciler must finish it
    emulator.wait_for(lambda: stored_checkout(pg_url, ref).state == "completed", "the reconciler to finish")

    assert_replayed_once(emulator, ref, session_id)
    stored = stored_checkout(pg_url, ref)
    assert stored.charge_id == emulator.charges(session_id)[0].charge_id
    assert [e.type for e in stored_events(pg_url) if e.ref == ref] == ["checkout.completed"]
    assert b.checkout(ref)["state"] == "completed"


def test_holder_outlived_by_its_lease_still_answers(
    launch: Launcher, emulator: Emulator, db_url: str
) -> None:
    """Amazon is slower than the lease: B takes over and finishes; A's buyer still gets the result."""
    a, b = launch(db_url, name="a"), launch(db_url, name="b")
    ref = a.register()
    session_id = emulator.create_session(latency_ms=3500, latency_first_n=1)  # outlasts A's 2 s lease
    a_answer = in_background(lambda: a.buyer_return(ref, session_id))
    emulator.wait_for(lambda: emulator.calls(session_id) >= 1, "A's finalize to reach Amazon")
    b_page = b.buyer_return(ref, session_id)  # after A's lease ran out; B's call is answered at once
    assert (b_page.status_code, page_kind(b_page)) == (200, "success")
    a_page = a_answer()
    assert isinstance(a_page, httpx.Response)
    assert (a_page.status_code, page_kind(a_page)) == (200, "success")  # not an error page: it was paid
    assert_replayed_once(emulator, ref, session_id)
    assert stored_checkout(db_url, ref).state == "completed"
    assert [e.type for e in stored_events(db_url) if e.ref == ref] == ["checkout.completed"]
