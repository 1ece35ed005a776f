"""The demo in a real headless Chromium: a new user clicks each scenario and sees a true page."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, ConsoleMessage

from router.app import create_app
from router.checkout.probes import LOOK_INTERVAL
from router.web.demo import demo_settings
from tests.support import serve_app

pytestmark = pytest.mark.asyncio(loop_scope="session")

EXPECTED = {
    "completed": ["Thank you, "],
    "pending-then-authorized": ["Confirming your payment", "Thank you, "],
    "pending-then-declined": ["Confirming your payment", "Payment not completed"],
    "declined": ["Payment not completed"],
    "expired": ["This checkout has expired"],
    "buyer-canceled": ["Payment canceled"],
    "amazon-error": ["ran into a problem"],  # on the error URL, like Amazon sends the buyer
}


@pytest.fixture
def demo_url(tmp_path: Path) -> Iterator[str]:
    with serve_app(create_app(demo_settings(str(tmp_path / "demo.db")), background=False)) as url:
        yield url


@pytest.mark.parametrize("locale", ["en-US", "ja-JP"])
async def test_every_demo_scenario_end_to_end(browser: Browser, demo_url: str, locale: str) -> None:
    context = await browser.new_context(locale=locale)
    page = await context.new_page()
    problems: list[str] = []

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error" and "status of 503" not in message.text:  # the error scenario's own status
            problems.append(message.text)

    page.on("console", on_console)
    page.on("requestfailed", lambda request: problems.append(f"failed {request.url}"))
    for scenario, titles in EXPECTED.items():
        await page.goto(demo_url + "/")
        await page.click(f'form[data-scenario="{scenario}"] button')
        await page.wait_for_load_state("load")
        assert "/amazon-pay/" in page.url
        assert page.url.split("?")[0].endswith("/error") == (scenario == "amazon-error")
        lang = await page.get_attribute("html", "lang")
        assert lang == locale[:2]
        if locale.startswith("en"):
            assert titles[0] in await page.inner_text("h1"), scenario
            for later in titles[1:]:
                await asyncio.sleep(LOOK_INTERVAL)  # as the page's own refresh waits: sooner is the stored state
                await page.reload()
                assert later in await page.inner_text("h1"), scenario
        assert "Traceback" not in await page.content()
    assert problems == []
    await context.close()
