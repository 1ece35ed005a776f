"""Baselines for the benchmarks: a raw ASGI app returning fixed bytes, and a bare Starlette page."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Any

BODY = Path(os.environ.get("BENCH_BODY_FILE", "/dev/null")).read_bytes()
# The same response headers as the subject (name → value), so both put the same bytes on the wire.
HEADERS = [(k.encode(), v.encode()) for k, v in json.loads(os.environ.get("BENCH_HEADERS", "{}")).items()]
# An upstream's answer time (the outbound benchmarks' stand-in for Amazon or a merchant's receiver).
LATENCY = float(os.environ.get("BENCH_LATENCY_MS", "0")) / 1000


async def raw_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """The least an ASGI server can do: the same bytes for every request."""
    if scope["type"] != "http":
        return
    if LATENCY:
        while (await receive()).get("more_body"):  # read the whole request body first, as a server does
            pass
        await asyncio.sleep(LATENCY)
    await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
    await send({"type": "http.response.body", "body": BODY})
