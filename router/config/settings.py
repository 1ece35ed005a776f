"""The settings types: what a loaded config is. Frozen; secrets kept out of repr."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from router.checkout.model import SESSION_ID_PARAMS
from router.ops.settings import OpsSettings
from router.web.branding import PagesSettings
from router.web.routing import Flow, Route, RouteTable
from well_known import PathClaim, build_aasa


class ConfigError(Exception):
    """One or more problems, one line each: "<file>: <key>: <message>"."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


@dataclass(frozen=True)
class IosSettings:
    app_ids: tuple[str, ...]
    app_store_id: str | None = None
    open_in_app_host: str | None = None  # a second associated host: a tap there opens the app
    webcredentials: bool = False
    appclips: tuple[str, ...] = ()


@dataclass(frozen=True)
class AndroidSettings:
    package: str
    sha256_cert_fingerprints: tuple[str, ...]
    play_store_url: str | None = None
    dynamic_rules: bool = True


@dataclass(frozen=True)
class AmazonPaySettings:
    public_key_id: str
    private_key_pem: bytes = field(repr=False)
    region: str = "na"
    environment: str | None = None
    algorithm: str = "AMZN-PAY-RSASSA-PSS-V2"
    store_id: str | None = None
    endpoint: str | None = None
    max_attempts: int = 4
    connect_timeout: float = 5.0
    read_timeout: float = 30.0
    deadline: float = 60.0
    # Amazon's quotas, per process (see README "Amazon's quotas"): () = Amazon's documented figures.
    quota_overrides: tuple[tuple[str, float, float], ...] = ()  # (operation, burst, per second)
    quota_fraction: float = 1.0  # this process's share of the merchant's quota: 1/N with N instances
    background_share: float = 0.5  # at most this share of it for calls no buyer caused
    quota_wait_seconds: float = 2.0  # how long a buyer waits for a token before the unavailable page


# [amazon_pay] key → the operation whose quota it overrides.
QUOTA_KEYS = {"finalize_quota": "finalizeCheckoutSession", "get_checkout_session_quota": "getCheckoutSession",
              "get_charge_quota": "getCharge"}


@dataclass(frozen=True)
class MerchantSettings:
    name: str = "Shop"
    api_token: str | None = field(default=None, repr=False)
    webhook_url: str | None = None
    webhook_secret: str | None = field(default=None, repr=False)
    shop_url: str | None = None  # where "back to the shop" links go


@dataclass(frozen=True)
class StorageSettings:
    url: str = "sqlite:///return-router.db"
    connect_retry_seconds: float = 60.0  # `serve` retries an unreachable database this long, then exits 1


@dataclass(frozen=True)
class CheckoutSettings:
    ttl_seconds: float = 24 * 3600  # Amazon cancels unconfirmed sessions after 24 hours
    lease_seconds: float = 90.0  # a finalize holder that dies loses the lease after this long
    reconcile_interval_seconds: float = 2.0  # how often the reconciler looks for work
    resume_after_seconds: float = 15.0  # a bound, unfinished checkout untouched this long is resumed
    retain_seconds: float = 30 * 86400  # buyer details (name, masked email, address) are purged after this
    events_retain_seconds: float = 30 * 86400  # delivered webhook events are deleted this long after delivery


@dataclass(frozen=True)
class ServerSettings:
    """[server]: limits for clients that hold connections (see router/web/server.py)."""

    header_timeout_seconds: float = 10.0  # from a connection's first byte to the end of the request head
    body_timeout_seconds: float = 10.0  # from the end of a request head to the end of its body (the proxies' 10 s)
    keep_alive_seconds: float = 5.0  # idle time allowed between requests on one connection
    max_header_bytes: int = 16 * 1024  # request line and headers together
    max_headers: int = 100
    limit_concurrency: int = 1000  # connections + requests in flight per worker; beyond: 503


@dataclass(frozen=True)
class TracingSettings:
    """[tracing]: OpenTelemetry spans to an OTLP/HTTP collector (needs the `otel` extra; router/tracing.py)."""

    otlp_endpoint: str  # the collector's base URL; /v1/traces is appended
    service_name: str = "return-router"


@dataclass(frozen=True)
class Settings:
    routes: tuple[Route, ...]
    ios: IosSettings | None = None
    android: AndroidSettings | None = None
    amazon_pay: AmazonPaySettings | None = None  # None: the in-process emulator (demo or emulator = true)
    merchant: MerchantSettings = MerchantSettings()
    storage: StorageSettings = StorageSettings()
    checkout: CheckoutSettings = CheckoutSettings()
    ops: OpsSettings = OpsSettings()  # [metrics] listen, [server] graceful_seconds
    server: ServerSettings = ServerSettings()  # [server] client limits
    pages: PagesSettings = PagesSettings()  # [pages] branding and links
    tracing: TracingSettings | None = None  # [tracing]: None, no traces and nothing of OpenTelemetry imported
    source: str = "<built-in>"
    demo: bool = False

    @property
    def route_table(self) -> RouteTable:
        return RouteTable(list(self.routes))

    @property
    def test_mode(self) -> bool:
        """The in-process emulator answers: nothing is charged, and every page says so."""
        return self.amazon_pay is None


def claims_for(routes: list[Route]) -> list[PathClaim]:
    """What the apps claim on a host: return paths, the success path only with a session id."""
    return [
        PathClaim(r.path, SESSION_ID_PARAMS if r.flow is Flow.SUCCESS else ()) for r in routes
    ]


def aasa_for(ios: IosSettings, routes: list[Route]) -> dict[str, Any]:
    """The apple-app-site-association a host serves: its claims, and the webcredentials and appclips
    sections when configured (one builder, so the size checked at load is the size served)."""
    return build_aasa(ios.app_ids, claims_for(routes),
                      webcredentials_apps=ios.app_ids if ios.webcredentials else (), appclips_apps=ios.appclips)
