"""The webhook worker: delivers signed events from the durable outbox.

The orchestrator writes each event into the outbox in the same transaction as the state change; this
module delivers them: at least once, with a stable event id, in order per checkout, each attempt
signed at send time with HMAC-SHA256 (the `t=…,v1=…` convention merchants know from Stripe), retried
with exponential backoff and jitter for days, then parked until an operator redelivers it.

The signature contract is in `signature`, the retry schedule in `schedule`; the worker holds the
I/O: the store, the HTTP client and the clock, all passed in.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import random
import secrets
import time
from collections import deque
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import Any

import httpx

import router.metrics as metrics
from router import logs, tracing
from router.backoff import Backoff
from router.checkout.model import CheckoutError
from router.outbound import async_client
from router.redact import error_text, mask
from router.store.base import OutboxEvent, Store, StoreError
from router.validators import is_http_url
from router.webhooks.schedule import RetrySchedule
from router.webhooks.signature import webhook_headers

log = logging.getLogger("router.webhooks.worker")
REQUEST_ID_HEADER = "Return-Router-Request-Id"  # the request that caused the event; absent for background ones

MAX_ERROR_LENGTH = 120
# Bytes of a merchant's response we read before giving up on reusing the connection: the status is
# all we need, and a huge body must not cost memory.
MAX_RESPONSE_BYTES = 64 * 1024


# --- one attempt ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class AttemptResult:
    ok: bool
    error: str | None = None  # short, no secrets: "HTTP 500", "ConnectError", "ReadTimeout"


def describe_status(status: int) -> AttemptResult:
    """2xx is success; anything else (3xx included: we never follow a redirect) is a failure."""
    if 200 <= status < 300:
        return AttemptResult(ok=True)
    return AttemptResult(ok=False, error=f"HTTP {status}")


def describe_exception(exc: BaseException) -> str:
    """Only the exception's class: messages may carry URLs with credentials or response fragments."""
    if isinstance(exc, TimeoutError):
        return "Timeout"
    return type(exc).__name__[:MAX_ERROR_LENGTH]


async def post_event(
    client: httpx.AsyncClient, url: str, secret: str, event: OutboxEvent, timestamp: int, timeout: float,
    request_id: str | None = None,
) -> AttemptResult:
    """POST the stored body byte for byte; the whole attempt is bounded by `timeout` seconds.

    The status line is the answer: a 2xx whose body is slow or cut off still counts as delivered (the
    merchant stored the event), or it would be sent again and again, then parked."""
    headers = webhook_headers(event, secret, timestamp)
    if request_id is not None:
        headers = {**headers, REQUEST_ID_HEADER: request_id}
    deadline = asyncio.get_running_loop().time() + timeout
    try:
        async with asyncio.timeout_at(deadline) as budget:
            async with client.stream("POST", url, content=event.body, headers=headers,
                                     timeout=timeout, follow_redirects=False) as response:
                budget.reschedule(None)  # answered: the rest only reads the body, within the same deadline
                await _drain(response, deadline)
                return describe_status(response.status_code)
    except Exception as exc:  # any failure to get an answer is a failed attempt, never a crash
        return AttemptResult(ok=False, error=describe_exception(exc))


async def _drain(response: httpx.Response, deadline: float) -> None:
    """Read a small body so the connection can be reused; stop early on a large, slow or broken one
    (closing the response then drops the connection instead)."""
    received = 0
    with contextlib.suppress(TimeoutError, httpx.HTTPError):
        async with asyncio.timeout_at(deadline):
            async for chunk in response.aiter_raw():
                received += len(chunk)
                if received > MAX_RESPONSE_BYTES:
                    return


# --- the worker ----------------------------------------------------------------------------------


