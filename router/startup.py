"""What `serve` and `check` do before serving: reach the store, describe it without its password.

An unreachable database at start is one line and a bounded wait with backoff, never a traceback. Each
worker's own open waits the same way (`open_patiently`): a worker uvicorn restarts while the database
is briefly locked or down must not fail its start, which would stop every worker.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

from router.backoff import Backoff
from router.store import open_store
from router.store.base import MigrationLocked, Store, StoreError, StoreUnavailable

Say = Callable[[str], None]
Attempt = Callable[[], Awaitable["str | None"]]  # None when it worked, else the problem's line


def store_label(url: str) -> str:
    """The store URL as an operator may see it in a log: no user, no password, no query."""
    parts = urlsplit(url)
    if parts.scheme == "sqlite":
        return f"sqlite {parts.path.removeprefix('/') or url}"
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{parts.hostname or 'localhost'}{port}{parts.path}"


async def try_store(url: str) -> str | None:
    """Open and close the store once (migrations included); None when it works, else why not."""
    return await _try_open(open_store(url), url, close=True)


async def _try_open(store: Store, url: str, *, close: bool) -> str | None:
    try:
        await store.open()
        if close:
            await store.close()
    except MigrationLocked as exc:  # reachable: waiting for another instance
        return f"storage: {store_label(url)}: {exc}"
    except (StoreError, OSError, ValueError) as exc:
        return f"storage: cannot reach {store_label(url)} ({type(exc).__name__}: {_first_line(exc)})"
    return None


async def wait_for_store(
    url: str,
    retry_seconds: float,
    say: Say,
    *,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> bool:
    """Retry `try_store` with exponential backoff (0.5 s doubling to 10 s, jittered) for up to
    `retry_seconds`. Says one line when the store is down and one when it gives up; True once it works."""
    return await _retry(lambda: try_store(url), retry_seconds, say, sleep=sleep, clock=clock)


async def open_patiently(store: Store, url: str, retry_seconds: float, say: Say) -> None:
    """Open `store` itself, retrying as `wait_for_store` does; StoreUnavailable once the bound passed."""
    if not await _retry(lambda: _try_open(store, url, close=False), retry_seconds, say):
        raise StoreUnavailable(f"storage: cannot reach {store_label(url)} after {retry_seconds:g} s")


async def _retry(attempt: Attempt, retry_seconds: float, say: Say, *,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
                 clock: Callable[[], float] = time.monotonic) -> bool:
    deadline = clock() + retry_seconds
    backoff = Backoff(0.5, 10.0, (0.8, 1.2))
    tries = 0
    problem = await attempt()
    if problem is None:
        return True
    say(f"{problem}; retrying for up to {retry_seconds:g} s")
    while clock() < deadline:
        tries += 1
        await sleep(min(backoff.delay(tries), max(0.0, deadline - clock())))
        problem = await attempt()
        if problem is None:
            say("storage: reachable again; starting")
            return True
    say(f"{problem}; gave up after {retry_seconds:g} s")
    return False


def wait_for_store_before_serving(url: str, retry_seconds: float, say: Say) -> bool:
    """`wait_for_store` on a thread of its own, so the main thread's asyncio state stays untouched
    for uvicorn: with the loop run and closed on the main thread first, webhook deliveries of the
    served process were recorded late (tests/durability/test_pending.py failed 3 runs in 4)."""
    result: list[bool] = []
    thread = threading.Thread(target=lambda: result.append(asyncio.run(wait_for_store(url, retry_seconds, say))),
                              name="store-preflight", daemon=True)  # a stop meanwhile need not wait for it
    thread.start()
    thread.join()
    return bool(result and result[0])


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else "no details"
