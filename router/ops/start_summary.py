"""The one record `serve` logs at start: what this process is about to do, for the operator."""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import urlsplit

from router.checks import operator_warnings
from router.config import Settings
from router.env_proxy import EnvProxies
from router.redact import mask
from router.store.migrations import MIGRATIONS
from router.version import version

log = logging.getLogger("router.start")
config_log = logging.getLogger("router.config")  # the start record stays one record


def amazon_mode(settings: Settings) -> dict[str, Any]:
    pay = settings.amazon_pay
    if pay is None:
        return {"mode": "emulator"}
    mode = pay.environment or ("sandbox" if pay.public_key_id.upper().startswith("SANDBOX") else "live")
    found: dict[str, Any] = {"mode": mode.lower(), "region": pay.region, "key_id": mask(pay.public_key_id)}
    if pay.endpoint:
        found["endpoint"] = pay.endpoint
    return found


def tracing_target(endpoint: str) -> str:
    """Where spans go, without a path or credentials the URL may hold: "http://collector:4318"."""
    parts = urlsplit(endpoint)
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}"


def egress() -> dict[str, str] | str:
    """The proxy both outbound clients send through (router.env_proxy), named without its credentials."""
    return EnvProxies().describe() or "direct"


def _egress_text(found: dict[str, str] | str) -> str:
    if isinstance(found, str):
        return found
    text = ", ".join(f"{scheme} via {proxy}" for scheme, proxy in found.items() if scheme != "no_proxy")
    return text + (f" (not for NO_PROXY {found['no_proxy']})" if "no_proxy" in found else "")


def summary(settings: Settings, listeners: list[str], workers: int) -> dict[str, Any]:
    storage = settings.storage.url.partition(":")[0].partition("+")[0]  # never the URL: it may hold a password
    return {
        "version": version(),
        "config": settings.source,
        "routes": [f"{r.host}{r.path} ({r.flow.value})" for r in settings.routes],
        "storage": storage,
        "schema_version": max(m.version for m in MIGRATIONS),
        "amazon_pay": amazon_mode(settings),
        "webhooks": "on" if settings.merchant.webhook_url else "off",
        "tracing": "off" if settings.tracing is None else tracing_target(settings.tracing.otlp_endpoint),
        "egress": egress(),
        "listeners": listeners,
        "workers": workers,
    }


def log_start(settings: Settings, listeners: list[str], workers: int) -> None:
    doc = summary(settings, listeners, workers)
    pay = doc["amazon_pay"]
    text = (f"starting return-router {doc['version']}: config {doc['config']}; serving {', '.join(doc['routes'])}; "
            f"storage {doc['storage']} (schema {doc['schema_version']}); amazon pay "
            + " ".join(str(v) for v in pay.values())
            + f"; webhooks {doc['webhooks']}; tracing {doc['tracing']}; egress {_egress_text(doc['egress'])}"
            + f"; listening on {', '.join(listeners)} ({workers} worker(s))")
    log.info(text, extra={"summary": doc})
    if settings.demo:
        return
    for key, message in operator_warnings(settings):
        config_log.warning("config %s: %s: %s", settings.source, key, message)
