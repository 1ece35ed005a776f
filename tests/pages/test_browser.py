"""The pages in a real headless Chromium: no console errors, no CSP violations, no stray requests,
the right language and the right "Open in app" actions for each kind of phone or desktop."""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import ConsoleMessage, Page, Request, Response

from router.web.demo_page import DEMO_SCENARIOS
from router.web.i18n import LOCALES
from router.web.links import intent_url
from router.web.pages import DEFAULT_STATUS, PAGE_KINDS
from router.web.render import templates_dir
from tests.pages.conftest import OPEN_HOST, Contexts
from tests.pages.samples import ANDROID_PACKAGE, APP_STORE_ID, HOSTILE, UA

pytestmark = pytest.mark.asyncio(loop_scope="session")

CATALOGS = {
    locale: json.loads((templates_dir() / "messages" / f"{locale}.json").read_text(encoding="utf-8"))
    for locale in LOCALES
}
ACCEPT = {"en": "en-US", "ja": "ja-JP"}
PLAY_URL = f"https://play.google.com/store/apps/details?id={ANDROID_PACKAGE}"
PHONE = {"width": 390, "height": 844}


def shown(message: str) -> str:
    """A catalog message as the page shows it: phrase marks become <wbr>, "Amazon Pay" never breaks."""
    return message.replace("|", "").replace("Amazon Pay", "Amazon\u00a0Pay")


@dataclass
class Watched:
    """Everything that went wrong while a page loaded, as seen by the browser."""

    page: Page
    console: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)

    def problems(self, url: str, status: int) -> list[str]:
        # Chromium logs a console error for a main document answered with 4xx/5xx; that is the page's
        # intended status, not a problem. Anything else logged as an error is.
        expected = f"the server responded with a status of {status}"
        console = [text for text in self.console if not (status >= 400 and expected in text)]
        stray = [r for r in self.requests if r.split("#")[0] != url and not r.startswith("data:")]
        return console + self.failed + [f"unexpected request {r}" for r in stray]


async def _open(
    contexts: Contexts, url: str, *, ua: str, locale: str = "en", viewport: dict[str, int] | None = None
) -> tuple[Watched, Response, Page]:
    size = viewport or PHONE
    context = await contexts.get(ua, ACCEPT[locale], size["width"], size["height"])
    page = await context.new_page()
    watched = Watched(page)

    def on_console(message: ConsoleMessage) -> None:
        if message.type in ("error", "warning"):
            watched.console.append(f"{message.type}: {message.text}")

    def on_failed(request: Request) -> None:
        watched.failed.append(f"request failed {request.url}: {request.failure}")

    page.on("console", on_console)
    page.on("pageerror", lambda error: watched.console.append(f"page error: {error}"))
    page.on("request", lambda request: watched.requests.append(request.url))
    page.on("requestfailed", on_failed)
    response = await page.goto(url, wait_until="load")
    assert response is not None
    return watched, response, page


def _headers_ok(headers: dict[str, Any]) -> None:
    assert headers["content-type"].startswith("text/html")
    assert headers["content-security-policy"].startswith("default-src 'none'; style-src 'sha256-")
    assert headers["referrer-policy"] == "no-referrer"
    assert headers["cache-control"] == "no-store"
    assert headers["x-robots-tag"] == "noindex"
    assert headers["x-content-type-options"] == "nosniff"


