"""The "test mode: nothing is charged" band: on every page in emulator mode, never with real Amazon Pay."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import httpx
import pytest

from router.app import create_app
from router.web import demo
from router.web.demo import demo_settings
from router.web.pages import PAGE_KINDS, PageView
from router.web.platform import detect_platform
from router.web.render import render_page
from tests.support import serve_app

BAND = {"en": "Test mode: nothing is charged.", "ja": "テストモード：請求は発生しません。"}


@pytest.mark.parametrize("locale", ["en", "ja"])
def test_band_only_in_test_mode(locale: str) -> None:
    for kind in PAGE_KINDS:
        view = PageView(kind=kind, merchant_name="Shop")
        on = render_page(view, locale, detect_platform(None), "https://pay.example.com/x", test_mode=True)  # type: ignore[arg-type]
        off = render_page(view, locale, detect_platform(None), "https://pay.example.com/x")  # type: ignore[arg-type]
        assert on.count(BAND[locale]) == 1 and 'class="test-mode" role="status"' in on
        assert BAND["en"] not in off and BAND["ja"] not in off and "test-mode" not in off.split("<style>")[0]


def test_the_demo_keeps_a_bounded_number_of_checkouts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(demo, "MAX_CHECKOUTS", 3)
    db = tmp_path / "demo.db"
    with serve_app(create_app(demo_settings(str(db)), background=False)) as url:
        for _ in range(5):
            answer = httpx.post(url + "/demo/start", content=b"scenario=buyer-canceled&currency=JPY",
                                headers={"content-type": "application/x-www-form-urlencoded"})
            assert answer.status_code == 303
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT count(*) FROM checkouts").fetchone() == (3,)
