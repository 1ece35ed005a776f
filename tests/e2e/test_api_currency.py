"""The currencies the merchant API takes follow the merchant's Amazon Pay region (router/checkout/money.py
cites the sources); the built-in emulator takes every currency."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from router.app import create_app
from router.checkout.money import DECIMALS
from router.config import Settings, load
from tests.support import serve_app
from tests.support.config import AUTH, BASE_CONFIG, TOKEN, TOKEN_ENV

MULTI_CURRENCY = ("AUD", "GBP", "DKK", "EUR", "HKD", "JPY", "NZD", "NOK", "ZAR", "SEK", "CHF", "USD")


def register(url: str, currency: str) -> httpx.Response:
    body = {"merchantReference": "o-1", "paymentIntent": "Confirm",
            "chargeAmount": {"amount": "10" if currency == "JPY" else "10.00", "currencyCode": currency}}
    return httpx.post(f"{url}/v1/checkouts", json=body, headers=AUTH)


@pytest.mark.parametrize(("region", "accepted"), [
    ("us", {"USD"}), ("na", {"USD"}), ("jp", {"JPY"}), ("eu", set(MULTI_CURRENCY)), ("uk", set(MULTI_CURRENCY)),
])
def test_each_region_takes_its_currencies(make_settings: Callable[..., Settings], region: str,
                                          accepted: set[str]) -> None:
    with serve_app(create_app(make_settings(region=region), background=False)) as url:
        for currency in MULTI_CURRENCY:
            answer = register(url, currency)
            if currency in accepted:
                assert answer.status_code == 201, (currency, answer.text)
                continue
            assert answer.status_code == 400, (currency, answer.text)
            error = answer.json()["error"]
            assert error["code"] == "currency_not_supported"
            assert f"region {'na' if region == 'us' else region} does not charge in {currency}" in error["message"]
        cad = register(url, "CAD")  # no region takes it
        assert cad.status_code == 400 and cad.json()["error"]["code"] == "invalid_amount"


def test_the_emulator_takes_every_currency(tmp_path: Path) -> None:
    path = tmp_path / "router.toml"
    path.write_text(BASE_CONFIG + f'\n[merchant]\nname = "Shop"\napi_token_env = "{TOKEN_ENV}"\n'
                    f'[storage]\nurl = "sqlite:///{tmp_path}/rr.db"\n')
    with serve_app(create_app(load(path, env={TOKEN_ENV: TOKEN}), background=False)) as url:
        assert sorted(DECIMALS) == sorted(MULTI_CURRENCY)
        for currency in MULTI_CURRENCY:
            assert register(url, currency).status_code == 201, currency