@pytest.mark.parametrize("kind", PAGE_KINDS)
@pytest.mark.parametrize("locale", LOCALES)
async def test_every_page_loads_cleanly_in_both_languages(
    contexts: Contexts, page_server: str, kind: str, locale: str
) -> None:
    url = f"{page_server}/page/{kind}"
    watched, response, page = await _open(contexts, url, ua=UA["iphone_safari"], locale=locale)
    try:
        assert response.status == DEFAULT_STATUS[kind]  # type: ignore[index]
        _headers_ok(response.headers)
        messages = CATALOGS[locale]
        assert await page.locator("html").get_attribute("lang") == locale
        title_key = "page.success.title_named" if kind == "success" else f"page.{kind}.title"
        title = shown(messages[title_key].format(name="Jane Doe"))
        assert await page.locator("h1").inner_text() == title
        lead = page.locator("p.lead")
        assert await lead.is_visible() and await lead.inner_text() == shown(messages[f"page.{kind}.lead"])
        assert await page.title() == f"{title} – Example Shop"
        # Hostile merchant reference is shown as text, never executed or parsed as markup.
        assert await page.get_by_text(HOSTILE, exact=True).is_visible()
        assert await page.locator("b[onmouseover]").count() == 0
        assert await page.locator(".open-app").inner_text() == messages["app.open"]
        await page.wait_for_timeout(50)  # let late console messages arrive
        assert watched.problems(url, response.status) == []
    finally:
        await page.close()


async def test_iphone_safari_gets_smart_banner_and_alternate_host_button(
    contexts: Contexts, page_server: str
) -> None:
    url = f"{page_server}/page/success?ref=r1&amazonCheckoutSessionId=abc-123"
    watched, response, page = await _open(contexts, url, ua=UA["iphone_safari"])
    try:
        banner = await page.locator('meta[name="apple-itunes-app"]').get_attribute("content")
        assert banner == f"app-id={APP_STORE_ID}, app-argument={url}"
        open_app = page.locator("a.open-app")
        assert await open_app.is_visible()
        href = await open_app.get_attribute("href")
        assert href == url.replace("127.0.0.1:" + url.split(":")[2].split("/")[0], OPEN_HOST)
        assert (
            await page.locator("a.store").get_attribute("href")
            == f"https://apps.apple.com/app/id{APP_STORE_ID}"
        )
        assert await page.locator("a.store").inner_text() == "Download on the App Store"
        assert await page.locator(".guide").count() == 0
        assert watched.problems(url, response.status) == []
    finally:
        await page.close()


@pytest.mark.parametrize("locale", LOCALES)
async def test_android_chrome_gets_an_intent_button_and_play_link(
    contexts: Contexts, page_server: str, locale: str
) -> None:
    url = f"{page_server}/page/success?ref=r1&amazonCheckoutSessionId=abc-123"
    watched, response, page = await _open(contexts, url, ua=UA["android_chrome"], locale=locale)
    try:
        href = await page.locator("a.open-app").get_attribute("href")
        assert href == intent_url(url, ANDROID_PACKAGE, PLAY_URL)
        assert href is not None and href.startswith("intent://127.0.0.1:")
        assert await page.locator("a.store").get_attribute("href") == PLAY_URL
        assert await page.locator("a.store").inner_text() == CATALOGS[locale]["app.store.android"]
        assert await page.locator('meta[name="apple-itunes-app"]').count() == 0
        assert watched.problems(url, response.status) == []
    finally:
        await page.close()


@pytest.mark.parametrize("ua_name", ["desktop_chrome", "desktop_firefox"])
async def test_desktop_gets_no_store_prompts_or_app_buttons(
    contexts: Contexts, page_server: str, ua_name: str
) -> None:
    url = f"{page_server}/page/success"
    watched, response, page = await _open(
        contexts, url, ua=UA[ua_name], viewport={"width": 1280, "height": 800}
    )
    try:
        assert await page.locator(".app, a.open-app, a.store, .guide").count() == 0
        assert await page.locator('meta[name="apple-itunes-app"]').count() == 0
        assert await page.locator("a.back").is_visible()
        assert await page.locator("a.back").get_attribute("href") == "https://shop.example/cart"
        assert watched.problems(url, response.status) == []
    finally:
        await page.close()


