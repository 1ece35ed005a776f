"""The Prometheus series of return-router (names and labels are a contract: see the README).

A leaf: it imports nothing of router, so every layer may count what it does with a one-line call.
Under `serve --workers N` each worker writes its values to PROMETHEUS_MULTIPROC_DIR (prometheus_client
multiprocess mode, chosen when the variable is set before this module is imported) and the metrics
listener adds them up; with one worker the process's own registry is served.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import Any

from prometheus_client import Counter, Gauge, Histogram

PREFIX = "return_router_"

RETURNS = Counter(f"{PREFIX}returns_total", "Buyer returns served, by host pattern, flow, page shown and platform.",
                  ["host", "flow", "page", "platform", "in_app"])
FINALIZE = Counter(f"{PREFIX}finalize_total", "Finalize calls led by this service, by resulting state or error.",
                   ["outcome"])
AMAZON_REQUESTS = Counter(f"{PREFIX}amazon_requests_total", "Amazon Pay API attempts, by operation and status.",
                          ["operation", "status"])
AMAZON_SECONDS = Histogram(f"{PREFIX}amazon_request_seconds", "Amazon Pay API attempt latency.", ["operation"],
                           buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 30, 60))
AMAZON_THROTTLED = Counter(f"{PREFIX}amazon_throttled_total", "Amazon Pay answers with HTTP 429.", ["operation"])
API_REQUESTS = Counter(f"{PREFIX}api_requests_total", "App and merchant API requests, by route template and status.",
                       ["endpoint", "status"])
WEBHOOK_DELIVERIES = Counter(f"{PREFIX}webhook_deliveries_total", "Webhook delivery attempts, by result.",
                             ["result"])
RECONCILER_PASSES = Counter(f"{PREFIX}reconciler_passes_total", "Reconciler passes, by result.", ["result"])
SQLITE_COMMIT_SECONDS = Histogram(
    f"{PREFIX}sqlite_commit_seconds",
    "SQLite group commits of the store's writes: how long each COMMIT took (it waits for the disk).",
    buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1))
SQLITE_WRITES = Counter(f"{PREFIX}sqlite_writes_total",
                        "Write jobs committed by SQLite; per COMMIT (group commit): this over the commit count.")
STORE_ERRORS = Counter(f"{PREFIX}store_errors_total", "Store calls that failed with a store error, by method.",
                       ["operation"])
BUILD_INFO = Gauge(f"{PREFIX}build_info", "Always 1; the running version in a label.", ["version"],
                   multiprocess_mode="livemax")

# Read from the store at scrape time by the metrics listener (router.ops.metrics_server), not here.
STORE_GAUGES = {
    f"{PREFIX}webhook_backlog": "Webhook events waiting for delivery (pending, not parked).",
    f"{PREFIX}webhook_oldest_pending_seconds": "Age of the oldest pending webhook event (0 when none).",
    f"{PREFIX}webhook_parked": "Webhook events given up on; each holds back its checkout's later events.",
}


def package_version() -> str:
    try:
        return version("return-router")
    except PackageNotFoundError:  # a source tree that was never installed
        return "unknown"


def declared_series() -> set[str]:
    """Every series name this service exposes (counters without their _total suffix added twice)."""
    histograms = (AMAZON_SECONDS, SQLITE_COMMIT_SECONDS)
    names = {m._name for m in (RETURNS, FINALIZE, AMAZON_REQUESTS, AMAZON_THROTTLED, API_REQUESTS,
                               WEBHOOK_DELIVERIES, RECONCILER_PASSES, SQLITE_WRITES, STORE_ERRORS)}
    counters = {f"{n}_total" for n in names}
    parts = {f"{h._name}_{part}" for h in histograms for part in ("bucket", "sum", "count")}
    return counters | parts | {BUILD_INFO._name} | set(STORE_GAUGES)


_children: dict[tuple[object, tuple[str, ...]], Any] = {}


def _child(metric: Any, *labels: str) -> Any:
    """metric.labels(*labels), remembered: labels() validates and locks on every call (a few µs each, on
    every return). Children are never removed, and prometheus_client keeps every one it made anyway."""
    key = (metric, labels)
    found = _children.get(key)
    if found is None:
        found = _children[key] = metric.labels(*labels)
    return found


def returned(host: str, flow: str, page: str, platform: str, in_app: str | None) -> None:
    _child(RETURNS, host, flow, page, platform, in_app or "none").inc()


def finalized(outcome: str) -> None:
    _child(FINALIZE, outcome).inc()


def amazon_request(operation: str, status: int | None, seconds: float) -> None:
    """One attempt; status None means no HTTP answer (connection error or timeout)."""
    _child(AMAZON_REQUESTS, operation, str(status) if status is not None else "error").inc()
    _child(AMAZON_SECONDS, operation).observe(seconds)
    if status == 429:
        AMAZON_THROTTLED.labels(operation).inc()


def api_request(endpoint: str, status: int) -> None:
    _child(API_REQUESTS, endpoint, str(status)).inc()


def webhook_delivery(result: str) -> None:
    WEBHOOK_DELIVERIES.labels(result).inc()


def reconciler_pass(result: str) -> None:
    RECONCILER_PASSES.labels(result).inc()


def sqlite_committed(writes: int, seconds: float) -> None:
    """One COMMIT of `writes` write jobs (the SQLite store's thread), which took `seconds`."""
    SQLITE_COMMIT_SECONDS.observe(seconds)
    SQLITE_WRITES.inc(writes)


def store_error(operation: str) -> None:
    STORE_ERRORS.labels(operation).inc()


BUILD_INFO.labels(package_version()).set(1)
