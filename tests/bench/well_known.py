"""Association files: return-router's fast path vs a raw ASGI app returning the same bytes."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import httpx

from ._load import TABLE_HEAD, compare, load, server_process

SECONDS = float(os.environ.get("BENCH_SECONDS", "3"))
PAIRS = 5
HOST = "pay.example.com"


def main() -> None:
    from tests.router.conftest import BASE_CONFIG

    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "bench.toml"
        config.write_text(BASE_CONFIG + f'\n[storage]\nurl = "sqlite:///{tmp}/bench.db"\n')
        env = {"RETURN_ROUTER_CONFIG": str(config)}
        with server_process(["router.cli:app_factory", "--factory"], env) as router_url:
            paths = ["/.well-known/apple-app-site-association", "/.well-known/assetlinks.json"]
            answers = {p: httpx.get(router_url + p, headers={"host": HOST}) for p in paths}
            print(TABLE_HEAD)
            for path in paths:
                body_file = Path(tmp) / "body"
                body_file.write_bytes(answers[path].content)
                headers = {k: v for k, v in answers[path].headers.items() if k != "date"}
                env = {"BENCH_BODY_FILE": str(body_file), "BENCH_HEADERS": json.dumps(headers)}
                with server_process(["tests.bench._baseline:raw_app"], env) as base:
                    load(router_url + path, host=HOST, seconds=1)  # warm both up before measuring
                    load(base + path, seconds=1)
                    runs = []
                    for i in range(PAIRS):  # interleaved pairs, alternating who goes first
                        first_router = i % 2 == 0
                        a = load(router_url + path, host=HOST, seconds=SECONDS) if first_router else None
                        b = load(base + path, seconds=SECONDS)
                        runs.append((a or load(router_url + path, host=HOST, seconds=SECONDS), b))
                # The pair with the median ratio represents the run; its ratio is the figure.
                runs.sort(key=lambda pair: pair[0].requests_per_s / pair[1].requests_per_s)
                subject, baseline = runs[len(runs) // 2]
                print(compare(f"return-router {path}", subject, baseline, "raw ASGI, same bytes"))
            print(f"\n(load: {subject.tool}, {SECONDS:.0f} s per run, 32 connections, the median of {PAIRS} "
                  "interleaved pairs, 1 uvicorn worker each)")
