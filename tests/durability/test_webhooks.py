"""The merchant's endpoint goes down and the router is killed meanwhile: every event still arrives."""

from __future__ import annotations

import json
from collections import Counter

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tests.support import serve_app

from .conftest import HOST, Emulator, Launcher, Receiver, stored_events, wait_until


def test_events_survive_receiver_outage_and_router_crash(
    launch: Launcher, emulator: Emulator, db_url: str, receiver: Receiver
) -> None:
    receiver.up()
    router = launch(db_url, webhook_url=receiver.url)
    first = router.register(reference="order-1")
    assert router.finalize(first, emulator.create_session()).status_code == 200
    wait_until(lambda: len(receiver.received()) == 1, "the first event to arrive")

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

    deliveries = receiver.received()
    assert all(d.signature_ok for d in deliveries)
    assert all(d.event_id == d.body["id"] for d in deliveries)
    # Each event stored before the crash arrived once, under its own id: none lost, none new.
    assert Counter(d.event_id for d in deliveries) == Counter({e.id: 1 for e in before})
    by_id = {e.id: e for e in before}
    assert all(d.body["type"] == by_id[d.event_id].type for d in deliveries)
    assert sorted(d.body["type"] for d in deliveries) == [
        "checkout.canceled", "checkout.completed", "checkout.completed", "checkout.completed"]


def test_the_request_id_travels_with_the_event_to_another_process(
    launch: Launcher, emulator: Emulator, db_url: str
) -> None:
    """The process that served the finalize has no webhooks; another one, started later on the same
    database, delivers the event with the finalize's request id (stored with the event)."""
    headers: list[dict[str, str]] = []

    async def hook(request: Request) -> Response:
        await request.body()
        headers.append(dict(request.headers))
        return Response(status_code=204)

    with serve_app(Starlette(routes=[Route("/hooks", hook, methods=["POST"])])) as receiver_url:
        writer = launch(db_url, name="writer")  # no webhook_url: its events wait in the outbox
        ref = writer.register(reference="order-cross")
        answer = httpx.post(f"{writer.url}/v1/checkout-sessions/{emulator.create_session()}/finalize",
                            json={"ref": ref}, headers={"x-request-id": "finalize.cross-1"}, timeout=60)
        assert answer.status_code == 200, answer.text
        writer.stop()
        [stored] = stored_events(db_url)
        assert (stored.status, stored.request_id) == ("pending", "finalize.cross-1")

        deliverer = launch(db_url, name="deliverer", webhook_url=f"{receiver_url}/hooks")
        wait_until(lambda: len(headers) == 1, "the event to arrive from the second process", timeout=30)
        assert headers[0]["return-router-request-id"] == "finalize.cross-1"
        assert headers[0]["return-router-event-id"] == stored.id
        wait_until(lambda: "delivered (attempt" in deliverer.log_tail(100_000), "the delivery's log line")
        deliverer.stop()

    # The second process's line about the delivery names the cause and the order (JSON lines: not a TTY).
    lines = [json.loads(line) for line in deliverer.log_tail(100_000).splitlines() if line.startswith("{")]
    [delivered] = [line for line in lines if line["logger"] == "router.webhooks.worker"
                   and "delivered" in line["message"]]
    assert delivered["request_id"] == "finalize.cross-1"
    assert delivered["merchant_reference"] == "order-cross"
    assert delivered["ref"] == f"{ref[:4]}…{ref[-4:]}"
