"""[pages] branding: the config reader, the accent in the hashed CSS, the logo from memory over real HTTP,
and which link each page offers (continue shopping after a payment, try again after a failed one)."""

from __future__ import annotations

import base64
import hashlib
import re
import struct
import zlib
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from router.app import create_app
from router.config import ConfigError, load
from router.web.branding import LOGO_PATH, PagesSettings, accent_css, contrast, normalize_hex, readable
from router.web.platform import Platform, detect_platform
from router.web.render import render_page, security_headers
from tests.pages.samples import UA, sample_view
from tests.support import serve_app
from tests.support.config import BASE_CONFIG

ROUTES = BASE_CONFIG + """
[merchant]
name = "Brand Shop"
shop_url = "https://shop.example/"
"""
SVG = b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><rect width="10" height="10"/></svg>'


def png() -> bytes:
    """A real 1x1 PNG, built here so the test needs no image file."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    header = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0\xff\0\0")) + \
        chunk(b"IEND", b"")


def write(tmp_path: Path, pages: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(ROUTES + "\n[pages]\n" + pages, encoding="utf-8")
    return path


def test_pages_section_is_read_and_validated(tmp_path: Path) -> None:
    (tmp_path / "logo.png").write_bytes(png())
    settings = load(write(tmp_path, '''
logo_file = "logo.png"
accent_color = "#B4451F"
support_url = "https://shop.example/help"
support_email = "help@shop.example"
continue_shopping_url = "https://shop.example/new"
retry_url = "https://shop.example/cart"
'''))
    pages = settings.pages
    assert pages.logo is not None and pages.logo.media_type == "image/png" and pages.logo.content == png()
    assert pages.accent_color == "#b4451f"
    assert (pages.support_url, pages.support_email) == ("https://shop.example/help", "help@shop.example")
    assert (pages.continue_shopping_url, pages.retry_url) == ("https://shop.example/new", "https://shop.example/cart")


def test_bad_pages_values_name_the_key(tmp_path: Path) -> None:
    (tmp_path / "logo.gif").write_bytes(b"GIF89a....")
    path = write(tmp_path, '''
logo_file = "logo.gif"
accent_color = "blue"
support_url = "javascript:alert(1)"
support_email = "not an address"
retry_url = 5
colour = "#fff"
''')
    with pytest.raises(ConfigError) as error:
        load(path)
    problems = "\n".join(error.value.problems)
    for key, message in [("pages.logo_file", "must be a PNG or an SVG"), ("pages.accent_color", "is not a hex colour"),
                         ("pages.support_url", "must be an absolute https:// URL"),
                         ("pages.support_email", "not an email"),
                         ("pages.retry_url", "must be a string"), ("pages.colour", "unknown key")]:
        assert f"{path}: {key}: " in problems and message in problems, (key, problems)


def test_missing_or_oversized_logo_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"pages\.logo_file: cannot read none\.svg"):
        load(write(tmp_path, 'logo_file = "none.svg"'))
    (tmp_path / "big.svg").write_bytes(SVG + b" " * 300_000)
    with pytest.raises(ConfigError, match=r"pages\.logo_file: big\.svg is \d+ bytes, over the limit"):
        load(write(tmp_path, 'logo_file = "big.svg"'))
    (tmp_path / "bomb.svg").write_bytes(b'<!DOCTYPE svg [<!ENTITY a "aaaa">]><svg>&a;</svg>')
    with pytest.raises(ConfigError, match="entity declarations"):
        load(write(tmp_path, 'logo_file = "bomb.svg"'))


@pytest.mark.parametrize("accent", ["#0a58b0", "#ffd400", "#111111", "#ff00ff"])
def test_accent_stays_readable_in_both_schemes(accent: str) -> None:
    css = accent_css(normalize_hex(accent))
    light, dark = re.findall(r"--accent-text:(#[0-9a-f]{6})", css)
    assert contrast(light, "#ffffff") >= 4.5 and contrast(dark, "#1a1e23") >= 4.5
    on_accent = re.search(r"--on-accent:(#[0-9a-f]{6})", css)
    assert on_accent is not None and contrast(on_accent.group(1), accent) >= 3
    assert readable("#0a58b0", "#ffffff") == "#0a58b0"  # already readable: unchanged


def test_accent_is_in_the_style_the_csp_hash_covers() -> None:
    html = render_page(sample_view("declined"), "en", Platform("desktop"), "https://pay.example/x",
                       PagesSettings(accent_color="#b4451f"))
    style = re.search(r"<style>(.*?)</style>", html, re.S)
    assert style is not None and "--accent:#b4451f" in style.group(1)
    digest = base64.b64encode(hashlib.sha256(style.group(1).encode()).digest()).decode()
    assert f"'sha256-{digest}'" in security_headers("#b4451f")["Content-Security-Policy"]
    assert f"'sha256-{digest}'" not in security_headers()["Content-Security-Policy"]


@pytest.fixture
def branded(tmp_path: Path) -> Iterator[str]:
    (tmp_path / "logo.svg").write_bytes(SVG)
    settings = load(write(tmp_path, '''
logo_file = "logo.svg"
accent_color = "#b4451f"
support_email = "help@shop.example"
retry_url = "https://shop.example/cart"
'''))
    with serve_app(create_app(settings, background=False)) as url:
        yield url


def test_logo_is_served_from_memory_with_a_strong_etag(branded: str) -> None:
    with httpx.Client(base_url=branded, headers={"host": "pay.example.com"}) as client:
        page = client.get("/amazon-pay/cancel?ref=unknown")
        assert page.status_code == 200
        src = re.search(r'<img class="logo" src="([^"]+)" alt="Brand Shop">', page.text)
        assert src is not None and src.group(1).startswith(LOGO_PATH + "?v=")
        assert "img-src 'self' data:" in page.headers["content-security-policy"]
        logo = client.get(src.group(1))
        assert logo.status_code == 200 and logo.content == SVG
        assert logo.headers["content-type"] == "image/svg+xml"
        etag = logo.headers["etag"]
        assert re.fullmatch(r'"[0-9a-f]{32}"', etag)  # strong: no W/ prefix
        assert "sandbox" in logo.headers["content-security-policy"]  # an SVG opened on its own runs nothing
        again = client.get(LOGO_PATH, headers={"If-None-Match": etag})
        assert again.status_code == 304 and again.content == b""


def test_canceled_page_offers_retry_url_first_and_support(branded: str) -> None:
    with httpx.Client(base_url=branded, headers={"host": "pay.example.com"}) as client:
        html = client.get("/amazon-pay/cancel?ref=unknown", headers={"User-Agent": "curl/8"}).text
    assert '<a class="button primary back" href="https://shop.example/cart">' in html
    assert 'href="mailto:help@shop.example"' in html


def test_amazon_error_url_page_says_nothing_was_charged(branded: str) -> None:
    with httpx.Client(base_url=branded, headers={"host": "pay.example.com"}) as client:
        response = client.get("/amazon-pay/error?ref=abc")
    assert response.status_code == 200
    assert "no payment was made" in response.text and 'href="https://shop.example/cart"' in response.text


def test_flows_pick_the_link_for_each_page(tmp_path: Path) -> None:
    from router.web.flows import Flows

    settings = load(write(tmp_path, 'continue_shopping_url = "https://shop.example/new"'))
    flows = Flows(None, settings)  # type: ignore[arg-type]  # return_url needs no service
    assert flows.return_url("success") == "https://shop.example/new"
    assert flows.return_url("declined") == "https://shop.example/"  # no retry_url: falls back to shop_url
    assert flows.return_url("not_found") == "https://shop.example/"


@pytest.mark.parametrize(("locale", "thanks", "sent"), [
    ("en", "Thank you, Jane Doe", "A confirmation will be sent to j***@example.com."),
    ("ja", "Jane Doe様、<wbr>ご注文<wbr>ありがとう<wbr>ございました", "確認のメールをj***@example.comにお送りします。"),
])
def test_success_page_thanks_the_buyer_and_shows_the_order(locale: str, thanks: str, sent: str) -> None:
    html = render_page(sample_view("success"), locale, Platform("desktop"), "https://pay.example/x")  # type: ignore[arg-type]
    assert f"<h1>{thanks}</h1>" in html and sent in html
    for shown in ("ORDER-1042", "¥1,000", "Visa ****1234"):
        assert shown in html
    assert "jane.doe@example.com" not in html


def test_a_failed_payment_puts_trying_again_first_and_the_app_second() -> None:
    iphone = detect_platform(UA["iphone_safari"])
    declined = render_page(sample_view("declined"), "en", iphone, "https://pay.example/x")
    assert '<a class="button primary back"' in declined and '<a class="button secondary open-app"' in declined
    assert declined.index("a class=\"button primary back\"") < declined.index("open-app")
    success = render_page(sample_view("success"), "en", iphone, "https://pay.example/x")
    assert '<a class="button secondary back"' in success and '<a class="button primary open-app"' in success


def test_unavailable_page_says_money_may_be_taken_and_not_to_pay_again() -> None:
    expected = [("en", "it may already have been taken", "You do not need to pay again."),
                ("ja", "すでにお支払いが完了している可能性があります", "もう一度お支払いいただく必要はありません。")]
    for locale, taken, again in expected:
        html = render_page(sample_view("unavailable"), locale, Platform("desktop"), "https://pay.example/x")  # type: ignore[arg-type]
        assert taken in html and again in html
