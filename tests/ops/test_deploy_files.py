"""The shipped Grafana dashboard and Prometheus alerts query only series this service declares."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml

from router.metrics import declared_series

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
PROMETHEUS_OWN = {"up"}  # written by Prometheus itself for every scrape target
_KEYWORDS = {"and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring", "group_left", "group_right"}
_STRIP = (
    re.compile(r'"(?:[^"\\]|\\.)*"'),  # string literals (label values)
    re.compile(r"\{[^}]*\}"),  # label matchers
    re.compile(r"\[[^\]]*\]"),  # range selectors
    re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)"),  # label lists
)
_IDENT = re.compile(r"(?<![\w.])([A-Za-z_:][A-Za-z0-9_:]*)(?![\w:])(?!\s*\()")


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects (functions, keywords, labels and numbers removed)."""
    for pattern in _STRIP:
        expr = pattern.sub(" ", expr)
    return {name for name in _IDENT.findall(expr) if name not in _KEYWORDS and not re.fullmatch(r"[0-9.e+-]+", name)}


def dashboard_exprs() -> list[str]:
    dashboard = json.loads((DEPLOY / "grafana-dashboard.json").read_text(encoding="utf-8"))
    return [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]


def alert_exprs() -> list[str]:
    rules: dict[str, Any] = yaml.safe_load((DEPLOY / "prometheus-alerts.yml").read_text(encoding="utf-8"))
    return [rule["expr"] for group in rules["groups"] for rule in group["rules"]]


def test_the_extractor_finds_metrics_and_nothing_else() -> None:
    expr = ('histogram_quantile(0.99, sum by (le, operation) (rate(return_router_amazon_request_seconds_bucket'
            '{operation="getCharge"}[5m]))) / on(instance) group_left up > 0.5 unless absent(nope_total)')
    assert metric_names(expr) == {"return_router_amazon_request_seconds_bucket", "up", "nope_total"}


def test_every_queried_metric_is_declared() -> None:
    declared = declared_series() | PROMETHEUS_OWN
    exprs = dashboard_exprs() + alert_exprs()
    assert len(exprs) >= 10
    for expr in exprs:
        names = metric_names(expr)
        assert names, expr
        assert names <= declared, f"{expr}: unknown {sorted(names - declared)}"


def test_the_dashboard_and_alerts_cover_what_the_issue_asks_for() -> None:
    queried = set().union(*map(metric_names, dashboard_exprs()))
    assert {"return_router_returns_total", "return_router_finalize_total",
            "return_router_amazon_request_seconds_bucket", "return_router_amazon_throttled_total",
            "return_router_webhook_backlog"} <= queried
    alerted = set().union(*map(metric_names, alert_exprs()))
    assert {"return_router_webhook_oldest_pending_seconds", "return_router_webhook_parked",
            "return_router_amazon_requests_total",
            "return_router_amazon_throttled_total", "up"} <= alerted


def test_the_declared_series_are_the_contract() -> None:
    assert declared_series() == {
        "return_router_returns_total", "return_router_finalize_total", "return_router_amazon_requests_total",
        "return_router_amazon_request_seconds_bucket", "return_router_amazon_request_seconds_sum",
        "return_router_amazon_request_seconds_count", "return_router_amazon_throttled_total",
        "return_router_api_requests_total", "return_router_webhook_deliveries_total", "return_router_webhook_backlog",
        "return_router_webhook_oldest_pending_seconds", "return_router_webhook_parked",
        "return_router_reconciler_passes_total",
        "return_router_store_errors_total", "return_router_build_info", "return_router_sqlite_writes_total",
        "return_router_sqlite_commit_seconds_bucket", "return_router_sqlite_commit_seconds_sum",
        "return_router_sqlite_commit_seconds_count",
    }
