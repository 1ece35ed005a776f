"""One reader per config section: TOML table (through a Section cursor) → settings type."""

from __future__ import annotations

import math
import re
from pathlib import Path
from urllib.parse import urlsplit

from router import tracing as otel
from router.amazon_pay.keys import load_private_key
from router.amazon_pay.signing import ALGORITHM_V1, ALGORITHM_V2, REGION_HOSTS, normalize_region
from router.config.reader import Section
from router.config.settings import (
    QUOTA_KEYS,
    AmazonPaySettings,
    AndroidSettings,
    CheckoutSettings,
    IosSettings,
    MerchantSettings,
    ServerSettings,
    StorageSettings,
    TracingSettings,
)
from router.ops.settings import DEFAULT_METRICS_LISTEN, OpsSettings, parse_listen
from router.validators import ANDROID_PACKAGE, APP_STORE_ID, is_http_url
from router.web.routing import Flow, Route
from well_known import is_valid_app_id, normalize_fingerprint

ALGORITHMS = (ALGORITHM_V1, ALGORITHM_V2)
DAY = 86400.0

# RFC 3986 path characters, without the AASA wildcards "*" and "?".
_PATH_RE = re.compile(r"^(/[A-Za-z0-9\-._~!$&'()+,;=:@]*)+$")

MISSING_AMAZON_PAY = (
    "missing: add [amazon_pay] with public_key_id and private_key_file (Seller Central › Integration"
    " Central), or emulator = true to run against the built-in emulator (nothing is charged)"
)


def ios(s: Section) -> IosSettings:
    app_ids = s.list_of_str("app_ids", required=True, non_empty="must list at least one app id")
    for i, app_id in enumerate(app_ids):
        if not is_valid_app_id(app_id):
            s.fail(f"app_ids[{i}]", f"{app_id!r} is not TEAMID.bundle.id (10-character team id)")
    appclips = s.list_of_str("appclips")
    for i, app_id in enumerate(appclips):
        if not is_valid_app_id(app_id):
            s.fail(f"appclips[{i}]", f"{app_id!r} is not TEAMID.bundle.id")
    store_id = s.str_("app_store_id")
    if store_id is not None and not APP_STORE_ID.fullmatch(store_id):
        s.fail("app_store_id", "must be the numeric App Store id, e.g. \"1234567890\"")
        store_id = None
    return IosSettings(
        app_ids=tuple(app_ids),
        app_store_id=store_id,
        open_in_app_host=s.host("open_in_app_host", wildcard=False),
        webcredentials=s.bool_("webcredentials", False),
        appclips=tuple(appclips),
    )


def android(s: Section) -> AndroidSettings:
    package = s.str_("package", "", required=True)
    if package and not ANDROID_PACKAGE.fullmatch(package):
        s.fail("package", f"{package!r} is not an Android application id like com.example.shop")
    raw = s.list_of_str("sha256_cert_fingerprints", required=True, non_empty="must list at least one fingerprint")
    fingerprints = []
    for i, value in enumerate(raw):
        try:
            fingerprints.append(normalize_fingerprint(value))
        except ValueError as exc:
            s.fail(f"sha256_cert_fingerprints[{i}]", str(exc))
    return AndroidSettings(
        package=package,
        sha256_cert_fingerprints=tuple(dict.fromkeys(fingerprints)),
        play_store_url=s.url("play_store_url"),
        dynamic_rules=s.bool_("dynamic_rules", True),
    )


def routes(root: Section, ios: IosSettings | None) -> list[Route]:
    found: list[Route] = []
    seen: dict[tuple[str, str], str] = {}
    firsts: dict[Flow, tuple[Route, Section]] = {}
    for entry in root.tables("routes", required="add [[routes]] with host, path and flow"):
        route = _route(entry)
        entry.done()
        if route is None:
            continue
        if (route.host, route.path) in seen:
            entry.fail("", f"duplicate host+path {route.host}{route.path} (also {seen[route.host, route.path]})")
            continue
        seen[route.host, route.path] = entry.path
        found.append(route)
        firsts.setdefault(route.flow, (route, entry))
    if isinstance(root.table.get("routes"), list):  # each flow needs a route, once routes are given
        for flow in Flow:
            if not any(r.flow is flow for r in found):
                root.fail("routes", f"no route for flow {flow.value!r}: each of success, cancel, error needs one")
    _exact_first_hosts(firsts)
    return found + mirrored_routes(found, ios)


