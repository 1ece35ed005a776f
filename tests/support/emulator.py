"""The one client of the Amazon Pay emulator: sessions made over its HTTP surface, its state read directly."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from router.amazon_pay import create_emulator_app
from router.amazon_pay.emulator.app import Emulator as EmulatorCore
from router.amazon_pay.emulator.state import Charge
from router.amazon_pay.keys import load_public_key
from tests.support import http_client, serve_app, wait_until
from tests.support.config import HOST, KEY_ID


def result_url_for(ref: str) -> str:
    """The result URL registering `ref` gives out (the tests' config: tests/support/config.py)."""
    return f"https://{HOST}/amazon-pay/result?{urlencode({'ref': ref})}"


@dataclass
class Emulator:
    """The emulator at `url`, running in this process (`core` is its state, read behind its back)."""

    url: str
    core: EmulatorCore

    def create_session(self, *, scenario: str = "completed", amount: str = "14.00", currency: str = "USD",
                       intent: str = "AuthorizeWithCapture", ref: str | None = None, **extra: Any) -> str:
        """`ref`: the session's result URL names it, as one made from registering's URLs does (only such a
        session may decline, cancel or expire the order)."""
        body = {"chargeAmount": {"amount": amount, "currencyCode": currency}, "paymentIntent": intent,
                "scenario": scenario, **extra}
        if ref is not None:
            body["webCheckoutDetails"] = {"checkoutResultReturnUrl": result_url_for(ref)}
        answer = http_client().post(f"{self.url}/_emulator/checkout-sessions", json=body)
        assert answer.status_code == 201, answer.text
        return str(answer.json()["checkoutSessionId"])

    def requests(self, operation: str | None = None, session_id: str | None = None) -> list[dict[str, Any]]:
        log = http_client().get(f"{self.url}/_emulator/requests").json()["requests"]
        return [r for r in log if operation in (None, r.get("operation"))
                and session_id in (None, r.get("checkoutSessionId"))]

    def calls(self, session_id: str) -> int:
        """Amazon-surface calls that reached the session, counted on arrival (before any latency)."""
        return self.core.state.sessions[session_id].calls

    def charges(self, session_id: str) -> list[Charge]:
        return [c for c in list(self.core.state.charges.values()) if c.session_id == session_id]

    def wait_for(self, predicate: Callable[[], bool], what: str, timeout: float = 30) -> None:
        wait_until(predicate, what, timeout)


@contextlib.contextmanager
def serve_emulator(public_key: Path, key_id: str = KEY_ID) -> Iterator[Emulator]:
    """The emulator on a real socket in a background thread, knowing the merchant's `public_key` as `key_id`."""
    app = create_emulator_app({key_id: load_public_key(public_key.read_bytes())})
    with serve_app(app) as url:
        yield Emulator(url, app.state.emulator)
