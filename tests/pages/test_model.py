"""The pure page model: helpers, validation, context building, rendering and headers."""

from __future__ import annotations

import base64
import hashlib
import re
from decimal import Decimal
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote

import pytest
from hypothesis import given
from hypothesis import strategies as st

import router
from router.checkout.money import format_amount
from router.redact import mask_email
from router.web.demo_page import DEMO_AMOUNTS, DEMO_SCENARIOS, DemoView, parse_demo_choice, parse_demo_form, render_demo
from router.web.i18n import LOCALES, Locale
from router.web.links import alternate_host_url, intent_url
from router.web.pages import DEFAULT_REFRESH_SECONDS, PAGE_KINDS, AppLinks, PageView
from router.web.platform import Platform, detect_platform
from router.web.render import build_context, get_environment, render_page, security_headers, templates_dir
from tests.pages.samples import ANDROID_PACKAGE, APP_STORE_ID, HOSTILE, IOS_OPEN_URL, UA, sample_view

CURRENT = "https://pay.shop.example/amazon-pay/result?ref=r1&amazonCheckoutSessionId=0123-4567-89ab-cdef"
IOS = Platform("ios")
ANDROID = Platform("android")
DESKTOP = Platform("desktop")
FACEBOOK_IOS = Platform("ios", "facebook")


# ---------------------------------------------------------------- helpers


@pytest.mark.parametrize(
    ("email", "masked"),
    [
        ("jane.doe@example.com", "j***@example.com"),
        ("a@b.co", "a***@b.co"),
        ("  Jane@Example.com ", "J***@Example.com"),
        ("odd@local@example.com", "o***@example.com"),
        ("no-at-sign", "***"),
        ("@example.com", "***"),
        ("jane@", "***"),
        ("", "***"),
    ],
)
def test_mask_email(email: str, masked: str) -> None:
    assert mask_email(email) == masked


@pytest.mark.parametrize(
    ("amount", "currency", "shown"),
    [
        ("1000", "JPY", "¥1,000"),
        ("1000.00", "JPY", "¥1,000"),
        ("1234567", "JPY", "¥1,234,567"),
        ("14", "USD", "$14.00"),
        ("14.00", "USD", "$14.00"),
        ("1234.5", "USD", "$1,234.50"),
        ("14.00", "EUR", "€14.00"),
        ("9.99", "GBP", "£9.99"),
        ("14.00", "CHF", "14.00 CHF"),
        ("0.005", "USD", "$0.01"),
        ("-5", "USD", "-$5.00"),
        (" 7 ", "JPY", "¥7"),
    ],
)
def test_format_amount(amount: str, currency: str, shown: str) -> None:
    assert format_amount(amount, currency) == shown