def _exact_first_hosts(firsts: dict[Flow, tuple[Route, Section]]) -> None:
    """The first route of a flow builds the return URLs the merchant API signs for Amazon Pay.

    A wildcard there leaves no host to put in them but the API caller's own Host header (the merchant
    backend's internal name, an IP, localhost), which is not where the buyer must come back to.
    """
    for flow, (route, entry) in firsts.items():
        if route.host.startswith("*"):
            entry.fail("host", f"{route.host!r}: the first {flow.value} route gives the return URLs their host, "
                               "so it must be an exact host (put a route with one before it)")


def _route(entry: Section) -> Route | None:
    host = entry.host("host", required=True)
    path = entry.str_("path", required=True)
    if path is not None and not _PATH_RE.match(path):
        entry.fail("path", f"{path!r} must start with / and use URL path characters (no * or ?)")
        path = None
    flow_name = entry.str_("flow", required=True)
    flow = next((f for f in Flow if f.value == flow_name), None)
    if flow_name is not None and flow is None:
        entry.fail("flow", "must be one of success, cancel, error")
    if host is None or path is None or flow is None:
        return None
    return Route(host, path, flow)


def mirrored_routes(routes: list[Route], ios: IosSettings | None) -> list[Route]:
    """The open-in-app host serves the same return paths, so a tap there opens the app."""
    if ios is None or ios.open_in_app_host is None:
        return []
    taken = {(r.host, r.path) for r in routes}
    mirrored: dict[str, Route] = {}
    for route in routes:
        if (ios.open_in_app_host, route.path) not in taken:
            mirrored.setdefault(route.path, Route(ios.open_in_app_host, route.path, route.flow))
    return list(mirrored.values())


def amazon_pay(s: Section, base_dir: Path) -> AmazonPaySettings:
    key_id = s.str_("public_key_id", "", required=True)
    pem = private_key(s, base_dir)
    region = None
    try:
        region = normalize_region(s.str_("region", "na"))
    except ValueError:
        s.fail("region", "must be one of na, eu, jp (us, uk, de accepted)")
    environment = s.str_("environment")
    if environment is not None and environment.lower() not in ("live", "sandbox"):
        s.fail("environment", "must be live or sandbox")
    if not key_id.strip() and s.has("public_key_id"):
        s.fail("public_key_id", "must not be empty")
    key_environment = "live" if key_id.upper().startswith("LIVE") else (
        "sandbox" if key_id.upper().startswith("SANDBOX") else None)
    if key_id and key_environment is None and environment is None:
        s.fail("environment", "is required for a key id without a LIVE-/SANDBOX- prefix")
    if key_environment and environment and environment.lower() != key_environment:
        s.fail("environment", f"is {environment!r} but public_key_id is a {key_environment} key (its prefix decides)")
    algorithm = s.str_("algorithm", ALGORITHM_V2)
    if algorithm not in ALGORITHMS:
        s.fail("algorithm", f"must be one of {', '.join(ALGORITHMS)}")
    defaults = AmazonPaySettings(public_key_id="", private_key_pem=b"")
    return AmazonPaySettings(
        public_key_id=key_id,
        private_key_pem=pem,
        region=region or "na",
        environment=environment.lower() if environment else None,
        algorithm=algorithm,
        store_id=s.str_("store_id"),
        endpoint=endpoint(s, region or "na", key_environment or (environment or "").lower()),
        max_attempts=s.int_("max_attempts", defaults.max_attempts, positive=True),
        connect_timeout=s.float_("connect_timeout", defaults.connect_timeout, positive=True),
        read_timeout=s.float_("read_timeout", defaults.read_timeout, positive=True),
        deadline=s.float_("deadline", defaults.deadline, positive=True),
        quota_overrides=quota_overrides(s),
        quota_fraction=s.float_("quota_fraction", defaults.quota_fraction, positive=True, at_most=1,
                                why="a share of the quota"),
        background_share=s.float_("background_share", defaults.background_share, positive=True, at_most=1,
                                  why="a share of the quota"),
        quota_wait_seconds=quota_wait(s, defaults.quota_wait_seconds),
    )


