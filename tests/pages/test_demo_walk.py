"""Every demo scenario on an iPhone, an Android phone, an in-app browser and a desktop, in both languages:
each instruction on the page has the button or link it talks about, and the demo shows the real experience
(branding, "Open in app" on phones, a way back to the shop, help)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser, ConsoleMessage, Page
from playwright.async_api import Error as PlaywrightError

from router.app import create_app
from router.web.demo import demo_settings
from router.web.demo_page import DEMO_SCENARIOS
from tests.pages.samples import UA
from tests.support import serve_app

pytestmark = pytest.mark.asyncio(loop_scope="session")

# Words on a page that tell the buyer to use an action → the element that action is.
INSTRUCTIONS = {
    "en": {"open in app": "a.open-app", "return to the shop": "a.back", "contact": ".support a",
           "app store": "a.store", "google play": "a.store", "check now": "a.check-again"},
    "ja": {"アプリで開く": "a.open-app", "ショップに戻": "a.back", "お問い合わせ": ".support a",
           "app store": "a.store", "google play": "a.store", "今すぐ確認": "a.check-again"},
}
AGENTS = {"iphone": "iphone_safari", "android": "android_chrome", "in_app": "instagram_android",
          "desktop": "desktop_chrome"}
PAGE_CHECKS_JS = """
(selectors) => {
  const shown = el => !!el && el.getClientRects().length > 0 && getComputedStyle(el).visibility !== 'hidden';
  const back = document.querySelector('a.back');
  return {
    text: document.body.innerText.toLowerCase(),
    logo: (img => img ? img.complete && img.naturalWidth > 0 : null)(document.querySelector('img.logo')),
    kind: document.querySelector('.card').dataset.kind,
    visible: Object.fromEntries(selectors.map(s => [s, shown(document.querySelector(s))])),
    back: shown(back) ? {href: back.getAttribute('href'), primary: back.classList.contains('primary')} : null,
  };
}
"""
SELECTORS = sorted({*INSTRUCTIONS["en"].values(), *INSTRUCTIONS["ja"].values()})


@pytest.fixture(scope="module")
def demo_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    db = Path(tmp_path_factory.mktemp("demo")) / "demo.db"
    with serve_app(create_app(demo_settings(str(db)), background=False)) as url:
        yield url


async def _read(page: Page) -> dict[str, Any]:
    """The page's text and state; a pending page may refresh itself meanwhile, so read again then."""
    for _ in range(3):
        try:
            result: dict[str, Any] = await page.evaluate(PAGE_CHECKS_JS, SELECTORS)
            return result
        except PlaywrightError:
            await page.wait_for_load_state("load")
    raise AssertionError(f"{page.url} kept navigating")


async def _start(browser: Browser, demo_url: str, locale: str) -> dict[str, str]:
    """Click every scenario on the landing page once; the URL Amazon sent the buyer back to, by scenario."""
    context = await browser.new_context(locale=locale)
    urls = {}
    try:
        for scenario in DEMO_SCENARIOS:
            page = await context.new_page()
            await page.goto(f"{demo_url}/?lang={locale}", wait_until="load")
            await page.click(f'form[data-scenario="{scenario}"] button')
            await page.wait_for_load_state("load")
            urls[scenario] = page.url
            await page.close()
    finally:
        await context.close()
    return urls


async def _check(browser: Browser, urls: dict[str, str], demo_url: str, agent: str, locale: str) -> list[str]:
    """Open every scenario's return URL as ``agent``; return what is wrong, as readable lines."""
    context = await browser.new_context(user_agent=UA[AGENTS[agent]], locale=locale,
                                        viewport={"width": 390 if agent != "desktop" else 1280, "height": 844})
    problems: list[str] = []

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error" and "the server responded with a status" not in message.text:
            problems.append(f"{agent}/{locale}: console: {message.text}")

    try:
        for scenario, url in urls.items():
            where = f"{agent}/{locale}/{scenario}"
            page = await context.new_page()  # a fresh page: a pending page's refresh must not race the next one
            page.on("console", on_console)
            await page.goto(url, wait_until="load")
            problems += await _check_page(page, where, agent, locale, demo_url)
            if scenario == "amazon-error" and "/amazon-pay/error" not in page.url:
                problems.append(f"{where}: landed on {page.url}, not the error URL")
            await page.close()
    finally:
        await context.close()
    return problems


async def _check_page(page: Page, where: str, agent: str, locale: str, demo_url: str) -> list[str]:
    problems = []
    seen = await _read(page)
    for words, selector in INSTRUCTIONS[locale].items():
        if words in seen["text"] and not seen["visible"][selector]:
            problems.append(f"{where}: says {words!r} but has no {selector}")
    if seen["logo"] is not True:
        problems.append(f"{where}: the logo did not load ({seen['logo']})")
    if not seen["visible"][".support a"]:
        problems.append(f"{where}: no support link")
    phone = agent in ("iphone", "android", "in_app")
    if seen["visible"]["a.open-app"] != phone:
        problems.append(f"{where}: 'Open in app' shown={not phone} on {agent}")
    back = seen["back"] or {}
    if back.get("href") != f"{demo_url}/":
        problems.append(f"{where}: the way back goes to {back.get('href')!r}, not the demo shop")
    elif seen["kind"] in ("declined", "canceled", "expired", "amazon_error") and not back["primary"]:
        problems.append(f"{where}: trying again is not the primary action")
    return problems


@pytest.mark.timeout(240)
async def test_every_instruction_has_its_action(browser: Browser, demo_url: str) -> None:
    problems = []
    for locale in ("en", "ja"):
        urls = await _start(browser, demo_url, locale)
        assert set(urls) == set(DEMO_SCENARIOS)
        checks = [_check(browser, urls, demo_url, agent, locale) for agent in AGENTS]
        problems += [problem for found in await asyncio.gather(*checks) for problem in found]
    assert problems == []


async def test_the_walk_flags_an_instruction_without_its_button(browser: Browser, demo_url: str) -> None:
    """Guards the guard: on desktop there is no "Open in app" button, so the copy must not ask for it."""
    context = await browser.new_context(user_agent=UA["desktop_chrome"], locale="en")
    page = await context.new_page()
    try:
        await page.goto(f"{demo_url}/?lang=en", wait_until="load")
        await page.click('form[data-scenario="completed"] button')
        await page.wait_for_load_state("load")
        seen = await _read(page)
        assert not seen["visible"]["a.open-app"] and await page.locator("a.open-app").count() == 0
        assert "open in app" not in seen["text"] and "thank you" in seen["text"]
    finally:
        await context.close()