@pytest.mark.parametrize(
    ("amount", "currency", "message"),
    [
        ("abc", "USD", "not a decimal"),
        ("", "USD", "not a decimal"),
        ("NaN", "USD", "not a finite"),
        ("Infinity", "JPY", "not a finite"),
        ("1", "usd", "three-letter"),
        ("1", "US", "three-letter"),
        ("1", "¥", "three-letter"),
    ],
)
def test_format_amount_rejects_bad_input(amount: str, currency: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        format_amount(amount, currency)


@given(st.decimals(min_value=0, max_value=10**9, places=2, allow_nan=False, allow_infinity=False))
def test_format_amount_round_trips_usd(value: Decimal) -> None:
    shown = format_amount(str(value), "USD")
    assert shown.startswith("$")
    assert Decimal(shown[1:].replace(",", "")) == value.quantize(Decimal("0.01"))


def test_intent_url() -> None:
    url = intent_url(
        CURRENT, "com.example.shop", "https://play.google.com/store/apps/details?id=com.example.shop"
    )
    assert url == (
        "intent://pay.shop.example/amazon-pay/result?ref=r1&amazonCheckoutSessionId=0123-4567-89ab-cdef"
        "#Intent;scheme=https;package=com.example.shop;"
        "S.browser_fallback_url=https%3A%2F%2Fplay.google.com%2Fstore%2Fapps%2Fdetails%3Fid%3Dcom.example.shop;end"
    )


def test_intent_url_keeps_port_drops_fragment_and_uses_the_url_scheme() -> None:
    url = intent_url("http://127.0.0.1:8000/r#frag", "com.example.shop", "http://127.0.0.1:8000/r?x=1;y")
    assert url.startswith("intent://127.0.0.1:8000/r#Intent;scheme=http;package=com.example.shop;")
    assert "frag" not in url
    # The fallback is fully encoded so its ";" and "#" cannot end the intent early.
    fallback = re.search(r"S\.browser_fallback_url=([^;]*);end$", url)
    assert fallback and unquote(fallback.group(1)) == "http://127.0.0.1:8000/r?x=1;y"


def test_intent_url_without_path() -> None:
    assert intent_url("https://a.example", "com.a.b", "https://f.example").startswith(
        "intent://a.example/#Intent;"
    )


@given(st.text(min_size=0, max_size=60))
def test_intent_fallback_round_trips(tail: str) -> None:
    fallback = "https://shop.example/" + tail
    url = intent_url(CURRENT, "com.example.shop", fallback)
    encoded = url.split("S.browser_fallback_url=", 1)[1].removesuffix(";end")
    assert ";" not in encoded and "#" not in encoded
    assert unquote(encoded) == fallback


@pytest.mark.parametrize(
    ("url", "package", "fallback", "message"),
    [
        ("javascript:alert(1)", "com.a.b", "https://f.example", "url must be"),
        ("/relative", "com.a.b", "https://f.example", "url must be"),
        ("https://a.example/", "nodots", "https://f.example", "package"),
        ("https://a.example/", "com.a.b;end", "https://f.example", "package"),
        ("https://a.example/", "com.a.b", "market://details?id=x", "fallback_url must be"),
    ],
)
def test_intent_url_rejects_bad_input(url: str, package: str, fallback: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        intent_url(url, package, fallback)


def test_alternate_host_url() -> None:
    assert alternate_host_url(CURRENT + "#x", "open.shop.example") == (
        "https://open.shop.example/amazon-pay/result?ref=r1&amazonCheckoutSessionId=0123-4567-89ab-cdef"
    )
    assert (
        alternate_host_url("http://127.0.0.1:8000/r", "open.localhost:8001") == "http://open.localhost:8001/r"
    )


@pytest.mark.parametrize(
    "host", ["", "evil.example/path", "a b", "user@evil.example", "-x.example", "x.example:"]
)
def test_alternate_host_url_rejects_non_hosts(host: str) -> None:
    with pytest.raises(ValueError, match="not a host name"):
        alternate_host_url(CURRENT, host)


def test_intent_url_drops_userinfo() -> None:
    url = intent_url("https://user:secret@pay.example/r", "com.a.b", "https://f.example")
    assert url.startswith("intent://pay.example/r#Intent;") and "secret" not in url


# ---------------------------------------------------------------- model validation


def test_app_links_derive_store_urls() -> None:
    links = AppLinks(app_store_id="123", android_package="com.example.shop")
    assert links.app_store_url == "https://apps.apple.com/app/id123"
    assert links.play_store_url == "https://play.google.com/store/apps/details?id=com.example.shop"
    given_url = AppLinks(android_package="com.example.shop", play_store_url="https://play.example/x")
    assert given_url.play_store_url == "https://play.example/x"
    assert AppLinks().app_store_url is None and AppLinks().play_store_url is None


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"app_store_id": "id123"}, "numeric App Store id"),
        ({"android_package": "com example"}, "Android package"),
        ({"ios_open_url": "javascript:alert(1)"}, "ios_open_url"),
        ({"play_store_url": "market://details?id=x"}, "play_store_url"),
    ],
)
def test_app_links_reject_bad_values(kwargs: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        AppLinks(**kwargs)


def test_page_view_defaults() -> None:
    assert PageView("success", "Shop").status == 200
    assert PageView("not_found", "Shop").http_status == 404
    assert PageView("unavailable", "Shop").http_status == 503
    assert PageView("pending", "Shop").refresh_seconds == DEFAULT_REFRESH_SECONDS
    assert PageView("success", "Shop").refresh_seconds is None
    assert PageView("unavailable", "Shop", refresh_seconds=30).refresh_seconds == 30
    assert PageView("error", "Shop", status=200).http_status == 200


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"kind": "paid"}, "unknown page kind"),
        ({"status": 99}, "status"),
        ({"status": 302}, "status"),
        ({"amount": "10"}, "together"),
        ({"currency": "JPY"}, "together"),
        ({"amount": "ten", "currency": "JPY"}, "not a decimal"),
        ({"return_url": "javascript:alert(1)"}, "return_url"),
        ({"refresh_seconds": 5}, "only applies"),
        ({"kind": "pending", "refresh_seconds": 0}, "1..600"),
    ],
)
def test_page_view_rejects_bad_values(kwargs: dict[str, object], message: str) -> None:
    fields: dict[str, object] = {"kind": "success", "merchant_name": "Shop"} | kwargs
    with pytest.raises(ValueError, match=message):
        PageView(**fields)  # type: ignore[arg-type]


