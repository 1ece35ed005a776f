"""Links the pages build from the request path stay on the site; configured links render only as http(s)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from router.web.links import configured_link, relative, site_path, with_query
from router.web.pages import AppLinks, PageView
from router.web.platform import detect_platform
from router.web.render import render_page
from tests.e2e.raw import hrefs, resolved_host

HOST = "pay.example.com"
HOSTILE = ["//evil.example/x", "///evil.example/x", "/\\evil.example/x", "/\\/evil.example/x", "/\t/evil.example/x",
           "/\n/evil.example", "/ /evil.example", "/%2F/evil.example"]
IPHONE = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 Version/17.4 Mobile Safari"


@pytest.mark.parametrize("path", HOSTILE)
def test_check_again_and_language_links_stay_on_the_site(path: str) -> None:
    current = f"https://{HOST}{path}?ref=abc"  # as the flows built it before links were made safe
    view = PageView(kind="pending", merchant_name="Shop", return_url="https://shop.example.com/cart",
                    app_links=AppLinks(app_store_id="1234567890"))
    html = render_page(view, "en", detect_platform(IPHONE), current)
    links = hrefs(html)
    assert 'class="button secondary check-again"' in html and len(links) >= 3
    for href in links:
        assert resolved_host(f"https://{HOST}{path}", href) in (HOST, "shop.example.com", "apps.apple.com"), href


@given(st.text(alphabet=st.sampled_from("/\\\t\n %.:@?#ae"), max_size=20))
def test_any_path_yields_a_same_site_link(path: str) -> None:
    url = f"https://{HOST}/{path}"
    for link in (with_query(url, lang="ja"), relative(url), site_path(path)):
        assert resolved_host(f"https://{HOST}/", link) == HOST, link


@pytest.mark.parametrize("value", [
    "javascript:alert(1)", "JAVASCRIPT:alert(1)", "data:text/html,<script>", "/cart", "//evil.example/cart",
    " https://shop.example.com", "https://shop.example.com/\tx", "https:\\\\evil.example", "https://",
    "ftp://shop.example.com", "https://shop.example.com/ a",
])
def test_configured_links_must_be_plain_absolute_http_urls(value: str) -> None:
    with pytest.raises(ValueError, match="absolute http"):
        configured_link("return_url", value)
    with pytest.raises(ValueError, match="absolute http"):
        PageView(kind="canceled", merchant_name="Shop", return_url=value)


def test_plain_urls_pass() -> None:
    assert configured_link("x", "https://shop.example.com/cart?a=1") == "https://shop.example.com/cart?a=1"
    assert AppLinks(play_store_url="https://play.google.com/store/apps/details?id=a.b").play_store_url
