"""Where a successful return's time goes, read from the router's own traces: before the Amazon call, the
call, after it, and the two store hops (bind + lease, settle), at 1 and at 10 in flight.

Not a `make bench` section (tracing costs CPU of its own, so the figures are larger than untraced ones):
run it by hand, `python -m tests.bench._timeline [N]`. The router runs under `serve` with `[tracing]`
pointing at a collector in this process (OTLP over HTTP, protobuf), as an operator would look at it; the
emulator answers in 100 ms, the bench's raised quotas. Each return's trace is its request span (inside the
service's middleware) with the store's and Amazon's spans as children (router/tracing.py).
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from tests.support import wait_until
from tests.support.otlp import otlp_collector

from ._returns import RAISED_QUOTAS, expect_all, get_all, prepare, stack

LATENCY_MS = 100
LEVELS = (1, 10)  # returns in flight
REQUEST = "GET /amazon-pay/result"
PARTS = ("before the Amazon call", "the Amazon call (build, sign, POST, read)", "after it", "store: bind + lease",
         "store: settle")


@dataclass(frozen=True)
class Window:
    in_flight: int
    start_ns: int
    end_ns: int


def parts(request: Span, children: Sequence[Span]) -> dict[str, float] | None:
    """A return's parts in ms; None when its trace lacks a span (a return answered without Amazon)."""
    named = {span.name: span for span in children}
    amazon = named.get("amazon_pay.finalize_checkout_session")
    bind, settle = named.get("store.bind_and_lease"), named.get("store.transition")
    if amazon is None or bind is None or settle is None:
        return None
    values = (amazon.start_time_unix_nano - request.start_time_unix_nano,
              amazon.end_time_unix_nano - amazon.start_time_unix_nano,
              request.end_time_unix_nano - amazon.end_time_unix_nano,
              bind.end_time_unix_nano - bind.start_time_unix_nano,
              settle.end_time_unix_nano - settle.start_time_unix_nano)
    return {name: ns / 1e6 for name, ns in zip(PARTS, values, strict=True)}


def report(spans: list[Span], windows: Sequence[Window]) -> None:
    by_parent: defaultdict[bytes, list[Span]] = defaultdict(list)
    for span in spans:
        by_parent[span.parent_span_id].append(span)
    requests = [span for span in spans if span.name == REQUEST]
    print("| in flight | returns | " + " | ".join(f"{p} p50 / p90 ms" for p in PARTS) + " |")
    print("|---:|---:|" + "---:|" * len(PARTS))
    for window in windows:
        rows = [found for request in requests if window.start_ns <= request.start_time_unix_nano <= window.end_ns
                if (found := parts(request, by_parent[request.span_id])) is not None]
        if not rows:
            print(f"| {window.in_flight} | 0 | " + " | ".join("–" for _ in PARTS) + " |")
            continue
        cells = []
        for name in PARTS:
            values = sorted(row[name] for row in rows)
            cells.append(f"{statistics.median(values):.2f} / {values[int(0.9 * (len(values) - 1))]:.2f}")
        print(f"| {window.in_flight} | {len(rows)} | " + " | ".join(cells) + " |")


def spans_of(exports: Sequence[ExportTraceServiceRequest]) -> list[Span]:
    return [span for export in exports for resource in export.resource_spans for scope in resource.scope_spans
            for span in scope.spans]


def main(n: int = 300) -> None:
    windows: list[Window] = []
    with otlp_collector() as (collector, exports):
        tracing = f'\n[tracing]\notlp_endpoint = "{collector}/"\n'
        with stack(extra=RAISED_QUOTAS + tracing, serve=True) as s:
            asyncio.run(get_all(s.router, asyncio.run(prepare(s, 20, LATENCY_MS)), 10))  # warm-up
            for in_flight in LEVELS:
                paths = asyncio.run(prepare(s, n, LATENCY_MS))
                start = time.time_ns()
                result = asyncio.run(get_all(s.router, paths, in_flight))
                windows.append(Window(in_flight, start, time.time_ns()))
                expect_all(result.statuses, 200, f"returns at {in_flight} in flight")
        # the router flushes its last spans on the way out
        expected = len(LEVELS) * n
        wait_until(lambda: sum(span.name == REQUEST for span in spans_of(exports)) >= expected, "the spans",
                   timeout=30)
    print(f"A successful return's parts, from the router's traces ({n} returns per row; `serve` with [tracing], "
          f"emulator latency {LATENCY_MS} ms). Before: request span start to the Amazon call; after: the "
          "Amazon call's end to the request span's end (the settle and the page). Tracing's own CPU is in "
          "every figure.\n")
    report(spans_of(exports), windows)


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:2]))
