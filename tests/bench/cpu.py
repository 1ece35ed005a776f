"""Server CPU per return, read from the router process's /proc/<pid>/stat, next to the floor.

One worker under `return-router serve` (its default logging, written to a pipe that this process reads, as
under systemd or docker), SQLite (WAL, synchronous=FULL), the emulator in its own process answering in
100 ms. Floor, measured in this process in the same run: one RSA-PSS-2048 signature per success plus as
many SQLite commits (synchronous=FULL, WAL, one row each) as the router made per request in that row, read
from its /metrics (`return_router_sqlite_commit_seconds_count`): group commit shares a COMMIT between
returns that wait together, so a success makes fewer than its two transactions' worth and a cancel fewer
than one. Cancel and error pages are also set beside a bare Starlette route rendering the same template
with Jinja2 for every request (the issue's baseline), and beside one rendering it through the service's own
renderer (one Jinja2 rendering per page shape); their CPU is read the same way. A raw ASGI app answering
an empty 200 to the same client is the HTTP floor that every row pays (uvicorn, the loopback sockets). The
client (tests/bench/_returns.get_all) is aiohttp on CONCURRENCY keep-alive connections. The summary also
prints the most a cancel could read against the bare route at the floor of its store work: the error page
(everything but the store) plus the cancel's share of a commit.
Each row also shows how much of its CPU the main thread (uvicorn's event loop) spent: the rest is
the store's SQLite thread (its statements, commits and fsyncs), the log writer and, when configured,
the tracing exporter. A second success row runs the same returns against an emulator that answers at
once: the same work done back to back, with no 100 ms waits between bursts, which on these shared-core
machines costs less CPU per return (the difference is what idling between bursts costs: caches and
predictors gone cold, threads woken from sleep). It is also the CPU that bounds one worker's throughput.
Every row runs BENCH_CPU_ROUNDS times (3), the rows taking turns, and shows the median round with the
range: the same code's CPU moves by 20-30% between runs minutes apart on these machines, enough to put one
run on either side of a goal.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path

from router.amazon_pay import load_private_key
from router.amazon_pay.signing import sign

from ._load import server
from ._returns import (
    RAISED_QUOTAS,
    Stack,
    cpu_seconds,
    expect_all,
    get_all,
    main_thread_cpu_seconds,
    prepare,
    sqlite_commits,
    stack,
)

RETURNS = int(os.environ.get("BENCH_RETURNS", "300"))
ROUNDS = max(1, int(os.environ.get("BENCH_CPU_ROUNDS", "3")))  # each row: the median of this many interleaved runs
PAGES = 2000
CONCURRENCY = 10
LATENCY_MS = 100


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


@dataclass(frozen=True)
class Row:
    ms: float  # server CPU per request
    loop_ms: float  # of it, the main thread's (the event loop); the rest is the SQLite, logging … threads
    statuses: dict[int, int]
    commits: float | None = None  # the router's SQLite COMMITs per request (None: not the router)
    spread: str = ""  # the lowest and highest `ms` of the rounds this row is the median of


def median_row(rows: list[Row]) -> Row:
    """The round with the median CPU per request, its spread the rounds' range."""
    ordered = sorted(rows, key=lambda row: row.ms)
    return replace(ordered[len(ordered) // 2], spread=f"{ordered[0].ms:.2f}-{ordered[-1].ms:.2f}")


def one_round(s: Stack, bare: tuple[str, int], shaped: tuple[str, int], raw: tuple[str, int]) -> dict[str, Row]:
    """Every row once; successes and cancels on checkouts registered for this round."""
    cancels = [p.replace("/amazon-pay/result", "/amazon-pay/cancel")
               for p in asyncio.run(prepare(s, PAGES // 4, LATENCY_MS))]
    return {
        "success": cpu_row(s.router_pid, s.router, asyncio.run(prepare(s, RETURNS, LATENCY_MS)),
                           "successful returns", s.metrics),
        "busy": cpu_row(s.router_pid, s.router, asyncio.run(prepare(s, RETURNS, 0)), "successful returns", s.metrics),
        "cancel": cpu_row(s.router_pid, s.router, cancels, "cancel pages", s.metrics),
        "error": cpu_row(s.router_pid, s.router, ["/amazon-pay/error"] * PAGES, "error pages", s.metrics),
        "bare": cpu_row(bare[1], bare[0], ["/amazon-pay/cancel"] * PAGES, "bare route"),
        "shaped": cpu_row(shaped[1], shaped[0], ["/amazon-pay/cancel"] * PAGES, "bare route, shaped"),
        "raw": cpu_row(raw[1], raw[0], ["/amazon-pay/cancel"] * PAGES, "raw ASGI app"),
    }


def cpu_row(pid: int, base: str, paths: list[str], what: str, metrics: str | None = None) -> Row:
    """CPU ms per request of `pid` while it answers `paths`; every answer must be a 200."""
    commits = sqlite_commits(metrics) if metrics else 0.0
    before, loop_before = cpu_seconds(pid), main_thread_cpu_seconds(pid)
    result = asyncio.run(get_all(base, paths, CONCURRENCY))
    ms = 1000 * (cpu_seconds(pid) - before) / len(paths)
    loop_ms = 1000 * (main_thread_cpu_seconds(pid) - loop_before) / len(paths)
    expect_all(result.statuses, 200, what)
    return Row(ms, loop_ms, result.statuses,
               (sqlite_commits(metrics) - commits) / len(paths) if metrics else None)


def main() -> None:
    print(f"Server CPU per request from /proc/<pid>/stat (`serve`, 1 worker, SQLite synchronous=FULL, "
          f"emulator latency {LATENCY_MS} ms, {CONCURRENCY} in flight).\n")
    print(f"Each row is the median of {ROUNDS} interleaved rounds (in brackets: the lowest and highest round; "
          f"on these shared 2-core machines one run of the same code moves by 20-30%).\n")
    print("| what | n | server CPU ms/request (lowest-highest) | of it, event loop | COMMITs/request | floor ms "
          "| vs floor | statuses |\n|---|---:|---:|---:|---:|---:|---:|---|")
    with stack(extra=RAISED_QUOTAS, serve=True) as s, \
            server(["tests.bench._pages_baseline:app"]) as (bare, bare_pid), \
            server(["tests.bench._pages_baseline:shaped_app"]) as (shaped, shaped_pid), \
            server(["tests.bench._baseline:raw_app"]) as (raw, raw_pid):
        asyncio.run(get_all(s.router, asyncio.run(prepare(s, 20, LATENCY_MS)), CONCURRENCY))  # warm-up
        runs: dict[str, list[Row]] = {}
        for _ in range(ROUNDS):  # interleaved: a minute's drift in the machine's speed reaches every row alike
            for name, row in one_round(s, (bare, bare_pid), (shaped, shaped_pid), (raw, raw_pid)).items():
                runs.setdefault(name, []).append(row)
        signature, commit = floor_ms(s.private_pem, 0, 1), floor_ms(s.private_pem, 1, 0)
    success, busy, cancel, error, bare_ms, shaped_ms, raw_ms = (
        median_row(runs[name]) for name in ("success", "busy", "cancel", "error", "bare", "shaped", "raw"))
    rows = (
        ("successful return (bind + lease, signed finalize, settle, page)", RETURNS, success, signature),
        ("the same, the emulator answering at once (the loop never idles)", RETURNS, busy, signature),
        ("cancel page (a fresh checkout each)", PAGES // 4, cancel, 0.0),
        ("error page (no store)", PAGES, error, 0.0),
    )
    for what, n, row, signing in rows:
        floor = signing + (row.commits or 0.0) * commit
        versus = f"{row.ms / floor:.1f}x" if floor >= 0.01 else "–"  # not over a heartbeat's stray COMMIT
        print(f"| {what} | {n} | {row.ms:.2f} ({row.spread}) | {row.loop_ms:.2f} | {row.commits:.2f} | {floor:.2f} "
              f"| {versus} | {row.statuses} |")
    for what, row in (("bare Starlette route, same template, Jinja2 each request (the pages' baseline)", bare_ms),
                      ("bare Starlette route, same template, the service's renderer", shaped_ms),
                      ("raw ASGI app, an empty 200, same client (the HTTP floor of every row)", raw_ms)):
        print(f"| {what} | {PAGES} | {row.ms:.2f} ({row.spread}) | {row.loop_ms:.2f} | – | – | – | {row.statuses} |")
    cancel_floor = (cancel.commits or 0.0) * commit
    print(f"\nPages against the bare route (its CPU / ours; goal ≥ 0.8x): cancel {bare_ms.ms / cancel.ms:.2f}x "
          f"(its store work included), error {bare_ms.ms / error.ms:.2f}x. Against the bare route with the "
          f"service's renderer: cancel {shaped_ms.ms / cancel.ms:.2f}x, error {shaped_ms.ms / error.ms:.2f}x. The "
          f"most a cancel could read with its store work at the floor: the bare route / (our error page, "
          f"everything but the store, + its {cancel.commits:.2f} COMMITs' floor) = {bare_ms.ms:.2f} / "
          f"({error.ms:.2f} + {cancel_floor:.2f}) = {bare_ms.ms / (error.ms + cancel_floor):.2f}x.")
    print(f"\n(floor: the same process's CPU for one RSA-PSS-2048 signature per success ({signature:.2f} ms) and "
          f"the row's COMMITs per request at {commit:.2f} ms each, one-row commits on a WAL file with "
          f"synchronous=FULL; goals: ≤ 3 ms per success, ≤ 0.5 ms per cancel or error page)")


