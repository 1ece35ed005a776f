"""A pending authorization outlives a kill -9: after the restart the reconciler settles it."""

from __future__ import annotations

from .conftest import Emulator, Launcher, Receiver, stored_checkout, stored_events, wait_until


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
    wait_until(lambda: len(receiver.received()) == 2, "both webhooks to arrive")
    assert [(d.event_id, d.body["type"]) for d in receiver.received()] == [(e.id, e.type) for e in events]
    assert all(d.signature_ok for d in receiver.received())
