from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

APPS_AND_ROUTES = """
[ios]
app_ids = ["ABCDE12345.com.example.shop"]
app_store_id = "1234567890"

[android]
package = "com.example.shop"
sha256_cert_fingerprints = [
  "14:6D:E9:83:C5:73:06:50:D8:EE:B9:95:2F:34:FC:64:16:A0:83:42:E6:1D:BE:A8:8A:04:96:B2:3F:CF:44:E5",
]

[[routes]]
host = "pay.example.com"
path = "/amazon-pay/result"
flow = "success"

[[routes]]
host = "pay.example.com"
path = "/amazon-pay/cancel"
flow = "cancel"

[[routes]]
host = "pay.example.com"
path = "/amazon-pay/error"
flow = "error"
"""

# The in-process Amazon Pay emulator, said explicitly: a config without [amazon_pay] does not load.
EMULATOR = """
[amazon_pay]
emulator = true
"""

BASE_CONFIG = APPS_AND_ROUTES + EMULATOR


@pytest.fixture
def write_config(tmp_path: Path) -> Callable[[str], Path]:
    def write(text: str, name: str = "config.toml") -> Path:
        path = tmp_path / name
        path.write_text(textwrap.dedent(text), encoding="utf-8")
        return path
    return write
