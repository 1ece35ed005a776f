"""Return flows against the emulator: success returns/s (each a new session) and a cancel page loaded again
and again (a reload or a link preview: the checkout is canceled by the first), next to a bare Starlette route
rendering the same template in the same run. The router has the bench's raised quotas (the emulator counts as
Sandbox, whose finalize quota would answer most returns 503), and no figure is printed over answers that are
not all 200."""

from __future__ import annotations

import asyncio
import os
import statistics
import time

import httpx

from ._load import TABLE_HEAD, LoadResult, compare, load, server_process
from ._returns import HOST, RAISED_QUOTAS, prepare, stack

RETURNS = int(os.environ.get("BENCH_RETURNS", "300"))
CONCURRENCY = 10
SECONDS = float(os.environ.get("BENCH_SECONDS", "5"))


async def returns(router: str, paths: list[str]) -> LoadResult:
    latencies: list[float] = []
    errors = 0
    queue = list(paths)

    async def worker(client: httpx.AsyncClient) -> None:
        nonlocal errors
        while queue:
            path = queue.pop()
            start = time.perf_counter()
            answer = await client.get(router + path, headers={"host": HOST})
            latencies.append(time.perf_counter() - start)
            errors += answer.status_code != 200
    started = time.perf_counter()
    async with httpx.AsyncClient(timeout=60) as client:
        await asyncio.gather(*(worker(client) for _ in range(CONCURRENCY)))
    elapsed = time.perf_counter() - started
    latencies.sort()
    return LoadResult(len(latencies) / elapsed, statistics.median(latencies) * 1000,
                      latencies[max(0, int(len(latencies) * 0.99) - 1)] * 1000, errors, "httpx")


def main() -> None:
    with stack(extra=RAISED_QUOTAS) as s, server_process(["tests.bench._pages_baseline:app"]) as baseline:
        paths = asyncio.run(prepare(s, RETURNS, 0))  # the emulator answers at once
        success = asyncio.run(returns(s.router, paths))
        cancel_path = paths[0].replace("/amazon-pay/result", "/amazon-pay/cancel")
        cancel = load(s.router + cancel_path, host=HOST, seconds=SECONDS)
        page = load(baseline + "/amazon-pay/cancel", seconds=SECONDS)
    problems = [f"{what}: {r.errors} answers not 200" for what, r in (("success returns", success),
                ("cancel page", cancel), ("bare route", page)) if r.errors]
    if problems:  # a figure over error pages would measure the error page
        print("No figures: " + "; ".join(problems))
        return
    print(TABLE_HEAD)
    print(compare(f"success returns ({RETURNS} new sessions, {CONCURRENCY} at a time)", success, page,
                  "bare Starlette + the same template"))
    print(compare("cancel page loaded again (the same URL)", cancel, page,
                  "bare Starlette + the same template").split("\n")[0])
    print(f"\n(success: httpx client, errors {success.errors}; pages: {cancel.tool}, "
          f"{SECONDS:.0f} s, 32 connections; each return is one signed finalize at the emulator)")
