"""create_app(settings) → Starlette: wiring only, no logic."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import httpx
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from router.amazon_pay import AmazonPayClient, ClientConfig, RetryPolicy, create_emulator_app, generate_key_pair
from router.amazon_pay.keys import load_private_key, load_public_key
from router.checkout.button import ButtonSigner
from router.checkout.reconciler import Reconciler
from router.checkout.service import CheckoutService
from router.config import Settings
from router.metrics import METRICS
from router.store import open_store
from router.store.base import Store, StoreUnavailable
from router.web.api import Api, error_response
from router.web.association import AssociationFiles, AssociationMiddleware
from router.web.demo import Demo
from router.web.flows import Flows
from router.webhooks.worker import WebhookWorker

log = logging.getLogger("router.app")

EMULATOR_BASE = "http://amazon-pay-emulator.invalid"
EMULATOR_KEY_ID = "SANDBOX-RETURN-ROUTER-EMULATOR"


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
        return AmazonPayClient(config), None, signer
    private_pem, public_pem = generate_key_pair()
    emulator = create_emulator_app({EMULATOR_KEY_ID: load_public_key(public_pem)})
    config = ClientConfig(public_key_id=EMULATOR_KEY_ID, private_key=load_private_key(private_pem),
                          region="jp", endpoint=EMULATOR_BASE,
                          retry=RetryPolicy(max_attempts=2, base_delay=0.2, max_delay=0.5, deadline=10))
    client = AmazonPayClient(config, transport=httpx.ASGITransport(app=emulator))
    return client, emulator, None


def create_app(settings: Settings, *, background: bool = True) -> Starlette:
    store = open_store(settings.storage.url)
    amazon, emulator, button = build_amazon(settings)
    webhooks = None
    if background and settings.merchant.webhook_url and settings.merchant.webhook_secret:
        webhooks = WebhookWorker(store, settings.merchant.webhook_url, settings.merchant.webhook_secret)
    service = CheckoutService(store, amazon, ttl_seconds=settings.checkout.ttl_seconds,
                              lease_seconds=settings.checkout.lease_seconds,
                              on_event=webhooks.notify if webhooks else None)
    runtime = Runtime(settings, store, amazon, service, emulator, webhooks)
    if background:
        runtime.reconciler = Reconciler(service, interval=settings.checkout.reconcile_interval_seconds,
                                        resume_after=settings.checkout.resume_after_seconds,
                                        retain_seconds=settings.checkout.retain_seconds)
    table = settings.route_table
    flows = Flows(service, settings)
    api = Api(service, table, settings.merchant.api_token, button, https_only=not settings.demo)
    demo = Demo(service, table, emulator) if emulator is not None and settings.demo else None

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(request: Request) -> Response:
        try:
            await store.ping()
        except StoreUnavailable:
            return JSONResponse({"status": "unavailable", "store": "unreachable"}, status_code=503)
        return JSONResponse({"status": "ok"})

    async def metrics(request: Request) -> Response:
        return PlainTextResponse(METRICS.render(), media_type="text/plain; version=0.0.4")

    routes = [
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
        *api.routes(),
        *(demo.routes() if demo else []),
        Route("/{path:path}", flows.dispatch, methods=["GET", "HEAD"]),
    ]

    async def unavailable(request: Request, exc: Exception) -> Response:
        log.warning("store unavailable: %s", type(exc).__name__)
        if request.url.path.startswith("/v1/"):
            return error_response(503, "unavailable", "the service is briefly unavailable; retry shortly",
                                  {"retry-after": "5"})
        return flows.error_page(request, "unavailable")

    async def internal_error(request: Request, exc: Exception) -> Response:
        if request.url.path.startswith("/v1/"):
            return error_response(500, "internal_error", "something went wrong on our side")
        return flows.error_page(request, "error", status=500)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await store.open()
        if runtime.reconciler is not None:
            runtime.tasks.append(asyncio.create_task(runtime.reconciler.run(runtime.stop)))
        if runtime.webhooks is not None:
            runtime.tasks.append(asyncio.create_task(runtime.webhooks.run(runtime.stop)))
        try:
            yield
        finally:
            runtime.stop.set()
            await asyncio.gather(*runtime.tasks, return_exceptions=True)
            await amazon.aclose()
            if runtime.webhooks is not None:
                await runtime.webhooks.aclose()
            await store.close()

    app = Starlette(
        routes=routes,
        middleware=[Middleware(AssociationMiddleware, files=AssociationFiles(settings))],
        exception_handlers={StoreUnavailable: unavailable, Exception: internal_error},
        lifespan=lifespan,
    )
    app.state.runtime = runtime
    return app
