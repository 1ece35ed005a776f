"""A pending authorization outlives a kill -9: after the restart the reconciler settles it."""

from __future__ import annotations

import time

import httpx

from router.checkout.probes import LOOK_INTERVAL
from tests.support import wait_until
from tests.support.concurrency import in_background
from tests.support.emulator import Emulator
from tests.support.processes import Launcher
from tests.support.receiver import Receiver
from tests.support.stores import stored_checkout, stored_events


def test_pending_authorization_survives_restart(
    launch: Launcher, emulator: Emulator, db_url: str, receiver: Receiver
) -> None:
    receiver.up()
    router = launch(db_url, webhook_url=receiver.url)
    ref = router.register(pending=True)
    # Amazon settles the charge on the 4th getCharge: more polls than the first instance lives for.
    session_id = emulator.create_session(scenario="pending-then-authorized", pending_polls=3)
    answer = router.finalize(ref, session_id)
    assert answer.status_code == 202 and answer.json()["state"] == "pending"
    # Let checkout.pending go out first: a worker killed while holding an event's delivery lease leaves
    # it to the next worker only once that lease expires (tests/durability/test_webhooks.py covers that).
    wait_until(lambda: len(receiver.deliveries()) == 1, "the pending webhook to arrive")
    # …and its delivery stored: killed before that, the router would send it again after the restart.
    wait_until(lambda: [e.status for e in stored_events(db_url)] == ["delivered"], "the delivery to be stored")
    router.kill()

    assert stored_checkout(db_url, ref).state == "pending"
    (charge,) = emulator.charges(session_id)
    assert charge.state == "AuthorizationInitiated"
    polls_before = len(emulator.requests("getCharge"))

    router.start()  # nobody calls in: only the reconciler can move it on
    wait_until(lambda: stored_checkout(db_url, ref).state == "authorized", "the reconciler to settle it")
    assert len(emulator.requests("getCharge")) > polls_before
    assert len(emulator.requests("finalizeCheckoutSession", session_id)) == 1
    assert stored_checkout(db_url, ref).charge_id == charge.charge_id

    events = [e for e in stored_events(db_url) if e.ref == ref]
    assert [e.type for e in events] == ["checkout.pending", "checkout.authorized"]
    wait_until(lambda: len(receiver.deliveries()) == 2, "both webhooks to arrive")
    assert [(d.event_id, d.event["type"]) for d in receiver.deliveries()] == [(e.id, e.type) for e in events]
    assert all(d.signature_ok for d in receiver.deliveries())


def test_pending_refresh_outlived_by_its_lease(launch: Launcher, emulator: Emulator, sqlite_url: str) -> None:
    """A slow getCharge outlives the refresher's lease; another refresher goes ahead: no 500 for anyone."""
    a = launch(sqlite_url, name="a", interval=60)  # the reconcilers stay out of the way: apps poll
    b = launch(sqlite_url, name="b", interval=60)
    ref = a.register(pending=True)
    # Amazon's first two calls (the finalize and A's getCharge) take 3.5 s: more than the 2 s lease.
    session_id = emulator.create_session(scenario="pending-then-authorized", pending_polls=1,
                                         latency_ms=3500, latency_first_n=2)
    assert a.finalize(ref, session_id).status_code == 202
    read = f"/v1/checkout-sessions/{session_id}?ref={ref}"
    a_read = in_background(lambda: httpx.get(a.url + read, timeout=30))
    emulator.wait_for(lambda: emulator.calls(session_id) >= 2, "A's getCharge to reach Amazon")
    lease_until = stored_checkout(sqlite_url, ref).lease_until
    assert lease_until is not None
    time.sleep(max(0.0, lease_until - time.time()) + 0.3)
    b_read = httpx.get(b.url + read, timeout=30)  # takes the expired lease, polls, releases it
    assert b_read.status_code == 202
    a_answer = a_read()
    assert isinstance(a_answer, httpx.Response)
    assert a_answer.status_code in (200, 202), a_answer.text  # what is stored; never a 500
    time.sleep(LOOK_INTERVAL)  # a poll sooner than the app is told to make gets B's stored state
    final = httpx.get(b.url + read, timeout=30)
    assert (final.status_code, final.json()["state"]) == (200, "authorized")
