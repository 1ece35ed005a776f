"""`return-router serve`'s access log, written off the event loop: the same lines uvicorn writes, redacted."""

from __future__ import annotations

import json
import re
from pathlib import Path

import httpx

from tests.support.config import BASE_CONFIG

from .test_cli import running

SESSION = "bd504926-f659-4ad7-a1a9-9a747aaf5275"


def test_serve_writes_one_redacted_line_per_request(tmp_path: Path) -> None:
    config = tmp_path / "router.toml"
    config.write_text(BASE_CONFIG + f'\n[storage]\nurl = "sqlite:///{tmp_path}/rr.db"\n')
    output: list[str] = []
    with running("serve", "--config", str(config), cwd=tmp_path, output=output) as url:
        host = {"host": "pay.example.com"}
        for _ in range(3):
            assert httpx.get(url + "/.well-known/apple-app-site-association", headers=host).status_code == 200
        assert httpx.get(url + f"/amazon-pay/cancel?ref=r_{SESSION}", headers=host).status_code == 200
        assert httpx.get(url + f"/x/{SESSION}/y", headers=host).status_code == 404
    records = [json.loads(text) for text in output[0].splitlines() if text.startswith("{")]
    access = [r for r in records if r["logger"] == "uvicorn.access"]  # JSON lines: stderr is no terminal
    assert [(r["method"], r["path"], r["status"]) for r in access] == [
        *[("GET", "/.well-known/apple-app-site-association", 200)] * 3,
        ("GET", "/amazon-pay/cancel?…", 200),
        ("GET", "/x/bd50…5275/y", 404),
    ], access
    assert all(re.fullmatch(r'127\.0\.0\.1:\d+ - "GET \S+ HTTP/1\.1" \d{3}', r["message"]) for r in access)
    assert SESSION not in output[0]
