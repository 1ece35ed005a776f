"""Fixtures for the browser tests: one real headless Chromium per session and a small page server."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
import pytest_asyncio
from playwright.async_api import Browser, BrowserContext
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, Response
from starlette.routing import Route

from router.web.branding import PagesSettings
from router.web.demo_page import DemoView, demo_response, parse_demo_form
from router.web.links import alternate_host_url
from router.web.pages import PAGE_KINDS, AppLinks
from router.web.render import NO_BRANDING, page_response, security_headers
from tests.pages.samples import ANDROID_PACKAGE, APP_STORE_ID, HOSTILE, sample_view
from tests.support import serve_app

OPEN_HOST = "open.shop.example"  # the alternate associated host for iOS "Open in app"
PUBLIC_HOST = "pay.shop.example"  # the public host in front of a (pretend) TLS-terminating proxy
SUPPORT = PagesSettings(support_url="https://shop.example/help", support_email="help@shop.example")


async def _page(request: Request) -> Response:
    kind = request.path_params["kind"]
    if kind not in PAGE_KINDS:
        return PlainTextResponse("unknown kind", status_code=404)
    refresh = request.query_params.get("refresh")
    overrides: dict[str, object] = {"merchant_reference": HOSTILE}
    if refresh:
        overrides["refresh_seconds"] = int(refresh)
    if request.query_params.get("currency") == "USD":
        overrides |= {"amount": "14.00", "currency": "USD"}
    links = AppLinks(
        app_store_id=APP_STORE_ID,
        ios_open_url=alternate_host_url(str(request.url), OPEN_HOST),
        android_package=ANDROID_PACKAGE,
    )
    # ?public=1 plays a TLS-terminating proxy: the flow passes the public https URL explicitly.
    public = (
        request.url.replace(scheme="https", netloc=PUBLIC_HOST)
        if request.query_params.get("public")
        else None
    )
    current_url = str(public) if public else None
    branding = SUPPORT if request.query_params.get("support") else NO_BRANDING  # ?support=1: the help links too
    return page_response(sample_view(kind, **overrides), request, links, current_url=current_url, branding=branding)


async def _demo(request: Request) -> Response:
    return demo_response(DemoView(), request)


async def _demo_start(request: Request) -> Response:
    choice = parse_demo_form(await request.body())
    fields = (
        f"scenario={choice.scenario} currency={choice.currency} amount={choice.amount} lang={choice.locale}"
    )
    return PlainTextResponse(f"started {fields}", headers=security_headers())


async def _broken(request: Request) -> Response:
    """A page that violates the CSP on purpose: proves the browser checks can fail."""
    html = (
        '<!doctype html><title>x</title><p style="color:red">inline style</p><img src="/missing.png" alt="">'
    )
    return HTMLResponse(html, headers=security_headers())


def page_app() -> Starlette:
    return Starlette(
        routes=[
            Route("/", _demo),
            Route("/demo/start", _demo_start, methods=["POST"]),
            Route("/page/{kind}", _page),
            Route("/broken", _broken),
        ]
    )


@pytest.fixture(scope="session")
def page_server() -> Iterator[str]:
    with serve_app(page_app()) as base_url:
        yield base_url


class Contexts:
    """Browser contexts cached per (user agent, Accept-Language, viewport): creating one costs far more
    than a page, and every test still gets a fresh page."""

    def __init__(self, browser: Browser) -> None:
        self._browser = browser
        self._contexts: dict[tuple[str, str, int, int], BrowserContext] = {}

    async def get(self, user_agent: str, locale: str, width: int, height: int) -> BrowserContext:
        key = (user_agent, locale, width, height)
        if key not in self._contexts:
            viewport = {"width": width, "height": height}
            self._contexts[key] = await self._browser.new_context(
                user_agent=user_agent,
                locale=locale,
                viewport=viewport,  # type: ignore[arg-type]
            )
        return self._contexts[key]

    async def close(self) -> None:
        for context in self._contexts.values():
            await context.close()


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def contexts(browser: Browser) -> AsyncIterator[Contexts]:
    cache = Contexts(browser)
    yield cache
    await cache.close()
