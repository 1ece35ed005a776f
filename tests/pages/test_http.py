"""page_response / demo_response over a real socket: statuses, headers, language and platform choice."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from router.web.pages import DEFAULT_STATUS, PAGE_KINDS
from router.web.render import security_headers
from tests.pages.conftest import PUBLIC_HOST
from tests.pages.samples import ANDROID_PACKAGE, UA


@pytest.fixture(scope="module")
def client(page_server: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=page_server, timeout=10) as http:
        yield http


@pytest.mark.parametrize("kind", PAGE_KINDS)
def test_status_and_security_headers(client: httpx.Client, kind: str) -> None:
    response = client.get(f"/page/{kind}")
    assert response.status_code == DEFAULT_STATUS[kind]  # type: ignore[index]
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    for name, value in security_headers().items():
        assert response.headers[name] == value
    assert response.headers["content-language"] == "en"


def test_language_from_header_and_query(client: httpx.Client) -> None:
    ja = client.get("/page/success", headers={"Accept-Language": "ja,en;q=0.5"})
    assert ja.headers["content-language"] == "ja" and "ご注文<wbr>ありがとう<wbr>ございました" in ja.text
    en = client.get("/page/success?lang=en", headers={"Accept-Language": "ja"})
    assert en.headers["content-language"] == "en" and "Thank you, Jane Doe" in en.text


def test_platform_from_user_agent(client: httpx.Client) -> None:
    ios = client.get("/page/success", headers={"User-Agent": UA["iphone_safari"]}).text
    android = client.get("/page/success", headers={"User-Agent": UA["android_chrome"]}).text
    desktop = client.get("/page/success", headers={"User-Agent": UA["desktop_chrome"]}).text
    assert 'name="apple-itunes-app"' in ios and "intent://" not in ios
    assert "intent://" in android and 'name="apple-itunes-app"' not in android
    assert "open-app" not in desktop and "apple-itunes-app" not in desktop


def test_current_url_override_gives_https_intent(client: httpx.Client) -> None:
    text = client.get("/page/success?public=1&ref=r1", headers={"User-Agent": UA["android_chrome"]}).text
    expected = f"intent://{PUBLIC_HOST}/page/success?public=1&amp;ref=r1#Intent;scheme=https;package={ANDROID_PACKAGE};"
    assert expected in text


def test_demo_page_headers(client: httpx.Client) -> None:
    response = client.get("/", headers={"Accept-Language": "ja"})
    assert response.status_code == 200 and response.headers["content-language"] == "ja"
    assert response.headers["content-security-policy"] == security_headers()["Content-Security-Policy"]
    assert "return-router デモ" in response.text
