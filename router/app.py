"""create_app(settings) → Starlette: wiring only, no logic."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import httpx
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from router import tracing
from router.access_log import take_over
from router.amazon_pay import AmazonPayClient, ClientConfig, RetryPolicy, create_emulator_app, generate_key_pair
from router.amazon_pay.breaker import CircuitBreaker
from router.amazon_pay.keys import load_private_key, load_public_key
from router.amazon_pay.quota import Limit, Quota, limits_for
from router.checkout.button import ButtonSigner
from router.checkout.reconciler import Reconciler
from router.checkout.service import CheckoutService
from router.config import Settings
from router.ops import lifecycle
from router.ops.instrument import ApiMetrics, count_store_errors
from router.ops.reload import ConfigHolder
from router.redact import error_text
from router.startup import open_patiently
from router.store import open_store
from router.store.base import Store, StoreUnavailable
from router.web.api import Api, error_response
from router.web.assets import assets
from router.web.association import AssociationFiles, AssociationMiddleware
from router.web.demo import Demo
from router.web.failsafe import Failsafe
from router.web.fallback import PageMethods, json_fallback
from router.web.flows import Flows
from router.web.front import FrontDoor
from router.web.guard import RequestGuard
from router.webhooks.worker import WebhookWorker

log = logging.getLogger("router.app")

EMULATOR_BASE = "http://amazon-pay-emulator.invalid"
EMULATOR_KEY_ID = "SANDBOX-RETURN-ROUTER-EMULATOR"
READY_TIMEOUT = 2.0  # seconds /readyz waits for the store's heartbeat write


@dataclass
class Runtime:
    """Everything with a lifecycle, created by create_app and started by its lifespan."""

    settings: Settings
    store: Store
    amazon: AmazonPayClient
    service: CheckoutService
    emulator: Starlette | None = None
    webhooks: WebhookWorker | None = None
    reconciler: Reconciler | None = None
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    stop: asyncio.Event = field(default_factory=asyncio.Event)

    def apply_merchant(self, settings: Settings) -> None:
        """After a reload: the webhook worker posts to the new URL with the new secret from its next delivery."""
        merchant = settings.merchant
        if self.webhooks is None:
            if merchant.webhook_url:
                log.warning("reload: webhooks were off at start; turning them on takes a restart")
            return
        if merchant.webhook_url and merchant.webhook_secret:
            self.webhooks.retarget(merchant.webhook_url, merchant.webhook_secret)
        else:
            log.warning("reload: turning webhooks off takes a restart; they go on to the old URL until then")


def build_amazon(settings: Settings) -> tuple[AmazonPayClient, Starlette | None, ButtonSigner | None]:
    """The real client from [amazon_pay], or one wired in-process to the built-in emulator."""
    ap = settings.amazon_pay
    if ap is not None:
        key = load_private_key(ap.private_key_pem)
        retry = RetryPolicy(max_attempts=ap.max_attempts, connect_timeout=ap.connect_timeout,
                            read_timeout=ap.read_timeout, deadline=ap.deadline)
        config = ClientConfig(public_key_id=ap.public_key_id, private_key=key, region=ap.region,
                              environment=ap.environment,  # type: ignore[arg-type]
                              algorithm=ap.algorithm, endpoint=ap.endpoint, retry=retry)
        signer = ButtonSigner(ap.store_id, ap.public_key_id, key, ap.algorithm) if ap.store_id else None
        overrides = {op: Limit(burst, rate) for op, burst, rate in ap.quota_overrides}
        limits = limits_for(config.key_environment or config.environment or "live",
                            fraction=ap.quota_fraction, overrides=overrides)
        quota = Quota(limits, background_share=ap.background_share, max_wait=ap.quota_wait_seconds)
        return AmazonPayClient(config, quota=quota, breaker=CircuitBreaker()), None, signer
    private_pem, public_pem = generate_key_pair()
    emulator = create_emulator_app({EMULATOR_KEY_ID: load_public_key(public_pem)})
    config = ClientConfig(public_key_id=EMULATOR_KEY_ID, private_key=load_private_key(private_pem),
                          region="jp", endpoint=EMULATOR_BASE,
                          retry=RetryPolicy(max_attempts=2, base_delay=0.2, max_delay=0.5, deadline=10))
    client = AmazonPayClient(config, transport=httpx.ASGITransport(app=emulator))
    return client, emulator, None


def create_app(settings: Settings, *, background: bool = True) -> Starlette:
    if settings.tracing is not None:  # first: traced() and the request middleware wrap only when it is on
        tracing.enable(settings.tracing.otlp_endpoint, service_name=settings.tracing.service_name)
    store = tracing.traced(count_store_errors(open_store(settings.storage.url)), "store",
                           **{"db.system": settings.storage.url.partition(":")[0]})
    amazon, emulator, button = build_amazon(settings)
    webhooks = None
    if background and settings.merchant.webhook_url and settings.merchant.webhook_secret:
        webhooks = WebhookWorker(store, settings.merchant.webhook_url, settings.merchant.webhook_secret)
    service = CheckoutService(store, tracing.traced(amazon, "amazon_pay"), ttl_seconds=settings.checkout.ttl_seconds,
                              lease_seconds=settings.checkout.lease_seconds,
                              on_event=webhooks.notify if webhooks else None)
    runtime = Runtime(settings, store, amazon, service, emulator, webhooks)
    if background:
        runtime.reconciler = Reconciler(service, interval=settings.checkout.reconcile_interval_seconds,
                                        resume_after=settings.checkout.resume_after_seconds,
                                        breaker=amazon.breaker,
                                        retain_seconds=settings.checkout.retain_seconds,
                                        events_retain_seconds=settings.checkout.events_retain_seconds)
    holder = ConfigHolder(settings, lambda s: edge_app(s, runtime, button), on_swap=runtime.apply_merchant)

    async def stop() -> None:
        """Every step bounded (lifecycle.within): at most lifecycle.STOP_SECONDS after the graceful period."""
        runtime.stop.set()
        within = lifecycle.within
        await asyncio.gather(*(within(lifecycle.TASKS_SECONDS, task, task.get_name()) for task in runtime.tasks))
        leases = lifecycle.release_leases(store, service.owner, *([webhooks.owner] if webhooks else []))
        await within(lifecycle.RELEASE_SECONDS, leases, "releasing the leases (they run out on their own)")
        closes = [within(lifecycle.CLOSE_SECONDS, amazon.aclose(), "closing the Amazon Pay client"),
                  within(lifecycle.CLOSE_SECONDS, store.close(), "closing the store")]
        if runtime.webhooks is not None:
            closes.append(within(lifecycle.CLOSE_SECONDS, runtime.webhooks.aclose(), "closing the webhook client"))
        await asyncio.gather(*closes)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await open_patiently(store, settings.storage.url, settings.storage.connect_retry_seconds, log.warning)
        if runtime.reconciler is not None:
            runtime.tasks.append(asyncio.create_task(runtime.reconciler.run(runtime.stop), name="the reconciler"))
        if runtime.webhooks is not None:
            runtime.tasks.append(asyncio.create_task(runtime.webhooks.run(runtime.stop), name="the webhook worker"))
        try:
            with lifecycle.reload_on_hup(holder.reload) if not settings.demo else contextlib.nullcontext():
                yield
        finally:
            await stop()

    app = Starlette(lifespan=lifespan)
    # Every request goes to the current config's app. Not a Mount: its path pattern (`.*`) stops at a
    # newline, and an encoded %0A in a path must reach the edge app to get its clear 400.
    app.router.default = holder
    app.state.runtime = runtime
    app.state.config = holder
    return app


class HttpToHolder:
    """Requests straight to the config holder, the lifespan to the Starlette app: its error middleware and
    router only passed each request on to the holder, whose app has all of its own."""

    def __init__(self, app: Starlette, holder: ConfigHolder) -> None:
        self.app, self.holder = app, holder

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await (self.holder if scope["type"] == "http" else self.app)(scope, receive, send)


def serving_app(settings: Settings) -> ASGIApp:
    """What `serve` runs: create_app behind the access log's writer, the association files answered in
    front of both (router/web/front.py)."""
    app = create_app(settings)
    holder: ConfigHolder = app.state.config
    logged, note = take_over(HttpToHolder(app, holder))
    if tracing.enabled():  # every request gets its span (tracing.Requests, inside the layers)
        return logged
    return FrontDoor(logged, lambda: holder.settings, note)


def edge_app(settings: Settings, runtime: Runtime, button: ButtonSigner | None) -> ASGIApp:
    """What a request sees, built from the settings a reload may replace (routes, apps, pages, merchant)."""
    store, service, emulator = runtime.store, runtime.service, runtime.emulator
    table = settings.route_table
    flows = Flows(service, settings)
    held = runtime.settings.amazon_pay  # [amazon_pay] is held by the process: a reload does not change it
    region = held.region if held is not None else None
    api = Api(service, table, settings.merchant.api_token, button, https_only=not settings.demo, region=region)
    demo = Demo(service, table, emulator) if emulator is not None and settings.demo else None

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(request: Request) -> Response:
        try:  # a write, not a read: a full disk, a locked file or a read-only replica is not ready
            await store.check_writable(time.time(), READY_TIMEOUT)
        except StoreUnavailable:
            return JSONResponse({"status": "unavailable", "store": "not writable"}, status_code=503,
                                headers={"retry-after": "5"})
        return JSONResponse({"status": "ok"})

    api_routes = api.routes()
    routes = [
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        *api_routes,
        json_fallback("/v1", api_routes),
        *(demo.routes() if demo else []),
        Route("/{path:anypath}", flows.dispatch, methods=["GET", "HEAD"]),
        Route("/{path:anypath}", PageMethods(lambda request: flows.error_page(
            request, "bad_request", status=405, reason_key="reason.method"))),
    ]

    async def unavailable(request: Request, exc: Exception) -> Response:
        log.warning("store unavailable: %s", error_text(exc))
        if request.url.path.startswith("/v1/"):
            return error_response(503, "unavailable", "the service is briefly unavailable; retry shortly",
                                  {"retry-after": "5"})
        return flows.unavailable(request, exc)

    def stopping(request: Request) -> Response:
        if request.url.path.startswith("/v1/"):
            return error_response(503, "unavailable", "the service is restarting; retry shortly", {"retry-after": "2"})
        return flows.error_page(request, "unavailable")

    async def internal_error(request: Request, exc: Exception) -> Response:
        if request.url.path.startswith("/v1/"):
            return error_response(500, "internal_error", "something went wrong on our side")
        return flows.error_page(request, "error", status=500)

    def refused(request: Request, status: int, reason_key: str) -> Response:
        if request.url.path.startswith("/v1/"):
            return error_response(status, "bad_request", assets().catalogs["en"][reason_key])
        return flows.error_page(request, "bad_request", status=status, reason_key=reason_key)

    return Starlette(
        routes=routes,
        middleware=[*([Middleware(tracing.Requests)] if tracing.enabled() else []),
                    Middleware(Failsafe, handler=internal_error),
                    Middleware(lifecycle.AnswerWhenCancelled, fallback=stopping),
                    Middleware(RequestGuard, refuse=refused, max_headers=settings.server.max_headers,
                               max_header_bytes=settings.server.max_header_bytes),
                    Middleware(AssociationMiddleware, files=AssociationFiles(settings)),
                    Middleware(ApiMetrics, routes=api_routes)],
        exception_handlers={StoreUnavailable: unavailable, Exception: internal_error},
    )
