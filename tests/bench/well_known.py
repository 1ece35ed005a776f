"""Association files: `return-router serve` with its default logging (an access line per request, to a
pipe) vs a raw ASGI app returning the same bytes and headers under uvicorn with no logging (and, as `serve`,
no proxy-headers middleware). `serve`'s protocol writes these answers itself (router/web/server.py)."""

from __future__ import annotations

import json
import os
import resource
import sys
import tempfile
from pathlib import Path

import httpx

from ._load import TABLE_HEAD, LoadResult, compare, load, server
from ._returns import cpu_seconds

SECONDS = float(os.environ.get("BENCH_SECONDS", "3"))
PAIRS = 5
HOST = "pay.example.com"


def main() -> None:
    from tests.support.config import BASE_CONFIG

    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "bench.toml"
        config.write_text(BASE_CONFIG + f'\n[storage]\nurl = "sqlite:///{tmp}/bench.db"\n')
        serve = [sys.executable, "-m", "router.cli", "serve", "--config", str(config)]
        with server([], command=serve, logs_to_pipe=True) as (router_url, router_pid):
            paths = ["/.well-known/apple-app-site-association", "/.well-known/assetlinks.json"]
            answers = {p: httpx.get(router_url + p, headers={"host": HOST}) for p in paths}
            print(TABLE_HEAD.replace(" |\n", " | server CPU µs/request | CPU vs baseline |\n", 1) + "---:|---:|")
            for path in paths:
                body_file = Path(tmp) / "body"
                body_file.write_bytes(answers[path].content)
                headers = {k: v for k, v in answers[path].headers.items() if k != "date"}
                env = {"BENCH_BODY_FILE": str(body_file), "BENCH_HEADERS": json.dumps(headers)}
                # --no-proxy-headers: as `serve` runs by default (uvicorn's own default would wrap the raw app in
                # its proxy-headers middleware, a cost the baseline should not carry)
                with server(["tests.bench._baseline:raw_app", "--no-proxy-headers"], env) as (base, base_pid):
                    subject_run = (router_url + path, HOST, router_pid)
                    baseline_run = (base + path, None, base_pid)
                    measured(*subject_run, seconds=1)  # warm both up before measuring
                    measured(*baseline_run, seconds=1)
                    runs = []
                    for i in range(PAIRS):  # interleaved pairs, alternating who goes first
                        first_router = i % 2 == 0
                        a = measured(*subject_run, seconds=SECONDS) if first_router else None
                        b = measured(*baseline_run, seconds=SECONDS)
                        runs.append((a or measured(*subject_run, seconds=SECONDS), b))
                # The pair with the median ratio represents the run; its ratio is the figure.
                runs.sort(key=lambda pair: pair[0][0].requests_per_s / pair[1][0].requests_per_s)
                (subject, subject_cpu), (baseline, baseline_cpu) = runs[len(runs) // 2]
                cpu_ratios = sorted(b[1] / a[1] for a, b in runs)
                rows = compare(f"return-router serve {path}", subject, baseline, "raw ASGI, same bytes").split("\n")
                print(f"{rows[0]} {subject_cpu:,.0f} | {cpu_ratios[len(runs) // 2]:.2f}x |")
                print(f"{rows[1]} {baseline_cpu:,.0f} | 1.00x |")
            generator = sorted(GENERATOR_CPU)[len(GENERATOR_CPU) // 2]
            print(f"\n(load: {subject.tool} at {generator:,.0f} µs of CPU per request, the median run: less than "
                  f"the servers need, so it is not what limits them; load average {os.getloadavg()[0]:.1f}, "
                  f"{os.cpu_count()} cores; {SECONDS:.0f} s per run, 32 connections, the median of {PAIRS} "
                  "interleaved pairs, 1 uvicorn worker each; the router logs as `serve` does by default, to a "
                  "pipe this process reads. CPU vs baseline: the baseline's CPU per request over the router's, the "
                  "median pair; on a busy machine it is the steadier figure)")


GENERATOR_CPU: list[float] = []  # the load generator's CPU µs per request, each run


def measured(url: str, host: str | None, pid: int, seconds: float) -> tuple[LoadResult, float]:
    """The load result and the server's CPU µs per request over the run (from /proc/<pid>/stat)."""
    before, children = cpu_seconds(pid), resource.getrusage(resource.RUSAGE_CHILDREN)
    result = load(url, host=host, seconds=seconds)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    requests = result.requests_per_s * seconds
    spent = after.ru_utime + after.ru_stime - children.ru_utime - children.ru_stime
    GENERATOR_CPU.append(1e6 * spent / requests)
    return result, 1e6 * (cpu_seconds(pid) - before) / requests
