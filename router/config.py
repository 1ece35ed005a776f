"""TOML file → validated, frozen settings. Every problem names the file and the key.

Loading collects every problem before failing, so an operator fixes a config in one pass; a bad
config never starts a half-working server.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from router.amazon_pay.keys import load_private_key
from router.amazon_pay.signing import ALGORITHM_V1, ALGORITHM_V2, normalize_region
from router.checkout.model import SESSION_ID_PARAMS
from router.validators import ANDROID_PACKAGE, APP_STORE_ID, DNS_NAME, is_http_url
from router.web.branding import PagesSettings, read_pages
from router.web.routing import Flow, Route, RouteTable, normalize_host
from well_known import PathClaim, build_aasa, dumps, is_valid_app_id, normalize_fingerprint

AASA_MAX_BYTES = 128 * 1024
ALGORITHMS = (ALGORITHM_V1, ALGORITHM_V2)

# RFC 3986 path characters, without the AASA wildcards "*" and "?".
_PATH_RE = re.compile(r"^(/[A-Za-z0-9\-._~!$&'()+,;=:@]*)+$")


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


@dataclass(frozen=True)
class CheckoutSettings:
    ttl_seconds: float = 24 * 3600  # Amazon cancels unconfirmed sessions after 24 hours
    lease_seconds: float = 90.0  # a finalize holder that dies loses the lease after this long
    reconcile_interval_seconds: float = 2.0  # how often the reconciler looks for work
    resume_after_seconds: float = 15.0  # a bound, unfinished checkout untouched this long is resumed


@dataclass(frozen=True)
class Settings:
    routes: tuple[Route, ...]
    ios: IosSettings | None = None
    android: AndroidSettings | None = None
    amazon_pay: AmazonPaySettings | None = None
    merchant: MerchantSettings = MerchantSettings()
    storage: StorageSettings = StorageSettings()
    checkout: CheckoutSettings = CheckoutSettings()
    pages: PagesSettings = PagesSettings()
    source: str = "<built-in>"
    demo: bool = False

    @property
    def route_table(self) -> RouteTable:
        return RouteTable(list(self.routes))


def claims_for(routes: list[Route]) -> list[PathClaim]:
    """What the apps claim on a host: return paths, the success path only with a session id."""
    return [
        PathClaim(r.path, SESSION_ID_PARAMS if r.flow is Flow.SUCCESS else ()) for r in routes
    ]


def load(path: str | os.PathLike[str], env: Mapping[str, str] | None = None) -> Settings:
    """Read and validate a config file; raise ConfigError listing every problem."""
    name = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([f"{name}: cannot read the file: {exc}"]) from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([f"{name}: TOML syntax error: {exc}"]) from None
    base = Path(path).resolve().parent
    return parse(data, source=name, env=os.environ if env is None else env, base_dir=base)


def parse(data: Mapping[str, Any], *, source: str, env: Mapping[str, str], base_dir: Path) -> Settings:
    reader = _Reader(source, env, base_dir)
    settings = reader.settings(data)
    if reader.problems:
        raise ConfigError(reader.problems)
    assert settings is not None
    return settings


class _Reader:
    """Walks the TOML document, converting sections and collecting problems."""

    def __init__(self, source: str, env: Mapping[str, str], base_dir: Path) -> None:
        self.source = source
        self.env = env
        self.base_dir = base_dir
        self.problems: list[str] = []

    def fail(self, key: str, message: str) -> None:
        self.problems.append(f"{self.source}: {key}: {message}")

    # --- generic typed access --------------------------------------------------------------------

    def table(self, data: Mapping[str, Any], key: str, allowed: set[str]) -> Mapping[str, Any] | None:
        value = data.get(key.rsplit(".", 1)[-1])
        if value is None:
            return None
        if not isinstance(value, dict):
            self.fail(key, "must be a table")
            return None
        for unknown in sorted(set(value) - allowed):
            self.fail(f"{key}.{unknown}", f"unknown key (allowed: {', '.join(sorted(allowed))})")
        return value

    def get(
        self, data: Mapping[str, Any], prefix: str, key: str, kind: type, default: Any = None,
        required: bool = False,
    ) -> Any:
        full = f"{prefix}.{key}" if prefix else key
        if key not in data:
            if required:
                self.fail(full, "is required")
            return default
        value = data[key]
        ok = isinstance(value, kind) and not (kind in (int, float) and isinstance(value, bool))
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value, ok = float(value), True
        if not ok:
            self.fail(full, f"must be {_KIND_NAMES.get(kind, kind.__name__)}")
            return default
        return value

    def strings(self, data: Mapping[str, Any], prefix: str, key: str, required: bool = False) -> list[str]:
        value = self.get(data, prefix, key, list, [], required)
        if not all(isinstance(v, str) for v in value):
            self.fail(f"{prefix}.{key}", "must be a list of strings")
            return []
        return list(value)

    def secret(self, data: Mapping[str, Any], prefix: str, key: str) -> str | None:
        """A secret named by an environment variable: `<key> = "VAR_NAME"`."""
        var = self.get(data, prefix, key, str)
        if var is None:
            return None
        value = self.env.get(var)
        if not value:
            self.fail(f"{prefix}.{key}", f"environment variable {var} is not set or empty")
            return None
        return value

    # --- sections --------------------------------------------------------------------------------

    def settings(self, data: Mapping[str, Any]) -> Settings | None:
        allowed = {"ios", "android", "routes", "amazon_pay", "merchant", "storage", "checkout", "pages"}
        for unknown in sorted(set(data) - allowed):
            self.fail(unknown, f"unknown key (allowed: {', '.join(sorted(allowed))})")
        ios = self.ios(data)
        android = self.android(data)
        if ios is None and android is None and "ios" not in data and "android" not in data:
            self.fail("ios", "configure [ios] or [android] (or both): the apps the return URLs open")
        routes = self.routes(data, ios)
        settings = Settings(
            routes=tuple(routes),
            ios=ios,
            android=android,
            amazon_pay=self.amazon_pay(data),
            merchant=self.merchant(data),
            storage=self.storage(data),
            checkout=self.checkout(data),
            pages=read_pages(self.table(data, "pages", PagesSettings.KEYS) or {}, self.base_dir, self.fail),
            source=self.source,
        )
        if ios is not None and routes and not self.problems:  # needs valid app ids and routes
            self.check_aasa_sizes(settings)
        return settings

    def ios(self, data: Mapping[str, Any]) -> IosSettings | None:
        allowed = {"app_ids", "app_store_id", "open_in_app_host", "webcredentials", "appclips"}
        section = self.table(data, "ios", allowed)
        if section is None:
            return None
        app_ids = self.strings(section, "ios", "app_ids", required=True)
        if "app_ids" in section and not app_ids:
            self.fail("ios.app_ids", "must list at least one app id")
        for i, app_id in enumerate(app_ids):
            if not is_valid_app_id(app_id):
                self.fail(f"ios.app_ids[{i}]", f"{app_id!r} is not TEAMID.bundle.id (10-character team id)")
        appclips = self.strings(section, "ios", "appclips")
        for i, app_id in enumerate(appclips):
            if not is_valid_app_id(app_id):
                self.fail(f"ios.appclips[{i}]", f"{app_id!r} is not TEAMID.bundle.id")
        store_id = self.get(section, "ios", "app_store_id", str)
        if store_id is not None and not APP_STORE_ID.fullmatch(store_id):
            self.fail("ios.app_store_id", "must be the numeric App Store id, e.g. \"1234567890\"")
            store_id = None
        open_host = self.host(section.get("open_in_app_host"), "ios.open_in_app_host", wildcard=False)
        return IosSettings(
            app_ids=tuple(app_ids),
            app_store_id=store_id,
            open_in_app_host=open_host,
            webcredentials=self.get(section, "ios", "webcredentials", bool, False),
            appclips=tuple(appclips),
        )

    def android(self, data: Mapping[str, Any]) -> AndroidSettings | None:
        allowed = {"package", "sha256_cert_fingerprints", "play_store_url", "dynamic_rules"}
        section = self.table(data, "android", allowed)
        if section is None:
            return None
        package = self.get(section, "android", "package", str, "", required=True)
        if package and not ANDROID_PACKAGE.fullmatch(package):
            self.fail("android.package", f"{package!r} is not an Android application id like com.example.shop")
        raw = self.strings(section, "android", "sha256_cert_fingerprints", required=True)
        if "sha256_cert_fingerprints" in section and not raw:
            self.fail("android.sha256_cert_fingerprints", "must list at least one fingerprint")
        fingerprints = []
        for i, value in enumerate(raw):
            try:
                fingerprints.append(normalize_fingerprint(value))
            except ValueError as exc:
                self.fail(f"android.sha256_cert_fingerprints[{i}]", str(exc))
        play = self.get(section, "android", "play_store_url", str)
        if play is not None and not play.startswith("https://"):
            self.fail("android.play_store_url", "must be an https:// URL")
        return AndroidSettings(
            package=package,
            sha256_cert_fingerprints=tuple(dict.fromkeys(fingerprints)),
            play_store_url=play,
            dynamic_rules=self.get(section, "android", "dynamic_rules", bool, True),
        )

    def host(self, value: Any, key: str, wildcard: bool = True) -> str | None:
        if value is None:
            return None
        if not isinstance(value, str):
            self.fail(key, "must be a string")
            return None
        host = value.strip().lower().rstrip(".")
        if wildcard and host == "*":
            return host
        bare = host[2:] if wildcard and host.startswith("*.") else host
        if ":" in host or "/" in host or not DNS_NAME.fullmatch(bare):
            allowed = 'a host name like "pay.example.com"' + (', "*.example.com" or "*"' if wildcard else "")
            self.fail(key, f"{value!r} is not {allowed} (no scheme, port or path)")
            return None
        return normalize_host(host) if not host.startswith("*.") else host

    def routes(self, data: Mapping[str, Any], ios: IosSettings | None) -> list[Route]:
        raw = data.get("routes")
        if raw is None:
            self.fail("routes", "is required: add [[routes]] with host, path and flow")
            return []
        if not isinstance(raw, list) or not all(isinstance(r, dict) for r in raw):
            self.fail("routes", "must be an array of tables ([[routes]])")
            return []
        routes: list[Route] = []
        seen: dict[tuple[str, str], int] = {}
        for i, entry in enumerate(raw):
            key = f"routes[{i}]"
            for unknown in sorted(set(entry) - {"host", "path", "flow"}):
                self.fail(f"{key}.{unknown}", "unknown key (allowed: flow, host, path)")
            host = self.host(entry.get("host"), f"{key}.host") if "host" in entry else None
            if "host" not in entry:
                self.fail(f"{key}.host", "is required")
            path = self.get(entry, key, "path", str, required=True)
            if path is not None and not _PATH_RE.match(path):
                self.fail(f"{key}.path", f"{path!r} must start with / and use URL path characters (no * or ?)")
                path = None
            flow_name = self.get(entry, key, "flow", str, required=True)
            flow = next((f for f in Flow if f.value == flow_name), None)
            if flow_name is not None and flow is None:
                self.fail(f"{key}.flow", "must be one of success, cancel, error")
            if host is None or path is None or flow is None:
                continue
            if (host, path) in seen:
                self.fail(f"{key}", f"duplicate host+path {host}{path} (also routes[{seen[host, path]}])")
                continue
            seen[host, path] = i
            routes.append(Route(host, path, flow))
        for flow in Flow:
            if not any(r.flow is flow for r in routes):
                self.fail("routes", f"no route for flow {flow.value!r}: each of success, cancel, error needs one")
        return routes + self.mirrored_routes(routes, ios)

    @staticmethod
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

    def check_aasa_sizes(self, settings: Settings) -> None:
        assert settings.ios is not None
        table = settings.route_table
        for pattern in sorted({r.host for r in settings.routes}):
            probe = pattern.replace("*.", "x.") if pattern != "*" else "any.invalid"
            size = len(dumps(build_aasa(settings.ios.app_ids, claims_for(table.paths_for_host(probe)))))
            if size > AASA_MAX_BYTES:
                self.fail("routes", f"the apple-app-site-association for {pattern} would be {size} bytes,"
                          f" over Apple's limit of {AASA_MAX_BYTES}")

    def amazon_pay(self, data: Mapping[str, Any]) -> AmazonPaySettings | None:
        allowed = {"public_key_id", "private_key_file", "private_key_env", "region", "environment",
                   "algorithm", "store_id", "endpoint", "max_attempts", "connect_timeout",
                   "read_timeout", "deadline"}
        section = self.table(data, "amazon_pay", allowed)
        if section is None:
            return None
        p = "amazon_pay"
        key_id = self.get(section, p, "public_key_id", str, "", required=True)
        pem = self.private_key(section)
        region = None
        try:
            region = normalize_region(self.get(section, p, "region", str, "na"))
        except ValueError:
            self.fail(f"{p}.region", "must be one of na, eu, jp (us, uk, de accepted)")
        environment = self.get(section, p, "environment", str)
        if environment is not None and environment.lower() not in ("live", "sandbox"):
            self.fail(f"{p}.environment", "must be live or sandbox")
        prefixed = key_id.upper().startswith(("LIVE", "SANDBOX"))
        if key_id and not prefixed and environment is None:
            self.fail(f"{p}.environment", "is required for a key id without a LIVE-/SANDBOX- prefix")
        algorithm = self.get(section, p, "algorithm", str, "AMZN-PAY-RSASSA-PSS-V2")
        if algorithm not in ALGORITHMS:
            self.fail(f"{p}.algorithm", f"must be one of {', '.join(ALGORITHMS)}")
        endpoint = self.get(section, p, "endpoint", str)
        if endpoint is not None and not is_http_url(endpoint):
            self.fail(f"{p}.endpoint", "must be an http:// or https:// URL")
        numbers = {k: self.positive(section, p, k, t) for k, t in
                   (("max_attempts", int), ("connect_timeout", float), ("read_timeout", float),
                    ("deadline", float))}
        return AmazonPaySettings(
            public_key_id=key_id,
            private_key_pem=pem,
            region=region or "na",
            environment=environment.lower() if environment else None,
            algorithm=algorithm,
            store_id=self.get(section, p, "store_id", str),
            endpoint=endpoint,
            **{k: v for k, v in numbers.items() if v is not None},
        )

    def positive(self, section: Mapping[str, Any], prefix: str, key: str, kind: type) -> Any:
        value = self.get(section, prefix, key, kind)
        if value is not None and value <= 0:
            self.fail(f"{prefix}.{key}", "must be greater than 0")
            return None
        return value

    def private_key(self, section: Mapping[str, Any]) -> bytes:
        file_name = self.get(section, "amazon_pay", "private_key_file", str)
        env_name = self.get(section, "amazon_pay", "private_key_env", str)
        if (file_name is None) == (env_name is None):
            self.fail("amazon_pay.private_key_file", "set exactly one of private_key_file or private_key_env")
            return b""
        if env_name is not None:
            value = self.env.get(env_name, "")
            if not value:
                self.fail("amazon_pay.private_key_env", f"environment variable {env_name} is not set or empty")
            pem = value.encode()
            key = "amazon_pay.private_key_env"
        else:
            assert file_name is not None
            try:
                pem = (self.base_dir / file_name).read_bytes()
            except OSError as exc:
                self.fail("amazon_pay.private_key_file", f"cannot read {file_name}: {exc.strerror}")
                return b""
            key = "amazon_pay.private_key_file"
        if pem:
            try:
                load_private_key(pem)
            except ValueError as exc:
                self.fail(key, f"is not a usable RSA private key: {exc}")
        return pem

    def merchant(self, data: Mapping[str, Any]) -> MerchantSettings:
        allowed = {"name", "api_token_env", "webhook_url", "webhook_secret_env", "shop_url"}
        section = self.table(data, "merchant", allowed) or {}
        p = "merchant"
        webhook_url = self.get(section, p, "webhook_url", str)
        if webhook_url is not None and not is_http_url(webhook_url):
            self.fail(f"{p}.webhook_url", "must be an http:// or https:// URL")
        secret = self.secret(section, p, "webhook_secret_env")
        if webhook_url is not None and "webhook_secret_env" not in section:
            self.fail(f"{p}.webhook_secret_env", "is required with webhook_url: webhooks are always signed")
        shop_url = self.get(section, p, "shop_url", str)
        if shop_url is not None and not is_http_url(shop_url):
            self.fail(f"{p}.shop_url", "must be an http:// or https:// URL")
        return MerchantSettings(
            name=self.get(section, p, "name", str, "Shop"),
            api_token=self.secret(section, p, "api_token_env"),
            webhook_url=webhook_url,
            webhook_secret=secret,
            shop_url=shop_url,
        )

    def storage(self, data: Mapping[str, Any]) -> StorageSettings:
        section = self.table(data, "storage", {"url"}) or {}
        url = self.get(section, "storage", "url", str, StorageSettings.url)
        if not url.startswith(("sqlite:///", "postgresql://", "postgres://")):
            self.fail("storage.url", "must start with sqlite:/// or postgresql://")
        elif url.startswith("sqlite:///") and not url.startswith("sqlite:////") and url != "sqlite:///:memory:":
            url = "sqlite:///" + str(self.base_dir / url.removeprefix("sqlite:///"))
        return StorageSettings(url=url)

    def checkout(self, data: Mapping[str, Any]) -> CheckoutSettings:
        allowed = {"ttl_hours", "lease_seconds", "reconcile_interval_seconds", "resume_after_seconds"}
        section = self.table(data, "checkout", allowed) or {}
        ttl = self.positive(section, "checkout", "ttl_hours", float)
        lease = self.positive(section, "checkout", "lease_seconds", float)
        interval = self.positive(section, "checkout", "reconcile_interval_seconds", float)
        resume = self.positive(section, "checkout", "resume_after_seconds", float)
        if ttl is not None and ttl > 24 * 30:
            self.fail("checkout.ttl_hours", "must be at most 720 (Amazon deletes sessions after 30 days)")
        if interval is not None and interval > 3600:
            self.fail("checkout.reconcile_interval_seconds", "must be at most 3600 (pending payments wait)")
        return CheckoutSettings(
            ttl_seconds=ttl * 3600 if ttl else CheckoutSettings.ttl_seconds,
            lease_seconds=lease or CheckoutSettings.lease_seconds,
            reconcile_interval_seconds=interval or CheckoutSettings.reconcile_interval_seconds,
            resume_after_seconds=resume or CheckoutSettings.resume_after_seconds,
        )


_KIND_NAMES = {str: "a string", bool: "true or false", int: "an integer", float: "a number",
               list: "a list", dict: "a table"}
