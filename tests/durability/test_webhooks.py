"""The merchant's endpoint goes down and the router is killed meanwhile: every event still arrives."""

from __future__ import annotations

from collections import Counter

import httpx

from tests.support import wait_until
from tests.support.config import HOST
from tests.support.emulator import Emulator
from tests.support.processes import Launcher
from tests.support.receiver import Receiver
from tests.support.stores import stored_events


def test_events_survive_receiver_outage_and_router_crash(
    launch: Launcher, emulator: Emulator, db_url: str, receiver: Receiver
) -> None:
    receiver.up()
    router = launch(db_url, webhook_url=receiver.url)
    first = router.register(reference="order-1")
    assert router.finalize(first, emulator.create_session()).status_code == 200
    wait_until(lambda: len(receiver.deliveries()) == 1, "the first event to arrive")

    receiver.down()
    for n in (2, 3):  # two payments and a cancel while nobody listens
        ref = router.register(reference=f"order-{n}")
        assert router.finalize(ref, emulator.create_session()).status_code == 200
    canceled = router.register(reference="order-4")
    page = httpx.get(f"{router.url}/amazon-pay/cancel?ref={canceled}", headers={"host": HOST})
    assert page.status_code == 200
    wait_until(lambda: all(e.attempts >= 1 for e in stored_events(db_url)), "a failed attempt at every event")
    router.kill()

    before = stored_events(db_url)
    undelivered = [e for e in before if e.status != "delivered"]
    assert len(before) == 4 and len(undelivered) == 3
    assert all(e.last_error == "ConnectError" for e in undelivered)

    router.start()  # the same config and database: a restart
    receiver.up()  # the same URL, back after the crash
    wait_until(lambda: all(e.status == "delivered" for e in stored_events(db_url)),
               "every event to be delivered", timeout=40)  # the first retry comes 10 s (± 20 %) later

    deliveries = receiver.deliveries()
    assert all(d.signature_ok for d in deliveries)
    assert all(d.event_id == d.event["id"] for d in deliveries)
    # Each event stored before the crash arrived once, under its own id: none lost, none new.
    assert Counter(d.event_id for d in deliveries) == Counter({e.id: 1 for e in before})
    by_id = {e.id: e for e in before}
    assert all(d.event["type"] == by_id[d.event_id].type for d in deliveries)
    assert sorted(d.event["type"] for d in deliveries) == [
        "checkout.canceled", "checkout.completed", "checkout.completed", "checkout.completed"]
