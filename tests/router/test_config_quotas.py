"""[amazon_pay] quota keys: defaults by environment, validation naming the key, wiring into the client."""

from __future__ import annotations

from pathlib import Path

import pytest

from router.amazon_pay import generate_key_pair
from router.amazon_pay.quota import FINALIZE, GET_CHARGE, GET_SESSION, Limit
from router.app import create_app
from router.config import ConfigError, load
from tests.support.config import APPS_AND_ROUTES, BASE_CONFIG


def write(tmp_path: Path, extra: str, key_id: str = "SANDBOX-AEXAMPLE") -> Path:
    (tmp_path / "key.pem").write_bytes(generate_key_pair()[0])
    path = tmp_path / "config.toml"
    path.write_text(APPS_AND_ROUTES + f'\n[storage]\nurl = "sqlite:///{tmp_path}/rr.db"\n\n[amazon_pay]\n'
                    f'public_key_id = "{key_id}"\nprivate_key_file = "key.pem"\n{extra}\n')
    return path


@pytest.mark.parametrize(("key_id", "finalize", "get_session"), [
    ("SANDBOX-AEXAMPLE", Limit(2, 1), Limit(10, 1)),
    ("LIVE-AEXAMPLE", Limit(20, 4), Limit(40, 8)),
])
def test_the_client_gets_amazons_figures_for_its_environment(
    tmp_path: Path, key_id: str, finalize: Limit, get_session: Limit
) -> None:
    runtime = create_app(load(write(tmp_path, "", key_id), env={})).state.runtime
    quota = runtime.amazon.quota
    assert quota is not None and quota.max_wait == 2.0
    assert (quota.limit(FINALIZE), quota.limit(GET_SESSION)) == (finalize, get_session)
    assert runtime.reconciler.breaker is runtime.amazon.breaker is not None  # one breaker, shared
    assert runtime.amazon.breaker.state == "closed"


def test_the_keys_reach_the_client(tmp_path: Path) -> None:
    text = ("quota_fraction = 0.5\nbackground_share = 0.25\nquota_wait_seconds = 1.5\n"
            "finalize_quota = [40, 8]\nget_charge_quota = [10, 2.5]\n")
    settings = load(write(tmp_path, text, "LIVE-AEXAMPLE"), env={})
    quota = create_app(settings).state.runtime.amazon.quota
    assert quota is not None and quota.max_wait == 1.5
    assert quota.limit(FINALIZE) == Limit(20, 4)  # the override, halved
    assert quota.limit(GET_CHARGE) == Limit(5, 1.25)
    assert quota.limit(GET_SESSION) == Limit(20, 4)  # Amazon's 40/8, halved


def test_the_built_in_emulator_has_no_quota(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text(BASE_CONFIG + f'\n[storage]\nurl = "sqlite:///{tmp_path}/rr.db"\n')
    assert create_app(load(path, env={})).state.runtime.amazon.quota is None


@pytest.mark.parametrize(("line", "message"), [
    ("quota_fraction = 0", "amazon_pay.quota_fraction: must be greater than 0"),
    ("quota_fraction = 1.5", "amazon_pay.quota_fraction: must be at most 1"),
    ("background_share = -0.5", "amazon_pay.background_share: must be greater than 0"),
    ('background_share = "half"', "amazon_pay.background_share: must be a number"),
    ("quota_wait_seconds = 60", "amazon_pay.quota_wait_seconds: must be between 0 and 30"),
    ("finalize_quota = [20]", "amazon_pay.finalize_quota: must be [burst, per_second]"),
    ("finalize_quota = [0.5, 4]", "amazon_pay.finalize_quota: must be [burst, per_second]"),
    ('get_checkout_session_quota = ["40", 8]', "amazon_pay.get_checkout_session_quota: must be [burst"),
    ("get_charge_quota = [20, 0]", "amazon_pay.get_charge_quota: must be [burst, per_second]"),
    ("refund_quota = [20, 4]", "amazon_pay.refund_quota: unknown key"),
])
def test_bad_values_are_named(tmp_path: Path, line: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        load(write(tmp_path, line), env={})
    assert any(message in problem for problem in info.value.problems), info.value.problems