class WebhookWorker:
    """Claims due events from the outbox and delivers them to the merchant's URL.

    Several workers (processes, hosts) may share one store: `claim_events` leases each event to one
    owner for `lease_seconds`, so an event is never sent by two workers at once, and a worker that
    dies mid-delivery only delays its events until the lease expires.
    """

    def __init__(
        self,
        store: Store,
        url: str,
        secret: str,
        *,
        client: httpx.AsyncClient | None = None,
        clock: Callable[[], float] = time.time,
        owner: str | None = None,
        batch: int = 20,
        lease_seconds: float = 60,
        timeout: float = 10.0,
        schedule: RetrySchedule = RetrySchedule(),  # frozen, so one shared default is safe
        rng: random.Random | None = None,
    ) -> None:
        if not is_http_url(url):
            raise ValueError("webhook url must be an http:// or https:// URL")
        if not secret:
            raise ValueError("webhook secret must not be empty: webhooks are always signed")
        if batch < 1:
            raise ValueError("batch must be at least 1")
        if not timeout > 0:
            raise ValueError("timeout must be positive")
        if not lease_seconds > timeout:
            # Every claimed event is sent at once, so an attempt ends within `timeout`; the lease must
            # outlast it or another worker could send the same event concurrently.
            raise ValueError("lease_seconds must be longer than timeout")
        self.store = store
        self.url = url
        self._secret = secret
        self._own_client = client is None
        self.client = client or async_client(max_connections=batch, timeout=httpx.Timeout(timeout), trust_env=True)
        self.clock = clock
        self.owner = owner or f"webhooks-{secrets.token_hex(6)}"
        self.batch = batch
        self.lease_seconds = lease_seconds
        self.timeout = timeout
        self.schedule = schedule
        self.rng = rng or random.Random()  # jitter only, not security
        self._wake = asyncio.Event()

    def __repr__(self) -> str:  # the secret and the URL's possible credentials stay out of logs
        return f"<WebhookWorker owner={self.owner} batch={self.batch}>"

    def retarget(self, url: str, secret: str) -> None:
        """A config reload: the next delivery goes to `url`, signed with `secret` (branch ops)."""
        self.url, self._secret = url, secret

    async def aclose(self) -> None:
        if self._own_client:
            await self.client.aclose()

    async def __aenter__(self) -> WebhookWorker:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    def notify(self) -> None:
        """An event was just written: deliver without waiting for the idle interval.

        The id of the request that caused it is stored with the event, so whichever process delivers
        it (this one, another instance, this one after a restart) sends it.
        """
        self._wake.set()

    async def run_once(self) -> int:
        """One round in lockstep (claim due events, deliver them, record each result); returns how many were
        delivered. `run` keeps deliveries in flight instead."""
        events = await self.store.claim_events(self.owner, self.clock(), self.lease_seconds, self.batch)
        if not events:
            return 0
        return sum(await asyncio.gather(*(self._deliver_chain(chain) for chain in _by_ref(events))))

    async def _deliver_chain(self, chain: Sequence[OutboxEvent]) -> int:
        """Deliver one ref's events in order, each recorded before the next is sent, stopping at the first
        failure (order per checkout).

        The store hands out at most the head of each ref's queue, so a chain is normally one event;
        if there are more, the ones after a failure stay leased and come back when the lease ends.
        """
        delivered = 0
        for event in chain:
            if not await (await self._attempt(event)):
                break
            delivered += 1
        return delivered

    async def _attempt(self, event: OutboxEvent) -> asyncio.Task[bool]:
        """POST `event` once; returns the task, begun as the POST ended, that records the result (True:
        delivered and recorded), so that the caller can start its next POST meanwhile. Its log lines carry
        the checkout (ref, order number) and the id of the request that caused it; its span ends with the
        record."""
        span = tracing.delivery_span(event.traceparent, **{"webhook.event_type": event.type})
        try:
            with tracing.current(span), logs.scope(request_id=event.request_id, ref=mask(event.ref),
                                                   merchant_reference=_merchant_reference(event.body)):
                attempt = event.attempts + 1
                result = await post_event(self.client, self.url, self._secret, event, int(self.clock()),
                                          self.timeout, request_id=event.request_id)
                tracing.note(**{"webhook.attempt": attempt, "webhook.delivered": result.ok})
                return asyncio.create_task(self._record(event, attempt, result, span))  # in this context
        except BaseException:  # cancelled mid-POST: nothing to record
            tracing.end(span)
            raise

    async def _record(self, event: OutboxEvent, attempt: int, result: AttemptResult, span: object) -> bool:
        try:
            return await self._record_result(event, attempt, result)
        finally:
            tracing.end(span)

    async def _record_result(self, event: OutboxEvent, attempt: int, result: AttemptResult) -> bool:
        now = self.clock()
        try:
            if result.ok:
                await self.store.event_delivered(event.id, self.owner, now)
                metrics.webhook_delivery("delivered")
                log.info("webhook %s %s ref=%s delivered (attempt %d)", event.id, event.type,
                         mask(event.ref), attempt)
                return True
            delay = self.schedule.next_delay(attempt, self.rng)
            next_at = None if delay is None else now + delay
            await self.store.event_failed(event.id, self.owner, now, result.error or "failed", next_at)
        except (StoreError, CheckoutError) as exc:
            # The lease runs out and the event is sent again: at least once, never lost.
            log.warning("webhook %s %s: could not record attempt %d (%s)", event.id, event.type, attempt,
                        error_text(exc))
            return False
        metrics.webhook_delivery("parked" if next_at is None else "retry")
        if next_at is None:
            log.warning("webhook %s %s ref=%s parked after attempt %d: %s", event.id, event.type,
                        mask(event.ref), attempt, result.error)
        else:
            log.info("webhook %s %s ref=%s attempt %d failed: %s; retry in %.0f s", event.id, event.type,
                     mask(event.ref), attempt, result.error, next_at - now)
        return False

    async def run(self, stop: asyncio.Event, idle_interval: float = 1.0) -> None:
        """Deliver until `stop` is set, keeping up to `batch` POSTs in flight; store or other errors
        are logged and retried, never raised.

        Not in lockstep: events are claimed a step (`refill`) ahead of need and wait, leased, in a queue,
        so that as a POST ends the next one starts at once, while its result is recorded and the next
        step is claimed: neither the store's work nor the slowest delivery of a batch holds the others
        up. Order per checkout stays the store's: it hands out only the head of each ref's queue, and a
        claimed event is pending and leased, so the ref's next one is withheld until this one is
        recorded delivered. On `stop` nothing more is claimed or started and run returns once the
        deliveries under way have ended (each bounded by `timeout`, then recorded) and the queued events'
        leases are given back; cancelled, it cancels them, and their leases run out so the events come
        back (at least once, never lost).
        """
        flight = _Flight(self._attempt, self.batch, self.clock)
        try:
            await self._keep_busy(stop, flight, idle_interval)
            unqueued = flight.unqueue()
            await flight.drain()
            if unqueued:
                await self._give_back()
        finally:
            await flight.abandon()  # only when cancelled: after drain() nothing is left

    async def _give_back(self) -> None:
        """Release this worker's leases (nothing is in flight): the queued events are due again at once."""
        try:
            await self.store.release_leases(self.owner)
        except (StoreError, CheckoutError) as exc:
            log.warning("webhook worker: could not release queued events (%s); their leases run out",
                        error_text(exc))

    @property
    def refill(self) -> int:
        """The claim step while the outbox has a backlog: a tenth of `batch`, claimed once no more than
        this many wait in the queue, so the queue never runs dry while a claim is under way, with one
        claim per step instead of per event."""
        return max(1, self.batch // 10)

    def _room(self, flight: _Flight) -> int:
        """Events to claim now: free POST slots, plus two steps to queue ahead, minus those queued."""
        return self.batch + 2 * self.refill - flight.sending - flight.queued

    async def _keep_busy(self, stop: asyncio.Event, flight: _Flight, idle_interval: float) -> None:
        failures = 0
        while not stop.is_set():
            self._wake.clear()  # a notify() from now on triggers the next claim
            room = self._room(flight)
            ended = flight.ended
            try:
                claimed = await self._claim_into(flight, room)
                failures = 0
            except Exception as exc:
                failures += 1
                claimed = 0
                if isinstance(exc, StoreError | CheckoutError):
                    log.warning("webhook worker: store error %s (retrying)", error_text(exc))
                else:
                    log.exception("webhook worker: unexpected error (retrying)")
            if failures == 0 and claimed >= room:
                await self._wait_for_room(stop, flight, idle_interval)
            else:
                pause = idle_interval if failures == 0 else Backoff(idle_interval, 30.0).delay(failures + 1)
                await self._wait_for_work(stop, flight, ended, pause)

    async def _wait_for_room(self, stop: asyncio.Event, flight: _Flight, timeout: float) -> None:
        """A backlog: claim again once a step's worth is free (a notify() adds nothing to do). A slot is
        free once its POST has ended: the merchant's server and the pool's connection are done with it,
        and the event, leased until its result is recorded, cannot be claimed again meanwhile."""
        await flight.wait(stop, lambda: self._room(flight) >= self.refill, timeout)

    async def _wait_for_work(self, stop: asyncio.Event, flight: _Flight, ended: int, pause: float) -> None:
        """Drained (or failing): claim again on notify(), after `pause`, or once `refill` deliveries
        (or all in flight) ended since the claim: the next events may be ones withheld behind them."""
        def due() -> bool:
            since = flight.ended - ended
            return self._wake.is_set() or since >= self.refill or (since > 0 and not flight)

        await flight.wait(stop, due, pause, self._wake)

    async def _claim_into(self, flight: _Flight, room: int) -> int:
        """Claim up to `room` due events and start (or queue) their deliveries; returns how many were claimed."""
        if room <= 0:
            return 0
        now = self.clock()
        # An event in flight that a claim takes again has outlived its lease (a record that hung): its own
        # delivery records it, even when that ends before the claim's answer is read, so it is sent once.
        in_flight = flight.ids()
        events = await self.store.claim_events(self.owner, now, self.lease_seconds, room)
        # A queued event must start with a whole attempt left on its lease, or another worker could
        # claim it while it is being sent.
        start_by = now + self.lease_seconds - self.timeout
        for chain in _by_ref([e for e in events if e.id not in in_flight]):
            flight.add(chain, start_by)
        return len(events)


Attempt = Callable[[OutboxEvent], Coroutine[object, object, "asyncio.Task[bool]"]]


class _Flight:
    """The deliveries under way and queued: up to `limit` slots, each a task that POSTs one queued event
    after another, and a task per event recording its result; a signal as each POST or record ends.

    As a POST ends, its slot takes the next queued event and starts its POST at once, in the same step,
    while the event before is recorded in a task of its own: a new task per POST would start only after
    the rest of the loop's turn, which under a wave of answers holds every slot idle for milliseconds. A
    chain's next event goes back to the front of the queue once the one before it is recorded delivered.
    """

    def __init__(self, attempt: Attempt, limit: int, clock: Callable[[], float]) -> None:
        self._attempt = attempt  # event → (once its POST ended) the task recording its result
        self._limit = limit
        self._clock = clock
        self._tasks: set[asyncio.Task[Any]] = set()  # the slots and the records
        self._slots = 0
        self._ids: set[str] = set()  # claimed, result not yet recorded (queued ones included)
        self._sending: set[str] = set()  # started, POST not yet ended
        self._queue: deque[tuple[list[OutboxEvent], float]] = deque()  # (chain, start it by this time)
        self.queued = 0  # events in the queue
        self._changed = asyncio.Event()
        self._until: Callable[[], bool] | None = None  # what wait() waits for, checked as each POST ends
        self.ended = 0  # events whose delivery ended (recorded, or dropped after a failure), ever

    def __len__(self) -> int:
        return len(self._ids)

    def ids(self) -> frozenset[str]:
        """The events claimed whose results are not yet recorded, as of now."""
        return frozenset(self._ids)

    @property
    def sending(self) -> int:
        return len(self._sending)

    def add(self, chain: list[OutboxEvent], start_by: float) -> None:
        """Start delivering `chain` when a slot is free, if that is no later than `start_by`."""
        self._ids.update(event.id for event in chain)
        self._queue.append((chain, start_by))
        self.queued += len(chain)
        self._start_slots()

    def _start_slots(self) -> None:
        while self._slots < self._limit and (taken := self._take()) is not None:
            self._slots += 1
            self._track(asyncio.create_task(self._slot(*taken)))

    def _take(self) -> tuple[OutboxEvent, list[OutboxEvent], float] | None:
        """The next queued chain that still has a whole attempt left on its lease: (its first event, the
        rest, start_by), the first counted as sending."""
        while self._queue:
            chain, start_by = self._queue.popleft()
            self.queued -= len(chain)
            if self._clock() > start_by:  # its lease would end mid-attempt: let it run out, claim it anew
                self._ids.difference_update(event.id for event in chain)
                continue
            self._sending.add(chain[0].id)
            return chain[0], chain[1:], start_by
        return None

    async def _slot(self, event: OutboxEvent, rest: list[OutboxEvent], start_by: float) -> None:
        try:
            while True:
                try:
                    record = await self._attempt(event)
                except BaseException:  # cancelled, or a bug: nothing will record them
                    self._finished([event, *rest])
                    raise
                finally:
                    self._sending.discard(event.id)
                self._track(record)
                record.add_done_callback(functools.partial(self._recorded, event=event, rest=rest,
                                                           start_by=start_by))
                self._check()
                taken = self._take()
                if taken is None:
                    return
                event, rest, start_by = taken
        finally:
            self._slots -= 1

    def _track(self, task: asyncio.Task[Any]) -> None:
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            # A bug, not a failed attempt (those are recorded): the lease runs out and it is sent again.
            log.error("webhook worker: a delivery raised %s", type(task.exception()).__name__)

    def _recorded(self, task: asyncio.Task[bool], event: OutboxEvent, rest: list[OutboxEvent],
                  start_by: float) -> None:
        self._finished([event])
        if rest:
            if not task.cancelled() and task.exception() is None and task.result():
                self._queue.appendleft((rest, start_by))  # the ref's next event, before other refs'
                self.queued += len(rest)
                self._start_slots()
            else:  # not delivered: they stay leased and come back, in order, when the lease ends
                self._finished(rest)
        self._check()

    def _finished(self, events: Sequence[OutboxEvent]) -> None:
        """`events` leave the flight: recorded, or left to their leases."""
        self._ids.difference_update(event.id for event in events)
        self.ended += len(events)

    def unqueue(self) -> int:
        """Start nothing more (stopping); returns how many events were queued (they are still leased).
        A chain under way is still finished, as a delivery that has begun."""
        for chain, _ in self._queue:
            self._ids.difference_update(event.id for event in chain)
        self._queue.clear()
        unqueued, self.queued = self.queued, 0
        return unqueued

    def _check(self) -> None:
        if self._until is None or self._until():  # wake the claim loop only when it has something to do
            self._changed.set()

    async def wait(self, stop: asyncio.Event, until: Callable[[], bool], timeout: float,
                   wake: asyncio.Event | None = None) -> None:
        """Until `until()` holds (checked as each POST or delivery ends), `stop` is set or `timeout` seconds
        pass."""
        if stop.is_set() or until():
            return
        self._until = until
        self._changed.clear()
        try:
            await _wait_any(timeout, stop, self._changed, *([wake] if wake else []))
        finally:
            self._until = None

    async def drain(self) -> None:
        """Wait for every delivery under way to end (each is bounded by the worker's timeout)."""
        while self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def abandon(self) -> None:
        """Cancel what is still under way and wait for it to unwind; the events' leases run out."""
        self.unqueue()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def _merchant_reference(body: bytes) -> str | None:
    """data.merchantReference of an event body (ours, but read defensively: None when absent)."""
    try:
        value = json.loads(body)["data"]["merchantReference"]
    except (ValueError, KeyError, TypeError):
        return None
    return value if isinstance(value, str) else None


def _by_ref(events: Sequence[OutboxEvent]) -> list[list[OutboxEvent]]:
    """Group events by ref, keeping the store's order (by seq) within each ref."""
    chains: dict[str, list[OutboxEvent]] = {}
    for event in events:
        chains.setdefault(event.ref, []).append(event)
    return list(chains.values())


async def _wait_any(timeout: float, *events: asyncio.Event) -> bool:
    """Until one of `events` is set or `timeout` seconds pass; whether one was set."""
    waiters = [asyncio.ensure_future(event.wait()) for event in events]
    try:
        done, _ = await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        return bool(done)
    finally:
        for waiter in waiters:
            waiter.cancel()
        await asyncio.gather(*waiters, return_exceptions=True)
