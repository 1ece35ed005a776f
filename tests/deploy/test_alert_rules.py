"""The shipped alert rules (deploy/prometheus-alerts.yml), checked and evaluated by the real promtool
(`promtool check rules`, `promtool test rules` on series shaped as the metrics listener exports them)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from .harness import DEPLOY

RULES = DEPLOY / "prometheus-alerts.yml"
JOB = "return-router"
PASSES = "return_router_reconciler_passes_total"
NOT_READY_SUMMARY = "return-router's reconciler passes all fail: the store is unreachable or refuses writes, " \
    "buyers see the retry page"


def _promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        pytest.skip("promtool is not installed (Debian: apt-get install prometheus, as .ci/run does)")
    return found


def _series(instance: str, name: str, values: str, **labels: str) -> dict[str, str]:
    extra = "".join(f',{key}="{value}"' for key, value in labels.items())
    return {"series": f'{name}{{job="{JOB}",instance="{instance}"{extra}}}', "values": values}


def _instance(instance: str, *, webhooks: bool, store_down_after: int | None) -> list[dict[str, str]]:
    """40 scrapes 15 s apart (10 min) of one instance, as the listener exports them: `up`, the reconciler's
    passes (a pass every 2 s: about 7 a scrape), the webhook gauges only while webhooks are on and the store
    answers. `store_down_after`: scrapes after which the store stops answering (None: it never does)."""
    scrapes = 40
    up = _series(instance, "up", f"1x{scrapes}")
    if store_down_after is None:
        passes = [_series(instance, PASSES, f"0+7x{scrapes}", result="ok")]
        gauges = f"0x{scrapes}"
    else:
        down = scrapes - store_down_after
        passes = [_series(instance, PASSES, f"0+7x{store_down_after} {7 * store_down_after}x{down}", result="ok"),
                  # the error series appears with the first failed pass (prometheus_client exports a label
                  # set once used)
                  _series(instance, PASSES, f"_x{store_down_after} 1+7x{down - 1}", result="error")]
        gauges = f"0x{store_down_after} _x{down}"
    found = [up, *passes]
    if webhooks:
        found += [_series(instance, f"return_router_webhook_{name}", gauges)
                  for name in ("backlog", "oldest_pending_seconds", "parked")]
    return found


def _not_ready(instance: str) -> dict[str, Any]:
    return {"exp_labels": {"severity": "critical", "job": JOB, "instance": instance},
            "exp_annotations": {"summary": NOT_READY_SUMMARY}}


def test_alert_rules_are_valid() -> None:
    checked = subprocess.run([_promtool(), "check", "rules", str(RULES)], capture_output=True, text=True, timeout=60)
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_not_ready_fires_when_the_store_is_gone_with_webhooks_on_or_off(tmp_path: Path) -> None:
    """Webhooks off (no webhook_url, as router/example.toml ships) exports no webhook gauges at all: a healthy
    service must not look unready then. A store that stops answering must fire either way."""
    instances = {  # name: (webhooks on, store down after this many scrapes)
        "healthy-webhooks-off:9100": (False, None),
        "healthy-webhooks-on:9100": (True, None),
        "down-webhooks-off:9100": (False, 8),
        "down-webhooks-on:9100": (True, 8),
    }
    series = [s for name, (webhooks, down) in instances.items()
              for s in _instance(name, webhooks=webhooks, store_down_after=down)]
    down = sorted(name for name, (_, after) in instances.items() if after is not None)
    tests = {
        "rule_files": [str(RULES)],
        "evaluation_interval": "15s",
        "tests": [{
            "interval": "15s",
            "input_series": series,
            "alert_rule_test": [
                # Before the store went away (2 min): nothing; a minute after, not yet (`for: 2m`).
                {"eval_time": "1m", "alertname": "ReturnRouterNotReady", "exp_alerts": []},
                {"eval_time": "3m", "alertname": "ReturnRouterNotReady", "exp_alerts": []},
                # Later: the two whose store is gone, never the healthy ones.
                {"eval_time": "8m", "alertname": "ReturnRouterNotReady",
                 "exp_alerts": [_not_ready(name) for name in down]},
                {"eval_time": "9m45s", "alertname": "ReturnRouterNotReady",
                 "exp_alerts": [_not_ready(name) for name in down]},
            ],
        }],
    }
    spec = tmp_path / "not-ready.test.yml"
    spec.write_text(json.dumps(tests, indent=1))  # JSON is YAML
    result = subprocess.run([_promtool(), "test", "rules", str(spec)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


FINALIZES = "return_router_finalize_total"
UNAVAILABLE_SUMMARY = "Over 5% of finalizes end amazon_unavailable: buyers see \"can't confirm yet\" (API: 503); " \
    "the reconciler finishes them later"


def test_finalizes_unavailable_fires_on_what_buyers_saw_not_on_a_blip(tmp_path: Path) -> None:
    """Finalizes refused in this process (a hold after a 429) send nothing: no Amazon request series moves,
    only return_router_finalize_total{outcome="amazon_unavailable"}. 40 scrapes 15 s apart, 20 finalizes
    each; "held" ends all of them amazon_unavailable after 2 minutes, "blip" has one such in the 10 minutes."""
    scrapes = 40
    series = [
        _series("healthy:9100", FINALIZES, f"0+20x{scrapes}", outcome="completed"),
        _series("blip:9100", FINALIZES, f"0+20x{scrapes}", outcome="completed"),
        _series("blip:9100", FINALIZES, f"_x20 1x{scrapes - 20}", outcome="amazon_unavailable"),
        _series("held:9100", FINALIZES, f"0+20x8 160x{scrapes - 8}", outcome="completed"),
        _series("held:9100", FINALIZES, f"_x8 20+20x{scrapes - 9}", outcome="amazon_unavailable"),
    ]
    fired = {"exp_labels": {"severity": "critical", "job": JOB, "instance": "held:9100"}, "exp_annotations": {
        "summary": UNAVAILABLE_SUMMARY,
        "description": "The log says why: `finalize … failed: refused in this process` (a hold after a 429, "
                       "the breaker) or Amazon's status."}}
    tests = {
        "rule_files": [str(RULES)],
        "evaluation_interval": "15s",
        "tests": [{
            "interval": "15s",
            "input_series": series,
            "alert_rule_test": [
                {"eval_time": "2m", "alertname": "ReturnRouterFinalizesUnavailable", "exp_alerts": []},
                {"eval_time": "5m", "alertname": "ReturnRouterFinalizesUnavailable", "exp_alerts": []},  # `for: 5m`
                {"eval_time": "9m", "alertname": "ReturnRouterFinalizesUnavailable", "exp_alerts": [fired]},
            ],
        }],
    }
    spec = tmp_path / "finalizes-unavailable.test.yml"
    spec.write_text(json.dumps(tests, indent=1))
    result = subprocess.run([_promtool(), "test", "rules", str(spec)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