def endpoint(s: Section, region: str, environment: str) -> str | None:
    """An override of Amazon's host: http only for a local emulator, never for live keys. Amazon has one
    host per region and no sandbox host (the key's prefix picks the environment): live keys may only name
    their region's, and an Amazon host must match the region and carry no path."""
    value = s.url("endpoint", allow_http_loopback=True)
    if value is None:
        return None
    parts = urlsplit(value)
    official = REGION_HOSTS[region]
    host = (parts.hostname or "").rstrip(".")
    if host in REGION_HOSTS.values() and (host != official or parts.path.strip("/")):
        s.fail("endpoint", f"region {region} is served by https://{official} (no path: the key picks the environment)")
        return None
    if environment == "live" and host != official:
        s.fail("endpoint", f"a live key must reach Amazon Pay itself (https://{official}), not {host}: nobody "
                           "would be charged")
        return None
    return value


def quota_overrides(s: Section) -> tuple[tuple[str, float, float], ...]:
    """[burst, per_second] pairs for operations whose limits Amazon raised for this merchant."""
    found = []
    for key, operation in QUOTA_KEYS.items():
        pair = s.raw(key)
        if pair is None:
            continue
        ok = isinstance(pair, list) and len(pair) == 2 and all(
            isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) for v in pair)
        if not ok or pair[0] < 1 or pair[1] <= 0:
            s.fail(key, "must be [burst, per_second] with burst >= 1 and per_second > 0")
            continue
        found.append((operation, float(pair[0]), float(pair[1])))
    return tuple(found)


def quota_wait(s: Section, default: float) -> float:
    wait = s.float_("quota_wait_seconds", default)
    if not 0 <= wait <= 30:
        s.fail("quota_wait_seconds", "must be between 0 and 30 (a buyer is waiting)")
        return default
    return wait


def private_key(s: Section, base_dir: Path) -> bytes:
    """The PEM from private_key_file or private_key_env (exactly one); not read when offline."""
    file_name, env_name = s.str_("private_key_file"), s.str_("private_key_env")
    if (file_name is None) == (env_name is None):
        s.fail("private_key_file", "set exactly one of private_key_file or private_key_env")
        return b""
    if s.problems.offline:
        return b""
    if env_name is not None:
        key = "private_key_env"
        pem = s.problems.env.get(env_name, "").encode()
        if not pem:
            s.fail(key, f"environment variable {env_name} is not set or empty")
    else:
        assert file_name is not None
        key = "private_key_file"
        try:
            pem = (base_dir / file_name).read_bytes()
        except OSError as exc:
            s.fail(key, f"cannot read {file_name}: {exc.strerror}")
            return b""
    if pem:
        try:
            load_private_key(pem)
        except ValueError as exc:
            s.fail(key, f"is not a usable RSA private key: {exc}")
    return pem


def merchant(s: Section) -> MerchantSettings:
    webhook_url = s.url("webhook_url", allow_http_loopback=True)  # a server-to-server call, not a link
    if s.raw("webhook_url") is not None and not (s.has("webhook_secret_env") or s.has("webhook_secret_file")):
        s.fail("webhook_secret_env", "is required with webhook_url: webhooks are always signed")
    return MerchantSettings(
        name=s.str_("name", "Shop"),
        api_token=s.secret("api_token"),
        webhook_url=webhook_url,
        webhook_secret=s.secret("webhook_secret"),
        shop_url=s.url("shop_url"),
    )


