"""Signed webhooks delivered from the durable outbox.

The orchestrator writes each event into the outbox in the same transaction as the state change; this
module delivers them: at least once, with a stable event id, in order per checkout, each attempt
signed at send time with HMAC-SHA256 (the `t=…,v1=…` convention merchants know from Stripe), retried
with exponential backoff and jitter for days, then parked until an operator redelivers it.

Pure parts (signatures, the retry schedule, headers, error strings) are plain functions; the worker
holds the I/O: the store, the HTTP client and the clock, all passed in.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import random
import re
import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from typing import Any

import httpx

from .outbound import async_client
from .redact import mask
from .store.base import OutboxEvent, Store, StoreError

log = logging.getLogger("router.webhooks")

SIGNATURE_HEADER = "Return-Router-Signature"
EVENT_ID_HEADER = "Return-Router-Event-Id"
EVENT_TYPE_HEADER = "Return-Router-Event-Type"
MAX_ERROR_LENGTH = 120
# Bytes of a merchant's response we read before giving up on reusing the connection: the status is
# all we need, and a huge body must not cost memory.
MAX_RESPONSE_BYTES = 64 * 1024
EVENT_ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,100}$")


def _version() -> str:
    try:
        return metadata.version("return-router")
    except metadata.PackageNotFoundError:  # running from a source tree that is not installed
        return "0+unknown"


USER_AGENT = f"return-router/{_version()}"


# --- signatures ----------------------------------------------------------------------------------


def _digest(secret: str, body: bytes, timestamp: int) -> str:
    message = str(timestamp).encode() + b"." + body
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def sign_payload(secret: str, body: bytes, timestamp: int) -> str:
    """The `Return-Router-Signature` value: `t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "t.body")>`."""
    if not secret:
        raise ValueError("webhook secret must not be empty")
    if isinstance(timestamp, bool) or not isinstance(timestamp, int) or timestamp < 0:
        raise ValueError("timestamp must be a non-negative integer (Unix seconds)")
    return f"t={timestamp},v1={_digest(secret, body, timestamp)}"


def parse_signature_header(header: str) -> tuple[int, list[str]] | None:
    """(timestamp, [v1 signatures]) from a header, or None when it is malformed.

    Unknown schemes (v0=…, v2=…) are ignored so the format can grow; exactly one `t` is required.
    """
    timestamp: int | None = None
    signatures: list[str] = []
    for part in header.split(","):
        key, sep, value = part.strip().partition("=")
        if not sep or not value:
            return None
        if key == "t":
            if timestamp is not None or not value.isascii() or not value.isdigit():
                return None
            timestamp = int(value)
        elif key == "v1":
            signatures.append(value)
    if timestamp is None or not signatures:
        return None
    return timestamp, signatures


def verify_signature(
    secret: str, body: bytes, header: str, *, tolerance: int = 300, now: float | None = None
) -> bool:
    """True when one of the header's v1 signatures matches and its timestamp is within `tolerance`.

    Several v1 values are accepted so a sender can sign with an old and a new secret while the
    receiver rotates. Every comparison is constant-time; anything malformed fails closed.
    """
    if not secret or not isinstance(header, str):
        return False
    parsed = parse_signature_header(header)
    if parsed is None:
        return False
    timestamp, candidates = parsed
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance:
        return False
    expected = _digest(secret, body, timestamp).encode()
    matched = False
    for candidate in candidates:  # no early exit: the time taken does not tell which one matched
        matched |= hmac.compare_digest(expected, candidate.encode("ascii", "replace"))
    return matched


def webhook_headers(event: OutboxEvent, secret: str, timestamp: int) -> dict[str, str]:
    """Every header of one delivery attempt of `event`, signed at `timestamp`."""
    return {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        EVENT_ID_HEADER: event.id,
        EVENT_TYPE_HEADER: event.type,
        SIGNATURE_HEADER: sign_payload(secret, event.body, timestamp),
    }


# --- retry schedule ------------------------------------------------------------------------------

DEFAULT_DELAYS = (10.0, 30.0, 120.0, 600.0, 1800.0, 3600.0, 7200.0, 14400.0, 28800.0)


@dataclass(frozen=True)
class RetrySchedule:
    """When to try again after a failed attempt.

    `delays[i]` follows the (i+1)-th failed attempt; past the end the last delay repeats. Each delay
    is spread by ±`jitter` (a fraction) so that events failing together do not retry in lockstep.
    With the defaults, 16 attempts span about 2.7 days.
    """

    delays: tuple[float, ...] = DEFAULT_DELAYS
    max_attempts: int = 16
    jitter: float = 0.2

    def __post_init__(self) -> None:
        if not self.delays or any(not d > 0 for d in self.delays):
            raise ValueError("RetrySchedule.delays must be a non-empty sequence of positive seconds")
        if self.max_attempts < 1:
            raise ValueError("RetrySchedule.max_attempts must be at least 1")
        if not 0 <= self.jitter < 1:
            raise ValueError("RetrySchedule.jitter must be a fraction in [0, 1)")

    def next_delay(self, attempt: int, rng: random.Random) -> float | None:
        """Seconds to wait after failed attempt number `attempt` (1-based); None: park the event."""
        if attempt < 1:
            raise ValueError("attempt numbers start at 1")
        if attempt >= self.max_attempts:
            return None
        base = self.delays[min(attempt, len(self.delays)) - 1]
        return base * rng.uniform(1 - self.jitter, 1 + self.jitter)

    def total_span(self) -> float:
        """Seconds between the first and the last attempt, without jitter."""
        return sum(self.delays[min(a, len(self.delays)) - 1] for a in range(1, self.max_attempts))


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
    client: httpx.AsyncClient, url: str, secret: str, event: OutboxEvent, timestamp: int, timeout: float
) -> AttemptResult:
    """POST the stored body byte for byte; the whole attempt is bounded by `timeout` seconds."""
    headers = webhook_headers(event, secret, timestamp)
    try:
        async with asyncio.timeout(timeout):
            async with client.stream("POST", url, content=event.body, headers=headers,
                                     timeout=timeout, follow_redirects=False) as response:
                await _drain(response)
                return describe_status(response.status_code)
    except Exception as exc:  # any failure to get an answer is a failed attempt, never a crash
        return AttemptResult(ok=False, error=describe_exception(exc))


async def _drain(response: httpx.Response) -> None:
    """Read a small body so the connection can be reused; stop early on a large one."""
    received = 0
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
        if not re.match(r"^https?://[^/\s]+", url):
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

    async def aclose(self) -> None:
        if self._own_client:
            await self.client.aclose()

    async def __aenter__(self) -> WebhookWorker:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    def notify(self) -> None:
        """An event was just written: deliver without waiting for the idle interval."""
        self._wake.set()

    async def run_once(self) -> int:
        """Claim due events, deliver them, record each result; returns how many were delivered."""
        return (await self._cycle())[1]

    async def _cycle(self) -> tuple[int, int]:
        """(claimed, delivered) for one claim-and-deliver round."""
        events = await self.store.claim_events(self.owner, self.clock(), self.lease_seconds, self.batch)
        if not events:
            return 0, 0
        chains = await asyncio.gather(*(self._deliver_chain(chain) for chain in _by_ref(events)))
        return len(events), sum(chains)

    async def _deliver_chain(self, chain: Sequence[OutboxEvent]) -> int:
        """Deliver one ref's events in order, stopping at the first failure (order per checkout).

        The store hands out at most the head of each ref's queue, so a chain is normally one event;
        if there are more, the ones after a failure stay leased and come back when the lease ends.
        """
        delivered = 0
        for event in chain:
            if not await self._deliver(event):
                break
            delivered += 1
        return delivered

    async def _deliver(self, event: OutboxEvent) -> bool:
        attempt = event.attempts + 1
        result = await post_event(self.client, self.url, self._secret, event, int(self.clock()), self.timeout)
        now = self.clock()
        try:
            if result.ok:
                await self.store.event_delivered(event.id, self.owner, now)
                log.info("webhook %s %s ref=%s delivered (attempt %d)", event.id, event.type,
                         mask(event.ref), attempt)
                return True
            delay = self.schedule.next_delay(attempt, self.rng)
            next_at = None if delay is None else now + delay
            await self.store.event_failed(event.id, self.owner, now, result.error or "failed", next_at)
        except StoreError as exc:
            # The lease runs out and the event is sent again: at least once, never lost.
            log.warning("webhook %s %s: could not record attempt %d (%s)", event.id, event.type, attempt,
                        type(exc).__name__)
            return False
        if next_at is None:
            log.warning("webhook %s %s ref=%s parked after attempt %d: %s", event.id, event.type,
                        mask(event.ref), attempt, result.error)
        else:
            log.info("webhook %s %s ref=%s attempt %d failed: %s; retry in %.0f s", event.id, event.type,
                     mask(event.ref), attempt, result.error, next_at - now)
        return False

    async def run(self, stop: asyncio.Event, idle_interval: float = 1.0) -> None:
        """Deliver until `stop` is set; store or other errors are logged and retried, never raised."""
        failures = 0
        while not stop.is_set():
            self._wake.clear()  # a notify() during this round triggers the next one
            try:
                claimed, _ = await self._cycle()
                failures = 0
            except Exception as exc:
                failures += 1
                claimed = 0
                if isinstance(exc, StoreError):
                    log.warning("webhook worker: store error %s (retrying)", type(exc).__name__)
                else:
                    log.exception("webhook worker: unexpected error (retrying)")
            if claimed >= self.batch:
                continue  # a full batch: more may be due right now
            pause = idle_interval if failures == 0 else min(idle_interval * 2 ** failures, 30.0)
            await _wait_any(stop, self._wake, pause)


def _by_ref(events: Sequence[OutboxEvent]) -> list[list[OutboxEvent]]:
    """Group events by ref, keeping the store's order (by seq) within each ref."""
    chains: dict[str, list[OutboxEvent]] = {}
    for event in events:
        chains.setdefault(event.ref, []).append(event)
    return list(chains.values())


