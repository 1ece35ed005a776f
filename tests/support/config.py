"""The one router config builder: apps and routes, a merchant, a store, and the emulator as Amazon Pay.

Every test area and the benches build their configs here, so a new required key is added once.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

KEY_ID = "SANDBOX-E2ETESTKEY"  # the merchant's public key id, as the emulator knows it
TOKEN = "merchant-test-token-0123456789"
WEBHOOK_SECRET = "whsec_durability_0123456789abcdef"
TOKEN_ENV = "RR_TEST_TOKEN"
WEBHOOK_SECRET_ENV = "RR_TEST_WEBHOOK_SECRET"
HOST = "pay.example.com"
AUTH = {"authorization": f"Bearer {TOKEN}"}
LEASE_SECONDS = 2.0

IOS = """
[ios]
app_ids = ["ABCDE12345.com.example.shop"]
app_store_id = "1234567890"
"""

ANDROID = """
[android]
package = "com.example.shop"
sha256_cert_fingerprints = [
  "14:6D:E9:83:C5:73:06:50:D8:EE:B9:95:2F:34:FC:64:16:A0:83:42:E6:1D:BE:A8:8A:04:96:B2:3F:CF:44:E5",
]
"""

# (host, path, flow): Amazon Pay's three return URLs on the pay host.
PAY_ROUTES = (
    (HOST, "/amazon-pay/result", "success"),
    (HOST, "/amazon-pay/cancel", "cancel"),
    (HOST, "/amazon-pay/error", "error"),
)


def routes(*entries: tuple[str, str, str]) -> str:
    """[[routes]] tables, one per (host, path, flow)."""
    return "".join(f'\n[[routes]]\nhost = "{host}"\npath = "{path}"\nflow = "{flow}"\n' for host, path, flow in entries)


APPS_AND_ROUTES = IOS + ANDROID + routes(*PAY_ROUTES)

# The in-process Amazon Pay emulator, said explicitly: a config without [amazon_pay] does not load.
EMULATOR = """
[amazon_pay]
emulator = true
"""

BASE_CONFIG = APPS_AND_ROUTES + EMULATOR


@dataclass(frozen=True)
class Timings:
    """[checkout] timings short enough for a test to see a lease expire and the reconciler act."""

    lease_seconds: float = LEASE_SECONDS
    interval: float = 0.3
    resume_after: float = 1.0

    def section(self) -> str:
        return (f"\n[checkout]\nlease_seconds = {self.lease_seconds}\n"
                f"reconcile_interval_seconds = {self.interval}\nresume_after_seconds = {self.resume_after}\n")


def router_config(
    emulator_url: str, private_key: Path, db_url: str, *, extra: str = "", webhook_url: str | None = None,
    timings: Timings | None = None, deadline: float = 10, merchant: str = "Example Shop", region: str = "us",
) -> str:
    """A complete config against the emulator at `emulator_url`; `extra` goes last (after [amazon_pay]).

    `region` decides the currencies the API takes (us: USD only, jp: JPY only, eu: the multi-currency ones)."""
    webhook = (f'webhook_url = "{webhook_url}"\nwebhook_secret_env = "{WEBHOOK_SECRET_ENV}"\n'
               if webhook_url else "")
    return APPS_AND_ROUTES + f"""
[merchant]
name = "{merchant}"
shop_url = "https://shop.example.com/cart"
api_token_env = "{TOKEN_ENV}"
{webhook}
[storage]
url = "{db_url}"
{timings.section() if timings else ""}
[amazon_pay]
public_key_id = "{KEY_ID}"
private_key_file = "{private_key}"
region = "{region}"
endpoint = "{emulator_url}"
max_attempts = 2
deadline = {deadline:g}
{extra}"""


def process_config(
    emulator_url: str, private_key: Path, db_url: str, *, webhook_url: str | None = None,
    lease_seconds: float = LEASE_SECONDS, interval: float = 0.3, resume_after: float = 1.0, extra: str = "",
) -> str:
    """`router_config` for `serve` processes: the durability timings and a deadline with room for load;
    `extra`: more [amazon_pay] lines."""
    return router_config(emulator_url, private_key, db_url, webhook_url=webhook_url, deadline=20, extra=extra,
                         merchant="Durable Shop", timings=Timings(lease_seconds, interval, resume_after))
