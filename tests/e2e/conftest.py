"""End-to-end fixtures: the Amazon Pay emulator and return-router, each on a real socket."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from router.amazon_pay import create_emulator_app
from router.amazon_pay.keys import load_public_key
from router.app import create_app
from router.config import Settings, load
from tests.router.conftest import APPS_AND_ROUTES
from tests.support import serve_app

KEY_ID = "SANDBOX-E2ETESTKEY"
TOKEN = "merchant-test-token-0123456789"
HOST = "pay.example.com"


@dataclass
class Emulator:
    url: str

    def create_session(self, amount: str = "14.00", currency: str = "USD", intent: str = "AuthorizeWithCapture",
                       scenario: str = "completed", **extra: Any) -> str:
        body = {"chargeAmount": {"amount": amount, "currencyCode": currency}, "paymentIntent": intent,
                "scenario": scenario, **extra}
        answer = httpx.post(f"{self.url}/_emulator/checkout-sessions", json=body)
        assert answer.status_code == 201, answer.text
        return str(answer.json()["checkoutSessionId"])

    def requests(self, operation: str | None = None) -> list[dict[str, Any]]:
        log = httpx.get(f"{self.url}/_emulator/requests").json()["requests"]
        return [r for r in log if operation is None or r.get("operation") == operation]


@pytest.fixture
def emulator(key_files: tuple[Path, Path]) -> Iterator[Emulator]:
    app = create_emulator_app({KEY_ID: load_public_key(key_files[1].read_bytes())})
    with serve_app(app) as url:
        yield Emulator(url)


def router_config_text(emulator_url: str, private_key: Path, db: str, extra: str = "") -> str:
    return APPS_AND_ROUTES + f"""
[merchant]
name = "Example Shop"
shop_url = "https://shop.example.com/cart"
api_token_env = "RR_TEST_TOKEN"

[storage]
url = "{db}"

[amazon_pay]
public_key_id = "{KEY_ID}"
private_key_file = "{private_key}"
region = "us"
endpoint = "{emulator_url}"
max_attempts = 2
deadline = 10
{extra}"""


@pytest.fixture
def make_settings(tmp_path: Path, emulator: Emulator, key_files: tuple[Path, Path]) -> Callable[..., Settings]:
    def make(extra: str = "", db: str | None = None) -> Settings:
        path = tmp_path / "router.toml"
        path.write_text(router_config_text(emulator.url, key_files[0], db or f"sqlite:///{tmp_path}/rr.db", extra))
        return load(path, env={"RR_TEST_TOKEN": TOKEN})
    return make


@dataclass
class Router:
    url: str

    def register(self, amount: str = "14.00", currency: str = "USD", intent: str = "AuthorizeWithCapture",
                 pending: bool = False, reference: str = "order-1") -> dict[str, Any]:
        body = {"merchantReference": reference, "chargeAmount": {"amount": amount, "currencyCode": currency},
                "paymentIntent": intent, "canHandlePendingAuthorization": pending}
        answer = httpx.post(f"{self.url}/v1/checkouts", json=body, headers={"authorization": f"Bearer {TOKEN}"})
        assert answer.status_code == 201, answer.text
        return dict(answer.json())

    def get(self, path: str, host: str = HOST, **headers: str) -> httpx.Response:
        return httpx.get(self.url + path, headers={"host": host, **headers}, follow_redirects=False, timeout=60)


@pytest.fixture
def router(make_settings: Callable[..., Settings]) -> Iterator[Router]:
    with serve_app(create_app(make_settings(), background=False)) as url:
        yield Router(url)
