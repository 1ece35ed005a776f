"""Association files: return-router's fast path vs a raw ASGI app returning the same bytes."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import httpx

from ._load import TABLE_HEAD, compare, load, server_process

SECONDS = float(os.environ.get("BENCH_SECONDS", "5"))
HOST = "pay.example.com"


def main() -> None:
    from tests.router.conftest import BASE_CONFIG

    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "bench.toml"
        config.write_text(BASE_CONFIG + f'\n[storage]\nurl = "sqlite:///{tmp}/bench.db"\n')
        env = {"RETURN_ROUTER_CONFIG": str(config)}
        with server_process(["router.cli:app_factory", "--factory"], env) as router_url:
            paths = ["/.well-known/apple-app-site-association", "/.well-known/assetlinks.json"]
            bodies = {p: httpx.get(router_url + p, headers={"host": HOST}).content for p in paths}
            print(TABLE_HEAD)
            for path in paths:
                body_file = Path(tmp) / "body"
                body_file.write_bytes(bodies[path])
                with server_process(["tests.bench._baseline:raw_app"], {"BENCH_BODY_FILE": str(body_file)}) as base:
                    runs = []
                    for _ in range(2):  # interleave to share the machine's noise fairly
                        runs.append((load(router_url + path, host=HOST, seconds=SECONDS),
                                     load(base + path, seconds=SECONDS)))
                subject = max((r[0] for r in runs), key=lambda r: r.requests_per_s)
                baseline = max((r[1] for r in runs), key=lambda r: r.requests_per_s)
                print(compare(f"return-router {path}", subject, baseline, "raw ASGI, same bytes"))
            print(f"\n(load: {subject.tool}, {SECONDS:.0f} s per run, 32 connections, best of 2 interleaved runs, "
                  "1 uvicorn worker each)")
