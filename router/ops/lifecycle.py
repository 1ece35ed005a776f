"""Signals of a serving process: SIGHUP reloads the config, SIGTERM stops gracefully.

SIGTERM: uvicorn stops accepting and lets in-flight requests run for `[server] graceful_seconds`
(then cancels them); the app's lifespan then stops the background tasks (the reconciler ends after the
checkout at hand, the webhook worker once the deliveries it has in flight end) and `release_leases` frees
every lease this process still holds, so another instance finishes those checkouts at once, with the same
idempotency key. Each step of that stop is bounded (`within`; at most STOP_SECONDS in all, whatever Amazon,
the merchant's server or the store do), so that the process exits well before systemd's TimeoutStopSec
kills it: a task still busy is cancelled (a reconciler step's lease is released, or runs out; a webhook
delivery cut short stays pending and is sent again), and one warning line says what was cut short.

With `--workers N`, uvicorn's supervisor gets the signals: it sends SIGTERM to every worker, and
(patched here) forwards SIGHUP to every worker instead of restarting them, so each reloads in place;
each worker exits 0 after its graceful stop, its last log lines written (`run_worker`).
It also stops every worker, and returns as if asked to, when one fails to start; the stop signals it
handles are recorded here (`stop_requested`), so that `serve` can tell the two apart and exit 1.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import signal
import threading
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from router.redact import error_text
from router.store.base import Store, StoreError, abandoned

log = logging.getLogger("router.ops.lifecycle")

# The lifespan's stop, after uvicorn's graceful_seconds: seconds for each step, then what it runs is cancelled.
TASKS_SECONDS = 3.0  # the background tasks end their step (a webhook POST in flight: up to its timeout, 10 s)
RELEASE_SECONDS = 2.0  # release_leases: one UPDATE on a healthy store
CLOSE_SECONDS = 2.0  # the Amazon Pay client, the webhook client and the store, closed together
UNWIND_SECONDS = 0.5  # a cancelled step's cleanup (it is not waited for longer)
# At most this in all (the three steps run one after another): deploy/return-router.service's TimeoutStopSec
# must exceed graceful_seconds + STOP_SECONDS, with a margin for the exit itself.
STOP_SECONDS = TASKS_SECONDS + RELEASE_SECONDS + CLOSE_SECONDS + 3 * UNWIND_SECONDS
_stop_requested = threading.Event()  # the supervisor handled SIGTERM, SIGINT or SIGBREAK


@contextlib.contextmanager
def reload_on_hup(reload: Callable[[], object]) -> Iterator[None]:
    """While inside: SIGHUP calls `reload` on the running loop (main thread only; elsewhere a no-op)."""
    if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "SIGHUP"):
        yield
        return
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGHUP, reload)
    try:
        yield
    finally:
        loop.remove_signal_handler(signal.SIGHUP)


async def within(seconds: float, awaitable: Awaitable[Any], what: str) -> bool:
    """A step of the stop: `awaitable` for up to `seconds`, else it is cancelled (and given UNWIND_SECONDS
    to unwind, not more: a step that ignores the cancel cannot hold the exit) and one warning names `what`
    (no ids, no secrets). A step that fails is logged the same way: the stop goes on. Whether it ended."""
    task = asyncio.ensure_future(awaitable)
    done, _ = await asyncio.wait({task}, timeout=seconds)
    if not done:
        task.cancel()
        await asyncio.wait({task}, timeout=UNWIND_SECONDS)
        task.add_done_callback(abandoned)
        log.warning("stopping: %s took over %g s; cut short", what, seconds)
        return False
    if not task.cancelled() and task.exception() is not None:
        log.warning("stopping: %s failed (%s)", what, type(task.exception()).__name__)
        return False
    return True


async def release_leases(store: Store, *owners: str) -> None:
    """The last step of a stop: free what this process holds (logged, never raised: we are exiting)."""
    try:
        released = sum([await store.release_leases(owner) for owner in owners])
    except StoreError as exc:
        log.warning("could not release leases at stop (%s): they expire on their own", error_text(exc))
        return
    if released:
        log.info("released %d lease(s) at stop: another instance may finish them now", released)


def patch_supervisor() -> None:
    """Make uvicorn's multi-worker supervisor pass SIGHUP on to its workers (each reloads its config), and
    record the stop signals it handles (`stop_requested`)."""
    from uvicorn.supervisors import multiprocess as supervisor
    from uvicorn.supervisors.multiprocess import Multiprocess

    def handle_hup(self: Any) -> None:
        log.info("SIGHUP: asking %d worker(s) to reload the config", len(self.processes))
        for process in self.processes:
            if process.pid is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(process.pid, signal.SIGHUP)

    Multiprocess.handle_hup = handle_hup  # type: ignore[method-assign]
    spawning = vars(supervisor)  # its get_subprocess, imported from uvicorn._subprocess, makes each worker
    if not getattr(spawning["get_subprocess"], "stops_cleanly", False):
        spawning["get_subprocess"] = _stopping_cleanly(spawning["get_subprocess"])
    for name in ("handle_int", "handle_term", "handle_break"):
        handler = getattr(Multiprocess, name, None)
        if handler is not None and not getattr(handler, "records_stop", False):
            setattr(Multiprocess, name, _recording_stop(handler))


def _stopping_cleanly(get_subprocess: Callable[..., Any]) -> Callable[..., Any]:
    """uvicorn's get_subprocess, each worker running `run_worker` around its target (picklable: spawned)."""

    def make(config: Any, target: Callable[..., None], sockets: Any) -> Any:
        return get_subprocess(config, functools.partial(run_worker, target), sockets)

    make.stops_cleanly = True  # type: ignore[attr-defined]
    return make