@pytest.mark.parametrize(
    ("ua_name", "scheme"), [("facebook_ios", "http://"), ("instagram_android", "intent://")]
)
@pytest.mark.parametrize("locale", LOCALES)
async def test_in_app_browser_gets_open_in_browser_guidance(
    contexts: Contexts, page_server: str, ua_name: str, scheme: str, locale: str
) -> None:
    url = f"{page_server}/page/success"
    watched, response, page = await _open(contexts, url, ua=UA[ua_name], locale=locale)
    try:
        guide = page.locator(".guide")
        assert await guide.is_visible()
        text = await guide.inner_text()
        assert CATALOGS[locale]["app.in_app.body"] in text and CATALOGS[locale]["app.in_app.copy"] in text
        href = await page.locator("a.open-app").get_attribute("href")
        assert href is not None and href.startswith(scheme)
        assert watched.problems(url, response.status) == []
    finally:
        await page.close()


async def test_pending_page_refreshes_itself_without_javascript(contexts: Contexts, page_server: str) -> None:
    url = f"{page_server}/page/pending?refresh=1"
    watched, response, page = await _open(contexts, url, ua=UA["iphone_safari"], locale="ja")
    try:
        assert await page.locator("h1").inner_text() == "お支払いを確認しています"  # <wbr> adds no text
        async with page.expect_response(lambda r: r.url == url, timeout=5000) as reloaded:
            pass  # the meta refresh fires by itself after one second
        assert (await reloaded.value).status == 200
        assert watched.requests.count(url) >= 2
        assert await page.locator("a.check-again").get_attribute("href") == "/page/pending?refresh=1"
        assert watched.problems(url, response.status) == []
    finally:
        await page.close()


def _png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


@pytest.mark.parametrize("width", [320, 390])
async def test_success_page_fits_a_phone(
    contexts: Contexts, page_server: str, width: int, tmp_path: Path
) -> None:
    url = f"{page_server}/page/success?currency=USD"
    viewport = {"width": width, "height": 800}
    watched, response, page = await _open(contexts, url, ua=UA["iphone_safari"], viewport=viewport)
    try:
        assert await page.evaluate("document.documentElement.scrollWidth") <= width  # no sideways scroll
        assert await page.locator(".amount dd").inner_text() == "$14.00"
        card = await page.locator(".card").bounding_box()
        for selector in ("a.open-app", "a.back"):
            box = await page.locator(selector).bounding_box()
            assert card is not None and box is not None
            assert box["height"] >= 48 and box["width"] >= 0.8 * card["width"], selector
        shot = await page.screenshot(path=str(tmp_path / "success.png"), full_page=True)
        assert _png_size(shot)[0] == width
        assert watched.problems(url, response.status) == []
    finally:
        await page.close()


@pytest.mark.parametrize("locale", LOCALES)
async def test_demo_page_posts_the_chosen_scenario(contexts: Contexts, page_server: str, locale: str) -> None:
    url = f"{page_server}/"
    watched, response, page = await _open(contexts, url, ua=UA["android_chrome"], locale=locale)
    try:
        _headers_ok(response.headers)
        assert await page.locator("h1").inner_text() == CATALOGS[locale]["demo.title"]
        assert await page.locator("form.scenario").count() == len(DEMO_SCENARIOS)
        assert watched.problems(url, response.status) == []
        # Submitting goes through the CSP's form-action 'self'; the echo page is the test app's own.
        form = page.locator('form[data-scenario="pending-then-declined"]')
        await form.locator("select").select_option("USD")
        await form.locator("button").click()
        await page.wait_for_url(f"{page_server}/demo/start")
        body = await page.locator("body").inner_text()
        assert body == f"started scenario=pending-then-declined currency=USD amount=14.00 lang={locale}"
    finally:
        await page.close()


async def test_the_checks_catch_csp_violations_and_failed_requests(
    contexts: Contexts, page_server: str
) -> None:
    """Guards the guard: a page breaking the CSP must show up as problems."""
    url = f"{page_server}/broken"
    watched, response, page = await _open(contexts, url, ua=UA["desktop_chrome"])
    try:
        await page.wait_for_timeout(100)
        problems = " ".join(watched.problems(url, response.status))
        assert "Content Security Policy" in problems
        assert "missing.png" in problems
    finally:
        await page.close()
