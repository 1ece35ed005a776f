"""The metrics listener: one per `serve` (in the serving or supervising process), never on the public port.

It runs its own small uvicorn server on a thread of the process that called `serve`: with one
worker that process serves the requests too and its registry is read directly; with `--workers N`
it is uvicorn's supervisor, and the workers' values are read from PROMETHEUS_MULTIPROC_DIR (a fresh
private directory made here and removed at exit). Files of workers that are gone are marked dead at
scrape time (their counters stay counted; their live gauges go). The webhook gauges are read from
the store at scrape time, through a store connection of the listener's own, and only while webhooks are
on: with them off, events wait in the outbox by design, and a backlog gauge would only raise alerts.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import socket
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import uvicorn
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from router.metrics import PREFIX, STORE_GAUGES
from router.redact import error_text
from router.store import open_store
from router.store.base import Store, StoreError

log = logging.getLogger("router.ops.metrics")
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
# The webhook gauges' share of a scrape: a stalled database (no answer, no reset) held it for the connect and
# command timeouts (40 s), past Prometheus's default scrape_timeout of 10 s: the whole scrape failed.
GAUGES_TIMEOUT = 3.0


class _Snapshot:
    """A collector yielding gauges computed just before (collect() itself must be synchronous)."""

    def __init__(self, families: list[GaugeMetricFamily]) -> None:
        self.families = families

    def collect(self) -> Iterator[GaugeMetricFamily]:
        yield from self.families


async def store_gauges(store: Store, now: float) -> list[GaugeMetricFamily]:
    stats = await store.outbox_stats()
    age = 0.0 if stats.oldest_pending_created is None else max(0.0, now - stats.oldest_pending_created)
    values = {"webhook_backlog": stats.pending, "webhook_oldest_pending_seconds": age, "webhook_parked": stats.parked}
    return [GaugeMetricFamily(f"{PREFIX}{name}", STORE_GAUGES[f"{PREFIX}{name}"], value=value)
            for name, value in values.items()]


def sweep_dead_workers(directory: Path) -> None:
    """mark_process_dead for every pid with files here that no longer runs."""
    pids = {name.rsplit("_", 1)[-1].removesuffix(".db") for name in os.listdir(directory)}
    for pid in filter(str.isdigit, pids):
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            mark_process_dead(int(pid), str(directory))  # type: ignore[no-untyped-call]
        except PermissionError:  # pragma: no cover - alive, someone else's
            pass


class MetricsEndpoint:
    """GET /metrics: the workers' series plus the webhook gauges from a store connection of its own
    (`store_url`; None: webhooks are off, no gauges).

    The store is opened at the first scrape (and again after a failure), so a database that is down
    at start only leaves the gauges out until it is back.
    """

    def __init__(self, store_url: str | None, multiproc_dir: Path | None) -> None:
        self.store_url = store_url
        self.multiproc_dir = multiproc_dir
        self.store: Store | None = None
        self._reading: asyncio.Task[list[GaugeMetricFamily]] | None = None
        self.app = Starlette(routes=[Route("/metrics", self.scrape, methods=["GET"]),
                                     Route("/{p:path}", self.not_found)])

    async def scrape(self, request: Request) -> Response:
        registry = REGISTRY  # one worker: this process's own series
        if self.multiproc_dir is not None:
            sweep_dead_workers(self.multiproc_dir)
            registry = CollectorRegistry()
            MultiProcessCollector(registry, str(self.multiproc_dir))  # type: ignore[no-untyped-call]
        body = generate_latest(registry)
        if self.store_url is None:
            return Response(body, media_type=CONTENT_TYPE_LATEST)
        try:
            families = await asyncio.wait_for(asyncio.shield(self._reading_gauges()), GAUGES_TIMEOUT)
        except (StoreError, TimeoutError) as exc:  # the other series are still worth a scrape; the gap shows
            log.warning("metrics: the store did not answer (%s)", error_text(exc))
            return Response(body, media_type=CONTENT_TYPE_LATEST)
        gauges = CollectorRegistry()
        gauges.register(_Snapshot(families))
        return Response(body + generate_latest(gauges), media_type=CONTENT_TYPE_LATEST)

    def _reading_gauges(self) -> asyncio.Task[list[GaugeMetricFamily]]:
        """The read in flight, or a new one. One that outlasts a scrape goes on in the background (cancelling
        it would wait for the stalled connection's cleanup), and later scrapes do not pile more on it."""
        if self._reading is None or self._reading.done():
            self._reading = asyncio.create_task(self._gauges_now())
            self._reading.add_done_callback(_retrieved)
        return self._reading

    async def _gauges_now(self) -> list[GaugeMetricFamily]:
        try:
            return await store_gauges(await self._store(), time.time())
        except StoreError:
            await self.close()  # opened again at the next scrape
            raise

    async def not_found(self, request: Request) -> Response:
        return Response("not found\n", status_code=404, media_type="text/plain")

    async def _store(self) -> Store:
        if self.store is None:
            assert self.store_url is not None
            store = open_store(self.store_url)
            await store.open()
            self.store = store
        return self.store

    async def close(self) -> None:
        store, self.store = self.store, None
        if store is not None:
            await store.close()

    async def serve(self, server: uvicorn.Server, sock: socket.socket) -> None:
        try:
            await server.serve(sockets=[sock])
        finally:
            if self._reading is not None:
                self._reading.cancel()
            await self.close()


def _retrieved(task: asyncio.Task[Any]) -> None:
    """Its error was logged by the scrape that waited for it, if any: not "never retrieved" again."""
    if not task.cancelled():
        task.exception()


LISTENER_THREAD = "metrics-listener"


class _ListenerLifeQuiet(logging.Filter):
    """The listener's own uvicorn server logs its start and stop as the buyers' server does ("Started
    server process [pid]" twice in one process reads as two servers): only its warnings and errors stay."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.threadName != LISTENER_THREAD or record.levelno >= logging.WARNING


@contextlib.contextmanager
def metrics_listener(listen: tuple[str, int] | None, store_url: str | None, workers: int) -> Iterator[None]:
    """Serve /metrics on `listen` while inside (None: no listener); with workers > 1, set up multiprocess mode.
    `store_url`: where the webhook gauges are read (None: webhooks are off, no gauges).

    A listener that cannot bind is logged as an error and skipped: the buyers' service still starts.
    """
    directory = Path(tempfile.mkdtemp(prefix="return-router-metrics-")) if workers > 1 else None
    if directory is not None:
        os.environ[MULTIPROC_ENV] = str(directory)  # inherited by the workers uvicorn spawns
    server, thread = _start(listen, store_url, directory) if listen is not None else (None, None)
    try:
        yield
    finally:
        if server is not None and thread is not None:
            server.should_exit = True
            thread.join(timeout=10)
        if directory is not None:
            os.environ.pop(MULTIPROC_ENV, None)
            shutil.rmtree(directory, ignore_errors=True)


def _start(listen: tuple[str, int], store_url: str | None, directory: Path | None
           ) -> tuple[uvicorn.Server | None, threading.Thread | None]:
    host, port = listen
    try:
        sock = socket.create_server((host, port), family=socket.AF_INET6 if ":" in host else socket.AF_INET)
    except OSError as exc:
        log.error("metrics listener %s:%d not started: %s", host, port, exc.strerror or exc)
        return None, None
    endpoint = MetricsEndpoint(store_url, directory)
    # No lifespan and no logging config of its own: the serving process's log stays as it is.
    config = uvicorn.Config(endpoint.app, log_config=None, log_level=None, access_log=False, server_header=False,
                            lifespan="off")
    server = uvicorn.Server(config)
    quiet = logging.getLogger("uvicorn.error")
    if not any(isinstance(f, _ListenerLifeQuiet) for f in quiet.filters):
        quiet.addFilter(_ListenerLifeQuiet())
    thread = threading.Thread(target=lambda: asyncio.run(endpoint.serve(server, sock)), name=LISTENER_THREAD,
                              daemon=True)
    thread.start()
    log.info("metrics on http://%s:%d/metrics", host, port)
    return server, thread
