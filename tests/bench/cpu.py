"""Server CPU per return, read from the router process's /proc/<pid>/stat, next to the floor.

One worker, SQLite (WAL, synchronous=FULL), the emulator in its own process answering in 100 ms.
Floor, measured in this process in the same run: one RSA-PSS-2048 signature plus the same number of
SQLite commits (synchronous=FULL, WAL) as the return makes (two transactions: bind + lease, settle;
group commit may share a COMMIT between returns, the floor does not). Cancel and error pages are also set
beside a bare Starlette route rendering the same template with Jinja2 for every request (the issue's baseline),
and beside one rendering it through the service's own renderer (one Jinja2 rendering per page shape); their
CPU is read the same way. A raw ASGI app answering an empty 200 to the same client is the HTTP floor that
every row pays (uvicorn, the loopback sockets). The client (tests/bench/_returns.get_all) is aiohttp on
CONCURRENCY keep-alive connections; the router writes its logs to a pipe that this process reads.
The summary also prints the most a cancel could read against the bare route while its commit is its own
(the error page, which is everything but the store, plus one commit's floor).
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import tempfile
import time
from pathlib import Path

from router.amazon_pay import load_private_key
from router.amazon_pay.signing import sign

from ._load import server
from ._returns import RAISED_QUOTAS, cpu_seconds, expect_all, get_all, prepare, stack

RETURNS = int(os.environ.get("BENCH_RETURNS", "300"))
PAGES = 2000
CONCURRENCY = 10
LATENCY_MS = 100
COMMITS = {"success": 2, "cancel": 1, "error": 0}  # bind + lease, settle; the cancel; none


def floor_ms(private_pem: bytes, commits: int, signatures: int, rounds: int = 200) -> float:
    """CPU ms of `signatures` RSA-PSS-2048 signatures plus `commits` one-row commits, per round."""
    key = load_private_key(private_pem)
    with tempfile.TemporaryDirectory() as tmp:
        conn = sqlite3.connect(Path(tmp) / "floor.db", isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT)")
        text = "AMZN-PAY-RSASSA-PSS-V2\n" + "0" * 64
        start = time.process_time()
        for i in range(rounds):
            for _ in range(signatures):
                sign(key, "AMZN-PAY-RSASSA-PSS-V2", text)
            for j in range(commits):
                conn.execute("BEGIN IMMEDIATE")
                conn.execute("INSERT INTO t (k, v) VALUES (?, ?)", (i * 10 + j, "x" * 200))
                conn.execute("COMMIT")
        conn.close()
        return 1000 * (time.process_time() - start) / rounds


def cpu_ms(pid: int, base: str, paths: list[str], concurrency: int, what: str) -> tuple[float, dict[int, int]]:
    """CPU ms per request of `pid` while it answers `paths`; every answer must be a 200."""
    before = cpu_seconds(pid)
    result = asyncio.run(get_all(base, paths, concurrency))
    ms = 1000 * (cpu_seconds(pid) - before) / len(paths)
    expect_all(result.statuses, 200, what)
    return ms, result.statuses


def main() -> None:
    print(f"Server CPU per request from /proc/<pid>/stat (1 uvicorn worker, SQLite synchronous=FULL, "
          f"emulator latency {LATENCY_MS} ms, {CONCURRENCY} in flight).\n")
    print("| what | n | server CPU ms/request | floor ms | vs floor | statuses |\n|---|---:|---:|---:|---:|---|")
    with stack(extra=RAISED_QUOTAS) as s, server(["tests.bench._pages_baseline:app"]) as (bare, bare_pid), \
            server(["tests.bench._pages_baseline:shaped_app"]) as (shaped, shaped_pid), \
            server(["tests.bench._baseline:raw_app"]) as (raw, raw_pid):
        asyncio.run(get_all(s.router, asyncio.run(prepare(s, 20, LATENCY_MS)), CONCURRENCY))  # warm-up
        paths = asyncio.run(prepare(s, RETURNS, LATENCY_MS))
        success, statuses = cpu_ms(s.router_pid, s.router, paths, CONCURRENCY, "successful returns")
        floor = floor_ms(s.private_pem, COMMITS["success"], 1)
        print(f"| successful return (bind + lease, signed finalize, settle, page) | {RETURNS} | {success:.2f} | "
              f"{floor:.2f} | {success / floor:.1f}x | {statuses} |")
        fresh = asyncio.run(prepare(s, PAGES // 4, LATENCY_MS))
        cancels = [p.replace("/amazon-pay/result", "/amazon-pay/cancel") for p in fresh]
        cancel, statuses = cpu_ms(s.router_pid, s.router, cancels, CONCURRENCY, "cancel pages")
        floor = cancel_floor = floor_ms(s.private_pem, COMMITS["cancel"], 0)
        print(f"| cancel page (a fresh checkout each: one commit) | {len(cancels)} | {cancel:.2f} | {floor:.2f} | "
              f"{cancel / floor:.1f}x | {statuses} |")
        errors = ["/amazon-pay/error"] * PAGES
        error, statuses = cpu_ms(s.router_pid, s.router, errors, CONCURRENCY, "error pages")
        bare_ms, bare_statuses = cpu_ms(bare_pid, bare, ["/amazon-pay/cancel"] * PAGES, CONCURRENCY, "bare route")
        shaped_ms, shaped_statuses = cpu_ms(shaped_pid, shaped, ["/amazon-pay/cancel"] * PAGES, CONCURRENCY,
                                            "bare route, shaped")
        raw_ms, raw_statuses = cpu_ms(raw_pid, raw, ["/amazon-pay/cancel"] * PAGES, CONCURRENCY, "raw ASGI app")
        print(f"| error page (no store) | {PAGES} | {error:.2f} | {bare_ms:.2f} | {error / bare_ms:.1f}x | "
              f"{statuses} |")
        print(f"| bare Starlette route, same template, Jinja2 each request (the pages' baseline) | {PAGES} | "
              f"{bare_ms:.2f} | – | – | {bare_statuses} |")
        print(f"| bare Starlette route, same template, the service's renderer | {PAGES} | {shaped_ms:.2f} | – | – | "
              f"{shaped_statuses} |")
        print(f"| raw ASGI app, an empty 200, same client (the HTTP floor of every row) | {PAGES} | {raw_ms:.2f} | – | "
              f"– | {raw_statuses} |")
    print(f"\nPages against the bare route (its CPU / ours; goal ≥ 0.8x): cancel {bare_ms / cancel:.2f}x "
          f"(the cancel's commit included), error {bare_ms / error:.2f}x. Against the bare route with the "
          f"service's renderer: cancel {shaped_ms / cancel:.2f}x, error {shaped_ms / error:.2f}x. The most a cancel "
          f"could read while its commit is its own: the bare route / (our error page, everything but the store, "
          f"+ one commit's floor) = {bare_ms:.2f} / ({error:.2f} + {cancel_floor:.2f}) = "
          f"{bare_ms / (error + cancel_floor):.2f}x.")
    print("\n(floor: the same process's CPU for one RSA-PSS-2048 signature and the return's commits — 2 for a "
          "success, 1 for a cancel — on a WAL file with synchronous=FULL; goals: ≤ 3 ms per success, ≤ 0.5 ms per "
          "cancel or error page)")
