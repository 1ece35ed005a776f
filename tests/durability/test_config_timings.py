"""[checkout] timings that the durability tests shorten: parsed, validated, wired into the reconciler."""

from __future__ import annotations

from pathlib import Path

import pytest

from router.app import create_app
from router.config import CheckoutSettings, ConfigError, load
from tests.support.config import BASE_CONFIG


def write(tmp_path: Path, checkout: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(BASE_CONFIG + f'\n[storage]\nurl = "sqlite:///{tmp_path}/rr.db"\n\n[checkout]\n{checkout}\n')
    return path


def test_defaults_without_the_keys(tmp_path: Path) -> None:
    settings = load(write(tmp_path, ""), env={}).checkout
    assert settings == CheckoutSettings()
    assert (settings.reconcile_interval_seconds, settings.resume_after_seconds) == (2.0, 15.0)


def test_values_reach_the_reconciler(tmp_path: Path) -> None:
    text = "lease_seconds = 3\nreconcile_interval_seconds = 0.25\nresume_after_seconds = 4"
    settings = load(write(tmp_path, text), env={})
    assert (settings.checkout.lease_seconds, settings.checkout.reconcile_interval_seconds,
            settings.checkout.resume_after_seconds) == (3.0, 0.25, 4.0)
    runtime = create_app(settings).state.runtime
    assert (runtime.reconciler.interval, runtime.reconciler.resume_after) == (0.25, 4.0)
    assert runtime.service.lease_seconds == 3.0


@pytest.mark.parametrize(("line", "message"), [
    ("reconcile_interval_seconds = 0", "checkout.reconcile_interval_seconds: must be greater than 0"),
    ("reconcile_interval_seconds = -1", "checkout.reconcile_interval_seconds: must be greater than 0"),
    ("reconcile_interval_seconds = 7200", "checkout.reconcile_interval_seconds: must be at most 3600"),
    ('reconcile_interval_seconds = "2"', "checkout.reconcile_interval_seconds: must be a number"),
    ("resume_after_seconds = 0", "checkout.resume_after_seconds: must be greater than 0"),
    ("resume_after_seconds = true", "checkout.resume_after_seconds: must be a number"),
    ("resume_seconds = 3", "checkout.resume_seconds: unknown key"),
])
def test_bad_values_are_named(tmp_path: Path, line: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        load(write(tmp_path, line), env={})
    assert any(message in problem for problem in info.value.problems), info.value.problems
