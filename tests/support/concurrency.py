"""Many requests at once, and one call on a thread the test joins later."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import httpx

T = TypeVar("T")


def storm(requests: Sequence[tuple[str, str, dict[str, Any]]], timeout: float = 90) -> list[httpx.Response]:
    """Send every (method, url, httpx options) at once, each on its own connection; answers in order."""

    async def run() -> list[httpx.Response]:
        limits = httpx.Limits(max_connections=len(requests), max_keepalive_connections=0)
        async with httpx.AsyncClient(timeout=timeout, limits=limits) as client:
            return list(await asyncio.gather(*(client.request(m, u, **o) for m, u, o in requests)))

    return asyncio.run(run())


def in_background(fn: Callable[[], T]) -> Callable[[], T | BaseException]:
    """Run `fn` on a thread now; the returned callable joins it and gives its result or exception."""
    box: list[T | BaseException] = []

    def target() -> None:
        try:
            box.append(fn())
        except BaseException as exc:  # handed to the test, which decides whether it matters
            box.append(exc)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()

    def join(timeout: float = 90) -> T | BaseException:
        thread.join(timeout)
        assert box, "background call did not finish"
        return box[0]

    return join