def run_worker(target: Callable[..., None], sockets: Any = None) -> None:
    """A worker process: once uvicorn has shut it down it re-raises the SIGTERM or SIGINT it handled, with
    the handler it found; Python's defaults would kill it before its exit handlers write the last log
    lines (the 503s of a stop, the leases released, the access lines). These exit 0 instead."""
    exit_zero_on_term()
    signal.signal(signal.SIGINT, _exit_zero)
    target(sockets=sockets)


def _exit_zero(signum: int, frame: object) -> None:
    for stop in (signal.SIGTERM, signal.SIGINT):  # a second one (the supervisor's, after a killpg's) must
        signal.signal(stop, signal.SIG_IGN)      # not cut the exit handlers short
    raise SystemExit(0)


def _recording_stop(handler: Callable[[Any], None]) -> Callable[[Any], None]:
    def handle(self: Any) -> None:
        _stop_requested.set()
        handler(self)

    handle.records_stop = True  # type: ignore[attr-defined]
    return handle


def stop_requested() -> bool:
    """Whether uvicorn's supervisor stopped because a signal asked it to (else: a worker failed to start)."""
    return _stop_requested.is_set()


def exit_zero_on_term() -> None:
    """uvicorn re-raises the SIGTERM it handled once it has shut down; with this handler the process
    then exits with status 0 (a requested, clean stop, cleanup included) instead of dying by the signal."""

    signal.signal(signal.SIGTERM, _exit_zero)


class AnswerWhenCancelled:
    """ASGI middleware: a request still running when the graceful stop ends (uvicorn cancels it) gets
    `fallback`'s answer (a 503 that says to retry) instead of a bare 500 and a traceback in the log.
    Its lease is released by the lifespan right after, so the retry is answered at once elsewhere."""

    def __init__(self, app: ASGIApp, fallback: Callable[[Request], Response]) -> None:
        self.app = app
        self.fallback = fallback

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def watch(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, watch)
        except asyncio.CancelledError:
            if started:
                raise
            log.warning("stopping: answered a request still running after graceful_seconds with 503")
            await self.fallback(Request(scope))(scope, receive, send)
