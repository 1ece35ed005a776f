"""Memory per worker: the router's RSS after 10,000 successful returns, and its growth over 10,000 more.

One uvicorn worker, SQLite (WAL, synchronous=FULL), the bench's raised quotas; the emulator in its own
process answering at once (latency 0: the figure is about what the router keeps, and a short upstream
wait keeps the run to a few minutes). RSS is VmRSS from /proc/<pid>/status, read after a warm-up, after
the first 10,000 returns and after the second. Every return must be a 200, else no figure.
Baseline, same run: the bare Starlette route of the cpu bench after the same number of page renders.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from ._load import server
from ._returns import RAISED_QUOTAS, expect_all, get_all, prepare, stack

RETURNS = int(os.environ.get("BENCH_MEMORY_RETURNS", "10000"))  # per round; two rounds
CHUNK = 1000  # returns prepared and sent at a time (bounds this process's lists)
CONCURRENCY = 10
WARM_UP = 200
GOAL_MB = 80
FLAT_MB = 2.0  # growth over the second round that still counts as flat (allocator noise)


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


def returns(s_router: str, paths: list[str]) -> None:
    result = asyncio.run(get_all(s_router, paths, CONCURRENCY))
    expect_all(result.statuses, 200, "successful returns")


def pages(base: str, n: int) -> None:
    result = asyncio.run(get_all(base, ["/amazon-pay/cancel"] * n, CONCURRENCY))
    expect_all(result.statuses, 200, "bare route pages")


def main() -> None:
    print(f"RSS (VmRSS) of one uvicorn worker, SQLite synchronous=FULL, emulator latency 0 ms, {CONCURRENCY} "
          f"in flight; {RETURNS:,} successful returns per round.\n")
    print("| process | after warm-up MB | after round 1 MB | after round 2 MB | growth in round 2 MB |")
    print("|---|---:|---:|---:|---:|")
    with stack(extra=RAISED_QUOTAS) as s, server(["tests.bench._pages_baseline:app"]) as (bare, bare_pid):
        returns(s.router, asyncio.run(prepare(s, WARM_UP, 0, CONCURRENCY)))
        pages(bare, WARM_UP)
        router_rss, bare_rss = [rss_mb(s.router_pid)], [rss_mb(bare_pid)]
        for _ in range(2):
            done = 0
            while done < RETURNS:
                n = min(CHUNK, RETURNS - done)
                returns(s.router, asyncio.run(prepare(s, n, 0, CONCURRENCY)))
                pages(bare, n)
                done += n
            router_rss.append(rss_mb(s.router_pid))
            bare_rss.append(rss_mb(bare_pid))
    for name, rss in (("return-router (returns)", router_rss), ("bare Starlette route (pages, baseline)", bare_rss)):
        print(f"| {name} | {rss[0]:.1f} | {rss[1]:.1f} | {rss[2]:.1f} | {rss[2] - rss[1]:+.1f} |")
    growth = router_rss[2] - router_rss[1]
    verdict = "met" if router_rss[1] <= GOAL_MB and growth <= FLAT_MB else "NOT met"
    print(f"\n(goal: ≤ {GOAL_MB} MB after round 1 and flat over round 2 (growth ≤ {FLAT_MB} MB): {verdict}; "
          f"router after round 1 is {router_rss[1] / bare_rss[1]:.2f}x the bare route's RSS)")