def test_repr_leaves_out_buyer_data() -> None:
    text = repr(sample_view("success"))
    assert "jane" not in text.lower() and "Visa" not in text and "Jane Doe" not in text


# ---------------------------------------------------------------- context


def test_context_for_success_on_ios() -> None:
    ctx = build_context(sample_view("success"), "en", IOS, CURRENT)
    assert ctx["status"] == 200 and ctx["tone"] == "ok" and ctx["locale"] == "en"
    assert ctx["t"](ctx["title_key"], **ctx["title_params"]) == "Thank you, Jane Doe"
    assert {row["label_key"]: row["value"] for row in ctx["details"]} == {
        "details.order": "ORDER-1042",
        "details.amount": "¥1,000",
        "details.payment_method": "Visa ****1234",
    }
    assert ctx["confirmation_email"] == "j***@example.com"
    assert ctx["smart_banner"] == f"app-id={APP_STORE_ID}, app-argument={CURRENT}"
    assert ctx["app"]["open_url"] == IOS_OPEN_URL
    assert ctx["app"]["store_url"] == f"https://apps.apple.com/app/id{APP_STORE_ID}"
    assert ctx["app"]["in_app"] is False
    assert ctx["refresh_seconds"] is None and ctx["check_again_url"] is None
    assert ctx["return_label_key"] == "actions.continue"


def test_context_on_android_uses_an_intent_with_the_play_fallback() -> None:
    ctx = build_context(sample_view("success"), "en", ANDROID, CURRENT)
    play = f"https://play.google.com/store/apps/details?id={ANDROID_PACKAGE}"
    assert ctx["app"]["open_url"] == intent_url(CURRENT, ANDROID_PACKAGE, play)
    assert ctx["app"]["store_url"] == play
    assert ctx["smart_banner"] is None


@pytest.mark.parametrize("platform", [DESKTOP, Platform("other")])
def test_context_on_desktop_has_no_app_prompts(platform: Platform) -> None:
    ctx = build_context(sample_view("success"), "en", platform, CURRENT)
    assert ctx["app"] is None and ctx["smart_banner"] is None


def test_context_in_app_browser_gives_guidance() -> None:
    ctx = build_context(sample_view("success"), "ja", FACEBOOK_IOS, CURRENT)
    assert ctx["app"]["in_app"] is True and ctx["app"]["in_app_browser"] == "facebook"
    assert ctx["app"]["open_url"] == IOS_OPEN_URL


def test_context_without_app_links_has_no_app_section() -> None:
    ctx = build_context(sample_view("success", app_links=AppLinks()), "en", IOS, CURRENT)
    assert ctx["app"] is None and ctx["smart_banner"] is None


def test_context_with_only_a_store_id_links_to_the_store() -> None:
    ctx = build_context(sample_view("success", app_links=AppLinks(app_store_id="42")), "en", IOS, CURRENT)
    assert ctx["app"]["open_url"] is None and ctx["app"]["store_url"] == "https://apps.apple.com/app/id42"


def test_context_for_pending_refreshes_and_offers_check_now() -> None:
    ctx = build_context(sample_view("pending"), "ja", IOS, CURRENT)
    assert ctx["refresh_seconds"] == DEFAULT_REFRESH_SECONDS
    assert ctx["check_again_url"] == "/amazon-pay/result?ref=r1&amazonCheckoutSessionId=0123-4567-89ab-cdef"
    assert ctx["tone"] == "wait"


def test_context_retry_label_and_language_switch() -> None:
    ctx = build_context(sample_view("declined"), "en", DESKTOP, CURRENT + "&lang=en")
    assert ctx["return_label_key"] == "actions.retry"
    assert ctx["lang_switch"]["locale"] == "ja" and ctx["lang_switch"]["label"] == "日本語"
    assert ctx["lang_switch"]["url"].endswith("amazonCheckoutSessionId=0123-4567-89ab-cdef&lang=ja")
    assert ctx["lang_switch"]["url"].startswith("/amazon-pay/result?")


def test_smart_banner_keeps_commas_encoded() -> None:
    ctx = build_context(sample_view("success"), "en", IOS, "https://pay.example/r?a=1,2")
    assert ctx["smart_banner"].endswith("app-argument=https://pay.example/r?a=1%2C2")


