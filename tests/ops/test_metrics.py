"""Every declared series is counted by the code that does the work (in-process app, real sockets)."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from prometheus_client import REGISTRY

from router import metrics
from router.app import create_app
from router.checkout.model import State
from router.checkout.reconciler import Reconciler
from router.checkout.service import CheckoutService
from router.config import load
from router.ops.instrument import count_store_errors
from router.ops.metrics_server import GAUGES_TIMEOUT, MetricsEndpoint
from router.ops.serve import webhook_gauges_store
from router.store import open_store
from router.store.base import NewEvent, StoreUnavailable
from router.webhooks.schedule import RetrySchedule
from router.webhooks.worker import WebhookWorker
from tests.store.tcp_proxy import TcpProxy
from tests.support import free_port, serve_app, wait_until
from tests.support.config import AUTH, HOST, TOKEN, WEBHOOK_SECRET, process_config
from tests.support.emulator import Emulator
from tests.support.processes import page_kind, return_path
from tests.support.receiver import Receiver
from tests.support.stores import checkout, postgres_backend

INSTAGRAM_IPHONE = ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
                    "Mobile/15E148 Instagram 322.0.2.27.108 (iPhone14,2; iOS 17_4; en_US; en)")


def value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


class Delta:
    """Values of some samples now, to compare after the action (the registry is shared by all tests)."""

    def __init__(self, *samples: tuple[str, dict[str, str]]) -> None:
        self.samples = samples
        self.before = [value(n, **labels) for n, labels in samples]

    def __call__(self) -> list[float]:
        return [value(n, **labels) - b for (n, labels), b in zip(self.samples, self.before, strict=True)]


def test_a_paid_return_counts_every_step(tmp_path: Path, emulator: Emulator, receiver: Receiver,
                                         key_files: tuple[Path, Path]) -> None:
    receiver.up()
    config = tmp_path / "router.toml"
    config.write_text(process_config(emulator.url, key_files[0], f"sqlite:///{tmp_path / 'r.db'}",
                                     webhook_url=receiver.url))
    settings = load(config, env={"RR_TEST_TOKEN": TOKEN, "RR_TEST_WEBHOOK_SECRET": WEBHOOK_SECRET})
    fin = {"operation": "finalizeCheckoutSession"}
    delta = Delta(
        ("return_router_returns_total", {"host": HOST, "flow": "success", "page": "success", "platform": "ios",
                                         "in_app": "instagram"}),
        ("return_router_finalize_total", {"outcome": "completed"}),
        ("return_router_amazon_requests_total", {**fin, "status": "429"}),
        ("return_router_amazon_requests_total", {**fin, "status": "200"}),
        ("return_router_amazon_throttled_total", fin),
        ("return_router_amazon_request_seconds_count", fin),
        ("return_router_api_requests_total", {"endpoint": "/v1/checkouts", "status": "201"}),
        ("return_router_api_requests_total", {"endpoint": "/v1/checkouts/{ref}", "status": "404"}),
        ("return_router_api_requests_total", {"endpoint": "other", "status": "404"}),
        ("return_router_webhook_deliveries_total", {"result": "delivered"}),
        ("return_router_returns_total", {"host": HOST, "flow": "cancel", "page": "canceled", "platform": "desktop",
                                         "in_app": "none"}),
    )
    passes = value("return_router_reconciler_passes_total", result="ok")
    commits = Delta(("return_router_sqlite_commit_seconds_count", {}), ("return_router_sqlite_writes_total", {}))
    with serve_app(create_app(settings)) as url:
        created = httpx.post(f"{url}/v1/checkouts", headers=AUTH, json={
            "merchantReference": "order-1", "chargeAmount": {"amount": "14.00", "currencyCode": "USD"},
            "paymentIntent": "AuthorizeWithCapture"})
        assert created.status_code == 201, created.text
        ref = created.json()["ref"]
        session_id = emulator.create_session(fail_status=429, fail_first_n=1)  # throttled once, then paid
        page = httpx.get(url + return_path(ref, session_id), headers={"host": HOST, "user-agent": INSTAGRAM_IPHONE},
                         timeout=30)
        assert (page.status_code, page_kind(page)) == (200, "success")
        assert httpx.get(f"{url}/v1/checkouts/{'x' * 32}", headers=AUTH).status_code == 404
        assert httpx.get(f"{url}/v1/no-such-endpoint").status_code == 404
        cancel = httpx.get(f"{url}/amazon-pay/cancel", headers={
            "host": HOST, "user-agent": "Mozilla/5.0 (Windows NT 10.0; Win64; x64) Firefox/126.0"})
        assert page_kind(cancel) == "canceled"
        wait_until(lambda: len(receiver.deliveries()) == 1, "the webhook")
        wait_until(lambda: delta()[9] == 1, "the delivery to be counted")
        wait_until(lambda: value("return_router_reconciler_passes_total", result="ok") > passes, "a reconciler pass")
        assert httpx.get(f"{url}/metrics").status_code == 404  # never on the public port
    assert delta() == [1, 1, 1, 1, 1, 2, 1, 1, 1, 1, 1]
    committed, writes = commits()
    # the create, bind + lease, settle, the cancel, the delivery's claim and record at least; group commit
    # may put several of them under one COMMIT, never one write under two
    assert committed >= 1 and writes >= 6 and writes >= committed, (committed, writes)
    assert value("return_router_build_info", version=metrics.package_version()) == 1


def test_returns_answered_unavailable_are_counted(tmp_path: Path, emulator: Emulator,
                                                  key_files: tuple[Path, Path]) -> None:
    """A store that cannot write gives the buyer the "unavailable" page: the returns metric says so."""
    db = tmp_path / "r.db"
    config = tmp_path / "router.toml"
    config.write_text(process_config(emulator.url, key_files[0], f"sqlite:///{db}?busy_timeout=0.3"))
    settings = load(config, env={"RR_TEST_TOKEN": TOKEN})
    labels = {"host": HOST, "page": "unavailable", "platform": "desktop", "in_app": "none"}
    delta = Delta(("return_router_returns_total", {**labels, "flow": "success"}),
                  ("return_router_returns_total", {**labels, "flow": "cancel"}))
    with serve_app(create_app(settings, background=False)) as url:
        created = httpx.post(f"{url}/v1/checkouts", headers=AUTH, json={
            "merchantReference": "order-1", "chargeAmount": {"amount": "14.00", "currencyCode": "USD"},
            "paymentIntent": "AuthorizeWithCapture"})
        ref = created.json()["ref"]
        blocker = sqlite3.connect(db, isolation_level=None)
        try:
            blocker.execute("BEGIN IMMEDIATE")  # another process holds the write lock past busy_timeout
            for path in (return_path(ref, emulator.create_session()), f"/amazon-pay/cancel?ref={ref}"):
                page = httpx.get(url + path, headers={"host": HOST, "user-agent": "Mozilla/5.0 (X11; Linux x86_64)"},
                                 timeout=30)
                assert (page.status_code, page_kind(page)) == (503, "unavailable"), page.text[-300:]
        finally:
            blocker.close()
    assert delta() == [1, 1]


async def test_store_errors_and_failed_reconciler_passes_are_counted(tmp_path: Path) -> None:
    store = count_store_errors(open_store(f"sqlite:///{tmp_path / 'never-opened.db'}"))
    delta = Delta(("return_router_store_errors_total", {"operation": "get_checkout"}),
                  ("return_router_store_errors_total", {"operation": "list_checkouts"}),
                  ("return_router_reconciler_passes_total", {"result": "error"}))
    with pytest.raises(StoreUnavailable):
        await store.get_checkout("ref")
    stop = asyncio.Event()
    reconciler = Reconciler(CheckoutService(store, amazon=None), interval=0.01)  # type: ignore[arg-type]
    task = asyncio.create_task(reconciler.run(stop))
    while delta()[2] < 1:
        await asyncio.sleep(0.01)
    stop.set()
    await task
    assert delta()[0] == 1 and delta()[1] >= 1 and delta()[2] >= 1


async def test_failed_webhook_attempts_count_as_retry_then_parked(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'w.db'}")
    await store.open()
    try:
        await store.create_checkout(checkout("r1"))
        await store.transition("r1", owner=None, now=1.0, state=State.COMPLETED,
                               events=[NewEvent("ev1", "checkout.completed", 1.0, b"{}")])
        dead_end = f"http://127.0.0.1:{free_port()}/hooks"  # nobody listens
        delta = Delta(("return_router_webhook_deliveries_total", {"result": "retry"}),
                      ("return_router_webhook_deliveries_total", {"result": "parked"}))
        clock = [10.0]
        async with WebhookWorker(store, dead_end, WEBHOOK_SECRET, clock=lambda: clock[0], timeout=2,
                                 schedule=RetrySchedule(delays=(1.0,), max_attempts=2)) as worker:
            assert await worker.run_once() == 0
            clock[0] = 100.0
            assert await worker.run_once() == 0
        assert delta() == [1, 1]
    finally:
        await store.close()


async def test_the_listener_reads_the_webhook_gauges_from_the_store(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'g.db'}"
    store = open_store(url)
    await store.open()
    created = time.time() - 3600
    await store.create_checkout(checkout("r1"))
    await store.transition("r1", owner=None, now=created, state=State.COMPLETED,
                           events=[NewEvent("ev1", "checkout.completed", created, b"{}")])
    await store.create_checkout(checkout("r2"))
    await store.transition("r2", owner=None, now=created + 1, state=State.COMPLETED,
                           events=[NewEvent("ev2", "checkout.completed", created + 1, b"{}")])
    assert "ev2" in [e.id for e in await store.claim_events("w", time.time(), 30.0, 10)]
    await store.event_failed("ev2", "w", time.time(), "HTTP 500", None)  # parked: out of the backlog
    await store.close()
    endpoint = MetricsEndpoint(url, None)
    with serve_app(endpoint.app, lifespan="off") as base:
        async with httpx.AsyncClient() as client:
            text = (await client.get(f"{base}/metrics")).text
            assert (await client.get(f"{base}/other")).status_code == 404
    await endpoint.close()
    samples = dict(line.split(" ", 1) for line in text.splitlines() if line and not line.startswith("#"))
    assert float(samples["return_router_webhook_backlog"]) == 1
    assert float(samples["return_router_webhook_oldest_pending_seconds"]) >= 3600
    assert float(samples["return_router_webhook_parked"]) == 1
    assert any(name.startswith("return_router_build_info{") for name in samples)



async def test_a_stalled_database_leaves_the_gauges_out_within_the_scrape_timeout() -> None:
    """A database that neither answers nor resets (a hung network) held the scrape for the connect and
    command timeouts, past Prometheus's 10 s scrape timeout: every other series was lost with it."""
    async with postgres_backend() as pg:
        target = urlsplit(pg.url)
        proxy = TcpProxy(target.hostname or "127.0.0.1", target.port or 5432)
        port = await proxy.start()
        endpoint = MetricsEndpoint(pg.url.replace(target.netloc.rsplit("@", 1)[-1], f"127.0.0.1:{port}"), None)
        try:
            with serve_app(endpoint.app, lifespan="off") as base:
                async with httpx.AsyncClient(timeout=30) as client:
                    assert "return_router_webhook_backlog" in (await client.get(f"{base}/metrics")).text
                    await proxy.freeze()
                    started = time.monotonic()
                    stalled = await client.get(f"{base}/metrics")
                    took = time.monotonic() - started
        finally:
            await proxy.stop()
    assert stalled.status_code == 200 and "return_router_build_info" in stalled.text
    assert "return_router_webhook_backlog" not in stalled.text
    assert GAUGES_TIMEOUT - 0.5 < took < GAUGES_TIMEOUT + 2, took


def test_no_webhook_gauges_while_webhooks_are_off(tmp_path: Path, key_files: tuple[Path, Path]) -> None:
    """With webhooks off every event waits in the outbox: a backlog gauge would raise a false alert."""
    env = {"RR_TEST_TOKEN": TOKEN, "RR_TEST_WEBHOOK_SECRET": WEBHOOK_SECRET}
    found = {}
    for webhook_url in (None, "http://127.0.0.1:9/hooks"):
        config = tmp_path / "router.toml"
        config.write_text(process_config("http://127.0.0.1:9", key_files[0], f"sqlite:///{tmp_path / 'r.db'}",
                                         webhook_url=webhook_url))
        found[webhook_url] = webhook_gauges_store(load(config, env=env))
    assert found == {None: None, "http://127.0.0.1:9/hooks": f"sqlite:///{tmp_path / 'r.db'}"}
    endpoint = MetricsEndpoint(None, None)
    with serve_app(endpoint.app, lifespan="off") as base:
        text = httpx.get(f"{base}/metrics").text
    assert "return_router_build_info" in text and "webhook_backlog" not in text and "webhook_parked" not in text
