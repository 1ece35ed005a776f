"""The delivery worker against a real receiver over real HTTP and the real stores."""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from collections.abc import Awaitable, Callable

import pytest

from router.store.base import Store, StoreUnavailable
from router.webhooks.admin import list_events, redeliver
from router.webhooks.schedule import RetrySchedule
from router.webhooks.worker import WebhookWorker
from tests.support.receiver import Receiver
from tests.support.stores import StoreWrapper
from tests.webhooks.outbox import SECRET, Clock, StoreFactory, add_event, new_ref, serve_on_port

NO_JITTER = RetrySchedule(jitter=0)


def make_worker(store: Store, url: str, clock: Clock, **kwargs: object) -> WebhookWorker:
    kwargs.setdefault("schedule", NO_JITTER)
    kwargs.setdefault("timeout", 5.0)
    return WebhookWorker(store, url, SECRET, clock=clock, rng=random.Random(0), **kwargs)  # type: ignore[arg-type]


async def eventually(check: Callable[[], Awaitable[bool] | bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if isinstance(result, Awaitable):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)


async def test_delivered_once_on_2xx(store: Store, receiver: Receiver, clock: Clock) -> None:
    event = await add_event(store, clock(), "completed")
    async with make_worker(store, receiver.url, clock) as worker:
        assert await worker.run_once() == 1
        assert await worker.run_once() == 0
        clock.advance(86400)
        assert await worker.run_once() == 0

    assert len(receiver.received) == 1
    got = receiver.received[0]
    assert got.body == event.body  # byte for byte as stored
    assert got.signature_ok
    assert got.event_id == event.id == json.loads(got.body)["id"]
    assert got.event_type == "checkout.completed"
    assert got.headers["content-type"] == "application/json"
    assert got.headers["user-agent"].startswith("return-router/")
    assert got.headers["return-router-signature"].startswith(f"t={int(clock.now - 86400)},v1=")
    stored = await store.get_event(event.id)
    assert stored is not None and stored.status == "delivered" and stored.attempts == 1
    assert stored.delivered_at == pytest.approx(clock.now - 86400)


async def test_receiver_down_then_back(store: Store, clock: Clock) -> None:
    from tests.support import free_port

    port = free_port()
    url = f"http://127.0.0.1:{port}/hooks"
    event = await add_event(store, clock(), "pending")
    async with make_worker(store, url, clock) as worker:
        assert await worker.run_once() == 0  # connection refused
        stored = await store.get_event(event.id)
        assert stored is not None and stored.status == "pending" and stored.attempts == 1
        assert stored.last_error == "ConnectError"
        assert stored.next_attempt_at == pytest.approx(clock.now + 10)

        # Not due yet: nothing is sent, no attempt is counted.
        clock.advance(9)
        assert await worker.run_once() == 0
        assert (await store.get_event(event.id)).attempts == 1  # type: ignore[union-attr]

        clock.advance(1)
        assert await worker.run_once() == 0
        stored = await store.get_event(event.id)
        assert stored is not None and stored.attempts == 2
        assert stored.next_attempt_at == pytest.approx(clock.now + 30)  # backoff grows

        receiver = Receiver(clock, SECRET, port=port)
        with serve_on_port(receiver.app(), port):
            assert await worker.run_once() == 0  # still waiting for its time
            assert receiver.received == []
            clock.advance(30)
            assert await worker.run_once() == 1

    assert [r.event_id for r in receiver.received] == [event.id]  # the same id, never a new one
    assert receiver.received[0].signature_ok
    assert receiver.received[0].body == event.body
    stored = await store.get_event(event.id)
    assert stored is not None and stored.status == "delivered" and stored.attempts == 3


@pytest.mark.parametrize(("status", "error"), [(500, "HTTP 500"), (404, "HTTP 404"), (302, "HTTP 302")])
async def test_non_2xx_is_a_failure(
    store: Store, receiver: Receiver, clock: Clock, status: int, error: str
) -> None:
    receiver.status = status
    event = await add_event(store, clock(), "declined")
    async with make_worker(store, receiver.url, clock) as worker:
        assert await worker.run_once() == 0
    stored = await store.get_event(event.id)
    assert stored is not None and stored.status == "pending" and stored.last_error == error
    assert len(receiver.received) == 1


async def test_slow_receiver_times_out(store: Store, receiver: Receiver, clock: Clock) -> None:
    receiver.delay = 1.5
    event = await add_event(store, clock(), "completed")
    async with make_worker(store, receiver.url, clock, timeout=0.3) as worker:
        started = time.monotonic()
        assert await worker.run_once() == 0
        elapsed = time.monotonic() - started
    assert elapsed < 1.2  # bounded by the timeout, not by the receiver
    stored = await store.get_event(event.id)
    assert stored is not None and stored.last_error in {"ReadTimeout", "Timeout"}
    assert stored.next_attempt_at == pytest.approx(clock.now + 10)


async def test_parked_after_max_attempts_then_redelivered(
    store: Store, receiver: Receiver, clock: Clock
) -> None:
    receiver.status = 503
    schedule = RetrySchedule(delays=(10, 60), max_attempts=3, jitter=0)
    event = await add_event(store, clock(), "failed")
    async with make_worker(store, receiver.url, clock, schedule=schedule) as worker:
        for _ in range(3):
            assert await worker.run_once() == 0
            clock.advance(3600)
        assert len(receiver.received) == 3
        stored = await store.get_event(event.id)
        assert stored is not None and stored.status == "failed" and stored.attempts == 3
        assert stored.last_error == "HTTP 503"

        clock.advance(30 * 86400)  # parked: never retried by itself, never dropped
        assert await worker.run_once() == 0
        assert len(receiver.received) == 3

        rows = await list_events(store, failed_only=True)
        assert [r["id"] for r in rows] == [event.id]
        assert rows[0]["status"] == "failed" and rows[0]["last_error"] == "HTTP 503"
        assert rows[0]["ref"] != stored.ref and "…" in rows[0]["ref"]

        receiver.status = 200
        assert await redeliver(store, [event.id], clock()) == 1
        assert await list_events(store, failed_only=True) == []
        assert await worker.run_once() == 1

    assert receiver.ids() == [event.id] * 4
    assert receiver.received[-1].signature_ok and receiver.received[-1].status == 200
    stored = await store.get_event(event.id)
    assert stored is not None and stored.status == "delivered"


async def test_redeliver_all_failed(store: Store, receiver: Receiver, clock: Clock) -> None:
    receiver.status = 500
    schedule = RetrySchedule(max_attempts=1)
    events = [await add_event(store, clock(), "expired") for _ in range(3)]
    async with make_worker(store, receiver.url, clock, schedule=schedule) as worker:
        assert await worker.run_once() == 0
        assert {r["id"] for r in await list_events(store, failed_only=True)} == {e.id for e in events}
        assert await redeliver(store, [], clock()) == 0
        receiver.status = 200
        assert await redeliver(store, None, clock()) == 3
        assert await worker.run_once() == 3
    assert sorted(receiver.ids(ok_only=True)) == sorted(e.id for e in events)
    rows = await list_events(store, failed_only=False)
    assert {r["status"] for r in rows} == {"delivered"}


async def test_redeliver_rejects_malformed_ids(store: Store, clock: Clock) -> None:
    with pytest.raises(ValueError, match="not an event id"):
        await redeliver(store, ["evt_ok", "bad id; drop table"], clock())
    with pytest.raises(TypeError):
        await redeliver(store, "evt_1", clock())


async def test_in_order_per_checkout(store: Store, receiver: Receiver, clock: Clock) -> None:
    ref = new_ref()
    first = await add_event(store, clock(), "pending", ref=ref)
    second = await add_event(store, clock(), "authorized", ref=ref)
    other = await add_event(store, clock(), "completed")  # another checkout is not held up
    receiver.fail_times[first.id] = 3
    async with make_worker(store, receiver.url, clock) as worker:
        assert await worker.run_once() == 1  # `other` only
        assert receiver.ids() == [first.id, other.id] or receiver.ids() == [other.id, first.id]
        for _ in range(6):
            clock.advance(3600)
            await worker.run_once()
    ids = [i for i in receiver.ids() if i in (first.id, second.id)]
    assert ids == [first.id] * 4 + [second.id]  # the second only after the first got through
    assert receiver.ids(ok_only=True).count(other.id) == 1
    assert [json.loads(r.body)["type"] for r in receiver.received if r.event_id == second.id] == [
        "checkout.authorized"
    ]


async def test_deliveries_run_concurrently_and_bounded(
    store: Store, receiver: Receiver, clock: Clock
) -> None:
    receiver.delay = 0.2
    events = [await add_event(store, clock(), "completed") for _ in range(12)]
    async with make_worker(store, receiver.url, clock, batch=5) as worker:
        assert await worker.run_once() == 5
        assert await worker.run_once() == 5
        assert await worker.run_once() == 2
    assert sorted(receiver.ids()) == sorted(e.id for e in events)
    assert 2 <= receiver.max_inflight <= 5


async def test_two_workers_never_send_one_event_at_once(
    store_factory: StoreFactory, receiver: Receiver, clock: Clock
) -> None:
    first, second = store_factory(), store_factory()  # two processes on one database
    await first.open()
    await second.open()
    receiver.delay, receiver.random_delay = 0.03, True  # the workers' claims interleave at random
    events = [await add_event(first, clock(), "completed") for _ in range(60)]
    workers = [make_worker(first, receiver.url, clock, batch=3, owner="worker-a"),
               make_worker(second, receiver.url, clock, batch=5, owner="worker-b")]
    counts = {"worker-a": 0, "worker-b": 0}

    async def drain(worker: WebhookWorker) -> None:
        while len(receiver.ids()) < len(events):
            counts[worker.owner] += await worker.run_once()
            await asyncio.sleep(0)

    await asyncio.wait_for(asyncio.gather(*(drain(w) for w in workers)), 30)
    for worker in workers:
        await worker.aclose()
    assert sorted(receiver.ids()) == sorted(e.id for e in events)  # each exactly once
    assert receiver.max_inflight_per_event == 1
    assert counts["worker-a"] + counts["worker-b"] == len(events)
    assert counts["worker-a"] > 0 and counts["worker-b"] > 0  # they really shared the outbox


async def test_dead_worker_lease_expires_and_another_delivers(
    store_factory: StoreFactory, receiver: Receiver, clock: Clock
) -> None:
    store_a, store_b = store_factory(), store_factory()
    await store_a.open()
    await store_b.open()
    event = await add_event(store_a, clock(), "completed")
    receiver.delay = 1.0  # the first worker is stuck in its request when it dies
    doomed = make_worker(store_a, receiver.url, clock, owner="worker-a", lease_seconds=60)
    task = asyncio.create_task(doomed.run_once())
    await eventually(lambda: sum(receiver.inflight.values()) == 1)
    task.cancel()  # the process dies with the event claimed
    with pytest.raises(asyncio.CancelledError):
        await task
    await doomed.aclose()
    receiver.delay = 0.0

    async with make_worker(store_b, receiver.url, clock, owner="worker-b", lease_seconds=60) as rescuer:
        assert await rescuer.run_once() == 0  # still leased to the dead worker
        clock.advance(59)
        assert await rescuer.run_once() == 0
        clock.advance(2)
        assert await rescuer.run_once() == 1
    await eventually(lambda: len(receiver.received) == 2)  # the dead worker's request ends too
    assert receiver.ids(ok_only=True).count(event.id) >= 1
    assert all(r.event_id == event.id for r in receiver.received)
    stored = await store_b.get_event(event.id)
    assert stored is not None and stored.status == "delivered"


async def test_run_wakes_on_notify_and_stops(store: Store, receiver: Receiver, clock: Clock) -> None:
    stop = asyncio.Event()
    async with make_worker(store, receiver.url, clock) as worker:
        task = asyncio.create_task(worker.run(stop, idle_interval=60))
        await asyncio.sleep(0.1)  # the loop found nothing and is idle for a minute
        event = await add_event(store, clock(), "canceled")
        worker.notify()
        await eventually(lambda: receiver.ids() == [event.id], timeout=5)
        stop.set()
        await asyncio.wait_for(task, 5)
    assert receiver.received[0].signature_ok


class FlakyStore(StoreWrapper):
    """The real store behind a switch that makes claims fail like an unreachable database."""

    def __init__(self, inner: Store, failures: int) -> None:
        super().__init__(inner)
        self.failures = failures

    async def claim_events(self, *args: object, **kwargs: object) -> object:
        if self.failures > 0:
            self.failures -= 1
            raise StoreUnavailable("database is locked")
        return await self.inner.claim_events(*args, **kwargs)  # type: ignore[arg-type]


async def test_run_survives_store_errors(
    store: Store, receiver: Receiver, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    flaky = FlakyStore(store, failures=2)
    event = await add_event(store, clock(), "completed")
    stop = asyncio.Event()
    async with make_worker(flaky, receiver.url, clock) as worker:  # type: ignore[arg-type]
        with caplog.at_level(logging.WARNING, logger="router.webhooks.worker"):
            task = asyncio.create_task(worker.run(stop, idle_interval=0.05))
            await eventually(lambda: receiver.ids() == [event.id], timeout=10)
            stop.set()
            await asyncio.wait_for(task, 5)
    assert flaky.failures == 0
    assert "webhook worker: store error StoreUnavailable: database is locked (retrying)" in caplog.messages  # the cause


async def test_logs_name_the_event_but_never_the_secret_or_body(
    store: Store, receiver: Receiver, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    ok = await add_event(store, clock(), "completed")
    bad = await add_event(store, clock(), "declined")
    receiver.fail_times[bad.id] = 1
    async with make_worker(store, receiver.url, clock) as worker:
        with caplog.at_level(logging.DEBUG, logger="router.webhooks.worker"):
            await worker.run_once()
    text = caplog.text
    assert ok.id in text and bad.id in text and "checkout.declined" in text and "HTTP 500" in text
    assert SECRET not in text
    assert ok.body.decode() not in text and bad.body.decode() not in text
    assert "merchantReference" not in text and "order-1" not in text
    assert SECRET not in repr(worker)


def test_worker_rejects_bad_configuration(clock: Clock) -> None:
    store: Store = object()  # type: ignore[assignment]
    with pytest.raises(ValueError, match="secret"):
        WebhookWorker(store, "https://merchant.example/hooks", "")
    with pytest.raises(ValueError, match="url"):
        WebhookWorker(store, "ftp://merchant.example/hooks", SECRET)
    with pytest.raises(ValueError, match="lease_seconds"):
        WebhookWorker(store, "https://merchant.example/hooks", SECRET, lease_seconds=5, timeout=10)
    with pytest.raises(ValueError, match="batch"):
        WebhookWorker(store, "https://merchant.example/hooks", SECRET, batch=0)