def storage(s: Section, base_dir: Path) -> StorageSettings:
    url = s.str_("url", StorageSettings.url)
    if not url.startswith(("sqlite:///", "postgresql://", "postgres://")):
        s.fail("url", "must start with sqlite:/// or postgresql://")
    elif url.startswith("sqlite:///") and not url.startswith("sqlite:////") and url != "sqlite:///:memory:":
        url = "sqlite:///" + str(base_dir / url.removeprefix("sqlite:///"))
    retry = s.float_("connect_retry_seconds", StorageSettings.connect_retry_seconds, positive=True)
    return StorageSettings(url=url, connect_retry_seconds=retry)


def checkout(s: Section) -> CheckoutSettings:
    d = CheckoutSettings()
    ttl = s.float_("ttl_hours", d.ttl_seconds / 3600, positive=True, at_most=24 * 30,
                   why="Amazon deletes sessions after 30 days")
    return CheckoutSettings(
        ttl_seconds=ttl * 3600,
        lease_seconds=s.float_("lease_seconds", d.lease_seconds, positive=True),
        reconcile_interval_seconds=s.float_("reconcile_interval_seconds", d.reconcile_interval_seconds,
                                            positive=True, at_most=3600, why="pending payments wait"),
        resume_after_seconds=s.float_("resume_after_seconds", d.resume_after_seconds, positive=True),
        retain_seconds=s.float_("retain_days", d.retain_seconds / DAY, positive=True) * DAY,
        events_retain_seconds=s.float_("delivered_events_retain_days", d.events_retain_seconds / DAY,
                                       positive=True) * DAY,
    )


def metrics_listen(s: Section) -> tuple[str, int] | None:
    """[metrics] listen: "host:port" of the metrics listener, "" for none."""
    default = OpsSettings.metrics_listen
    if not s.has("listen"):
        return default
    raw = s.raw("listen")
    try:
        return None if raw == "" else parse_listen(raw if isinstance(raw, str) else "")
    except ValueError:
        s.fail("listen", f'must be "host:port" like "{DEFAULT_METRICS_LISTEN}", or "" to turn it off')
        return default


def server(s: Section) -> tuple[ServerSettings, int]:
    """[server]: the client limits, and graceful_seconds (how long a SIGTERM lets requests run)."""
    d = ServerSettings()
    graceful = OpsSettings.graceful_seconds
    if s.has("graceful_seconds"):
        raw = s.raw("graceful_seconds")
        if isinstance(raw, bool) or not isinstance(raw, int) or not 0 <= raw <= 3600:
            s.fail("graceful_seconds", "must be a whole number of seconds from 0 to 3600")
        else:
            graceful = raw
    limits = ServerSettings(
        header_timeout_seconds=s.float_("header_timeout_seconds", d.header_timeout_seconds, positive=True),
        body_timeout_seconds=s.float_("body_timeout_seconds", d.body_timeout_seconds, positive=True),
        keep_alive_seconds=s.float_("keep_alive_seconds", d.keep_alive_seconds, positive=True),
        max_header_bytes=s.int_("max_header_bytes", d.max_header_bytes, positive=True),
        max_headers=s.int_("max_headers", d.max_headers, positive=True),
        limit_concurrency=s.int_("limit_concurrency", d.limit_concurrency, positive=True),
    )
    return limits, graceful


def tracing(s: Section) -> TracingSettings:
    """[tracing]: fails closed without the otel extra, rather than running untraced unnoticed."""
    endpoint = s.str_("otlp_endpoint", "", required=True)
    name = s.str_("service_name", TracingSettings.service_name)
    if endpoint and not is_http_url(endpoint):
        s.fail("otlp_endpoint", 'must be the collector\'s http(s) URL, e.g. "http://127.0.0.1:4318"')
    elif endpoint and not otel.available():
        s.fail("otlp_endpoint", "needs the otel extra, which is not installed: pip install 'return-router[otel]'")
    if not name:
        s.fail("service_name", "must not be empty")
    return TracingSettings(otlp_endpoint=endpoint, service_name=name or TracingSettings.service_name)