async def _wait_any(stop: asyncio.Event, wake: asyncio.Event, timeout: float) -> None:
    waiters = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(wake.wait())]
    try:
        await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
        await asyncio.gather(*waiters, return_exceptions=True)


# --- management (CLI: `return-router events list|redeliver`) ---------------------------------


def _iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def event_summary(event: OutboxEvent) -> dict[str, Any]:
    """What an operator needs to see of one event: no body, the ref masked."""
    return {
        "id": event.id,
        "type": event.type,
        "ref": mask(event.ref),
        "status": event.status,
        "attempts": event.attempts,
        "next_attempt_at": _iso(event.next_attempt_at) if event.status == "pending" else None,
        "last_error": event.last_error,
        "created": _iso(event.created),
        "delivered_at": _iso(event.delivered_at),
    }


async def list_events(store: Store, failed_only: bool, *, limit: int = 100) -> list[dict[str, Any]]:
    """Outbox events for `return-router events list [--failed]`."""
    if limit < 1:
        raise ValueError("limit must be at least 1")
    return [event_summary(e) for e in await store.list_events(failed_only=failed_only, limit=limit)]


async def redeliver(store: Store, event_ids: Sequence[str] | None, now: float) -> int:
    """Queue parked events again (`events redeliver ID...`; None: `--all-failed`); returns how many."""
    if event_ids is None:
        return await store.redeliver(None, now)
    if isinstance(event_ids, str):
        raise TypeError("event_ids must be a sequence of ids, not one string")
    bad = [i for i in event_ids if not isinstance(i, str) or not EVENT_ID_RE.match(i)]
    if bad:
        raise ValueError(f"not an event id: {str(bad[0])[:40]!r}")
    unique = list(dict.fromkeys(event_ids))
    if not unique:
        return 0
    return await store.redeliver(unique, now)

