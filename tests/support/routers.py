"""return-router in this process: its settings from the one config builder, and a merchant/buyer client."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from router.config import Settings, load
from tests.support import http_client
from tests.support.config import AUTH, HOST, TOKEN, TOKEN_ENV, router_config


def load_settings(path: Path, emulator_url: str, private_key: Path, db_url: str, *, extra: str = "",
                  region: str = "us") -> Settings:
    """Write `router_config(...)` to `path` and load it as `serve` would, with the API token set."""
    path.write_text(router_config(emulator_url, private_key, db_url, extra=extra, region=region))
    return load(path, env={TOKEN_ENV: TOKEN})


@dataclass
class Router:
    """A router at `url`: the merchant's API with the token, the buyer's pages with the routes' Host."""

    url: str

    def register(self, amount: str = "14.00", currency: str = "USD", intent: str = "AuthorizeWithCapture",
                 pending: bool = False, reference: str = "order-1", **extra: Any) -> dict[str, Any]:
        body = {"merchantReference": reference, "chargeAmount": {"amount": amount, "currencyCode": currency},
                "paymentIntent": intent, "canHandlePendingAuthorization": pending, **extra}
        answer = http_client().post(f"{self.url}/v1/checkouts", json=body, headers=AUTH)
        assert answer.status_code == 201, answer.text
        return dict(answer.json())

    def get(self, path: str, host: str = HOST, **headers: str) -> httpx.Response:
        return http_client().get(self.url + path, headers={"host": host, **headers}, follow_redirects=False, timeout=60)