def test_long_free_text_is_clipped() -> None:
    ctx = build_context(sample_view("declined", reference_code="word " * 200), "en", DESKTOP, CURRENT)
    reason = next(row["value"] for row in ctx["details"] if row["label_key"] == "details.reference")
    assert len(reason) == 300 and reason.endswith("…")


@pytest.mark.parametrize(("locale", "label", "why"), [
    ("en", "Reference", "is not valid"), ("ja", "参照コード", "正しくありません"),
])
def test_the_reason_is_translated_and_amazons_code_is_quoted_as_it_is(locale: Locale, label: str, why: str) -> None:
    """Our own reason is a catalog key, shown in the page's language; Amazon's reason code is a code for the
    buyer to quote to support, shown as it is under a label that says so."""
    error = render_page(PageView("error", merchant_name="Shop", reference_code="AmazonRejected"), locale, IOS, CURRENT)
    assert f"<dt>{label}</dt><dd>AmazonRejected</dd>" in error
    bad = render_page(PageView("bad_request", merchant_name="Shop", reason_key="reason.invalid_session"), locale, IOS,
                      CURRENT)
    assert why in bad and "reason.invalid_session" not in bad


# ---------------------------------------------------------------- rendering


class _TextAndAttributes(HTMLParser):
    """Collects the decoded text, attribute values and tags of a document."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.text: list[str] = []
        self.attributes: list[str] = []
        self.attribute_names: list[str] = []
        self.tags: list[str] = []
        self.style: list[str] = []
        self._in_style = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self._in_style = tag == "style"
        self.attributes.extend(value or "" for _, value in attrs)
        self.attribute_names.extend(name for name, _ in attrs)

    def handle_endtag(self, tag: str) -> None:
        self._in_style = False

    def handle_data(self, data: str) -> None:
        (self.style if self._in_style else self.text).append(data)


def _parse(html: str) -> _TextAndAttributes:
    parser = _TextAndAttributes()
    parser.feed(html)
    return parser


@pytest.mark.parametrize("kind", PAGE_KINDS)
@pytest.mark.parametrize("locale", LOCALES)
@pytest.mark.parametrize("ua_name", ["iphone_safari", "android_chrome", "facebook_ios", "desktop_chrome"])
def test_every_page_renders(kind: str, locale: Locale, ua_name: str) -> None:
    view = sample_view(kind, refresh_seconds=3) if kind in ("pending", "unavailable") else sample_view(kind)
    html = render_page(view, locale, detect_platform(UA[ua_name]), CURRENT)
    doc = _parse(html)
    assert html.startswith("<!doctype html>") and f'<html lang="{locale}">' in html
    assert '<meta name="robots" content="noindex">' in html
    assert "script" not in doc.tags and "iframe" not in doc.tags
    assert not any(name.startswith("on") for name in doc.attribute_names)  # no event handlers
    assert "style" not in doc.attribute_names  # inline style attributes would break the CSP
    # The full session id never appears as text; only inside the links that must carry the URL.
    assert "0123-4567-89ab-cdef" not in " ".join(doc.text)
    assert ("http-equiv" in html) == (kind in ("pending", "unavailable"))


def test_hostile_strings_are_escaped_everywhere() -> None:
    view = sample_view(
        "declined", merchant_name=HOSTILE, merchant_reference=HOSTILE, buyer_name=HOSTILE,
        payment_descriptor=HOSTILE, reference_code=HOSTILE, return_url="https://shop.example/?q=\"><script>x</script>",
    )  # fmt: skip
    hostile_url = 'https://pay.example/r?x="><script>alert(1)</script>'
    for platform in (IOS, ANDROID, DESKTOP, FACEBOOK_IOS):
        html = render_page(view, "en", platform, hostile_url)
        doc = _parse(html)
        assert "<script" not in html and "onmouseover=1>" not in html
        assert "script" not in doc.tags and "b" not in doc.tags
        assert HOSTILE in doc.text  # shown literally, as text
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in html


def test_japanese_page_reads_naturally() -> None:
    html = render_page(sample_view("success"), "ja", IOS, CURRENT)
    text = " ".join(_parse(html).text)
    assert "ご注文ありがとうございました" in text and "お支払いが完了しました。" in text
    assert "アプリで開く" in text and "¥1,000" in text


def test_pending_never_claims_payment() -> None:
    for locale in LOCALES:
        text = " ".join(_parse(render_page(sample_view("pending"), locale, IOS, CURRENT)).text)
        assert "complete" not in text.lower() and "完了しました" not in text
    en = " ".join(_parse(render_page(sample_view("pending"), "en", IOS, CURRENT)).text)
    assert "We are confirming your payment with Amazon\u00a0Pay. This page updates by itself." in en


def test_style_block_matches_the_csp_hash() -> None:
    html = render_page(sample_view("success"), "en", IOS, CURRENT)
    (style,) = _parse(html).style
    digest = base64.b64encode(hashlib.sha256(style.encode()).digest()).decode()
    assert f"style-src 'sha256-{digest}'" in security_headers()["Content-Security-Policy"]


def test_security_headers() -> None:
    headers = security_headers()
    csp = headers["Content-Security-Policy"]
    for directive in ("default-src 'none'", "img-src 'self' data:", "base-uri 'none'",
                      "form-action 'self'", "frame-ancestors 'none'"):  # fmt: skip
        assert directive in csp
    assert "unsafe" not in csp and "script-src" not in csp
    assert headers["Referrer-Policy"] == "no-referrer"
    assert headers["Cache-Control"] == "no-store"
    assert headers["X-Robots-Tag"] == "noindex"
    assert headers["X-Content-Type-Options"] == "nosniff"
    headers["X-Extra"] = "1"
    assert "X-Extra" not in security_headers()  # callers get their own copy


def test_templates_have_no_external_assets_or_scripts() -> None:
    for path in templates_dir().glob("*.html"):
        source = path.read_text(encoding="utf-8")
        assert "<script" not in source and " style=" not in source, path.name
        assert not re.search(r"""(src|href)=["']https?://""", source), path.name


