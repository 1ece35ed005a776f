"""What a buyer waits: success returns at 1, 10 and 32 in flight against an upstream answering in 100 ms.

Baseline, same run, same emulator, same concurrency: plain signed finalize POSTs sent straight to the
emulator (signed before the clock starts, one aiohttp connection per caller), so the difference is
what return-router adds. At 32 in flight (above Amazon's burst of 10) the router's Amazon client
queues on its pool: the figures are no 5xx, FIFO fairness (p99/p50) and throughput against
pool size / upstream latency. At 10 in flight the pair runs five rounds, interleaved, and the summary
takes the median of the rounds' differences: in this closed loop the ten returns of a wave arrive
together or spread out by chance, and one run's p50 moves by several ms with it. At 1 in flight (no
goal; three rounds) a return waits for nobody else's work: what is left is its own path, the part of the
difference at 10 that no scheduling among the returns can remove.

It all runs twice: first with the router on a core of its own and the emulator and this client on the
others (as deployed: Amazon's and the buyers' CPU is not the server's, and here the emulator spends
about 1 ms of CPU on each finalize), then with everything on every core. The goals are read on the first;
both are printed.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import time
import uuid

import aiohttp
import httpx

from router.amazon_pay import AmazonPayAuth, load_private_key, serialize_payload
from tests.support.config import KEY_ID

from ._returns import (
    ORDER,
    RAISED_QUOTAS,
    SHARED,
    Latencies,
    Placement,
    get_all,
    new_sessions,
    own_core,
    prepare,
    stack,
)

LATENCY_MS = 100
LEVELS = ((1, 50, 3), (10, int(os.environ.get("BENCH_RETURNS", "300")), 5), (32, 640, 1))  # in flight, returns, rounds
POOL = 10  # the Amazon client's connection pool (AmazonPayClient's default)
EXPECTED = 200  # a success return's page; plain finalize POSTs to the emulator answer 200 too


def unexpected(statuses: dict[int, int]) -> str | None:
    """What is wrong with a run's statuses, or None when every answer is the expected one."""
    others = {status: n for status, n in statuses.items() if status != EXPECTED}
    return f"statuses {statuses}: {sum(others.values())} not {EXPECTED}" if others else None


async def plain_posts(emulator: str, private_pem: bytes, n: int, concurrency: int) -> Latencies:
    auth = AmazonPayAuth(KEY_ID, load_private_key(private_pem), "us", path_prefix="")
    body = serialize_payload(ORDER)
    requests = []
    for session_id in await new_sessions(emulator, n, LATENCY_MS):
        request = httpx.Request("POST", f"{emulator}/v2/checkoutSessions/{session_id}/finalize", content=body,
                                headers={"x-amz-pay-idempotency-key": uuid.uuid4().hex,
                                         "content-type": "application/json", "accept": "application/json"})
        next(auth.auth_flow(request))
        requests.append((str(request.url), dict(request.headers)))
    seconds: list[float] = []
    statuses: dict[int, int] = {}
    queue = list(reversed(requests))

    async def worker(session: aiohttp.ClientSession) -> None:
        while queue:
            url, headers = queue.pop()
            start = time.perf_counter()
            async with session.post(url, data=body, headers=headers) as answer:
                await answer.read()
            seconds.append(time.perf_counter() - start)
            statuses[answer.status] = statuses.get(answer.status, 0) + 1

    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector, skip_auto_headers=["User-Agent"]) as session:
        started = time.perf_counter()
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))
        return Latencies(seconds, time.perf_counter() - started, statuses)


def main() -> None:
    placements = [p for p in (own_core(), SHARED) if p is not None]
    print(f"Success returns (1 worker, SQLite) vs plain signed POSTs to the same emulator ({LATENCY_MS} ms); "
          f"the router's Amazon pool: {POOL}; quotas raised in its config. Load average "
          f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores. Placements: "
          f"{'; '.join(p.name for p in placements)}.\n")
    print("| placement | in flight | what | n | p50 ms | p99 ms | p99/p50 | per s | ideal per s | vs ideal | "
          "statuses |\n|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---|")
    added: list[tuple[Placement, int, list[tuple[float, float]]]] = []
    problems: list[str] = []
    for placement in placements:
        with placement.client():
            added += rounds(placement, problems)
    print()
    if problems:  # a figure over error pages would measure the error page
        print("No figures: not every answer was the expected one.\n" + "\n".join(f"- {p}" for p in problems))
        return
    for placement, concurrency, differences in added:
        p50s, p99s = [d[0] for d in differences], [d[1] for d in differences]
        spread = (f" (median of {len(differences)} rounds; p50 {min(p50s):+.1f} to {max(p50s):+.1f}, "
                  f"p99 {min(p99s):+.1f} to {max(p99s):+.1f})") if len(differences) > 1 else ""
        print(f"- {placement.name}, {concurrency} in flight: a return takes {statistics.median(p50s):+.1f} ms "
              f"(p50) and {statistics.median(p99s):+.1f} ms (p99) over a plain POST{spread}")
    print("\n(goals: at 1, none (a return's own path); at 10, ≤ +5 ms p50 and ≤ +20 ms p99; at 32, no 5xx, "
          "p99/p50 ≤ 2 and ≥ 0.9x of "
          f"pool/latency = {POOL * 1000 // LATENCY_MS}/s; read with the router on a core of its own, as "
          "deployed, where Amazon's and the buyers' CPU is not the server's: on shared cores the emulator's "
          f"CPU per finalize competes with the router's; load average now {os.getloadavg()[0]:.1f})")


def rounds(placement: Placement, problems: list[str]) -> list[tuple[Placement, int, list[tuple[float, float]]]]:
    """Every level's rounds on one stack: (placement, in flight, [(added p50, added p99) per round])."""
    added = []
    with stack(extra=RAISED_QUOTAS, placement=placement) as s:  # Sandbox's finalize quota (2, 1/s) would answer 503
        warm = asyncio.run(get_all(s.router, asyncio.run(prepare(s, 20, LATENCY_MS)), 10))
        if (problem := unexpected(warm.statuses)) is not None:
            problems.append(f"{placement.name}, warm-up: {problem}")
        for concurrency, n, count in LEVELS:
            differences = []
            for _ in range(count):
                paths = asyncio.run(prepare(s, n, LATENCY_MS))
                router = asyncio.run(get_all(s.router, paths, concurrency))
                plain = asyncio.run(plain_posts(s.emulator, s.private_pem, n, concurrency))
                for name, r, ideal in (("returns", router, min(concurrency, POOL) * 1000 / LATENCY_MS),
                                       ("plain POSTs", plain, concurrency * 1000 / LATENCY_MS)):
                    problem = unexpected(r.statuses)
                    row = f"| {placement.name} | {concurrency} | {name} | {n} |"
                    if problem is not None:
                        problems.append(f"{placement.name}, {concurrency} in flight, {name}: {problem}")
                        print(f"{row} – | – | – | – | {ideal:.0f} | – | {r.statuses} |")
                        continue
                    print(f"{row} {r.p(0.5):.0f} | {r.p(0.99):.0f} | {r.p(0.99) / r.p(0.5):.2f} | {r.rate:.0f} | "
                          f"{ideal:.0f} | {r.rate / ideal:.2f}x | {r.statuses} |", flush=True)
                differences.append((router.p(0.5) - plain.p(0.5), router.p(0.99) - plain.p(0.99)))
            added.append((placement, concurrency, differences))
    return added