def test_environment_is_cached_autoescaping_and_strict() -> None:
    env = get_environment()
    assert env is get_environment()
    assert env.from_string("{{ x }}").render(x="<b>") == "&lt;b&gt;"
    with pytest.raises(Exception, match="undefined"):
        env.from_string("{{ missing }}").render()


def test_templates_dir_prefers_the_installed_copy(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    assert templates_dir() == Path(router.__file__).resolve().parent.parent / "templates"
    package = tmp_path / "router"
    (package / "templates").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    monkeypatch.setattr(router, "__file__", str(package / "__init__.py"))
    assert templates_dir() == package / "templates"


# ---------------------------------------------------------------- demo


def test_demo_page_has_one_form_per_scenario() -> None:
    html = render_demo(DemoView(), "en", "http://127.0.0.1:8000/")
    assert html.count('<form class="scenario" method="post" action="/demo/start"') == len(DEMO_SCENARIOS)
    for scenario in DEMO_SCENARIOS:
        assert f'<input type="hidden" name="scenario" value="{scenario}">' in html
    assert '<option value="JPY">¥1,000</option>' in html and '<option value="USD">$14.00</option>' in html
    assert "No real payment is made." in html


def test_demo_page_in_japanese() -> None:
    html = render_demo(DemoView(), "ja", "http://127.0.0.1:8000/?lang=ja")
    assert "return-router デモ" in html and "実際のお支払いは発生しません。" in html
    assert '<input type="hidden" name="lang" value="ja">' in html


def test_parse_demo_choice() -> None:
    choice = parse_demo_choice("pending-then-declined", "USD")
    assert (choice.scenario, choice.currency, choice.amount) == ("pending-then-declined", "USD", "14.00")
    assert parse_demo_choice("completed", "JPY").amount == DEMO_AMOUNTS["JPY"]
    with pytest.raises(ValueError, match="unknown demo scenario"):
        parse_demo_choice("<script>", "JPY")
    with pytest.raises(ValueError, match="unknown demo currency"):
        parse_demo_choice("completed", None)


def test_parse_demo_form() -> None:
    choice = parse_demo_form(b"scenario=buyer-canceled&lang=ja&currency=JPY")
    assert (choice.scenario, choice.currency, choice.amount, choice.locale) == (
        "buyer-canceled",
        "JPY",
        "1000",
        "ja",
    )
    assert parse_demo_form(b"scenario=completed&currency=USD&lang=fr").locale is None
    with pytest.raises(ValueError, match="unknown demo scenario"):
        parse_demo_form(b"currency=USD")
    with pytest.raises(ValueError, match="larger than"):
        parse_demo_form(b"scenario=completed&currency=USD&x=" + b"a" * 2000)
    with pytest.raises(ValueError, match="ASCII"):
        parse_demo_form("scenario=完了".encode())
    with pytest.raises(ValueError):
        parse_demo_form(b"&".join([b"a=1"] * 20))
