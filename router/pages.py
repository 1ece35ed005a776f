"""Buyer-facing pages: the page model, its template context, rendering and the HTTP headers.

The flows decide *which* page to show and build a :class:`PageView`; this module turns it into HTML
for the buyer's language and platform. Everything up to :func:`render_page` is pure; only
:func:`page_response` and :func:`demo_response` touch Starlette.

Pages carry no JavaScript and no external assets: the only style is one inline ``<style>`` block
whose SHA-256 is pinned in the Content-Security-Policy.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal, get_args
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

import jinja2
from markupsafe import Markup
from starlette.requests import Request
from starlette.responses import HTMLResponse

import router
from router.i18n import Catalog, Locale, detect_locale, is_locale, load_catalogs, translator
from router.platform import Platform, detect_platform
from router.redact import mask_email

__all__ = [
    "DEFAULT_REFRESH_SECONDS",
    "DEFAULT_STATUS",
    "DEMO_AMOUNTS",
    "DEMO_SCENARIOS",
    "PAGE_KINDS",
    "AppLinks",
    "DemoChoice",
    "DemoScenario",
    "DemoView",
    "Locale",
    "PageKind",
    "PageView",
    "Platform",
    "alternate_host_url",
    "build_context",
    "build_demo_context",
    "demo_response",
    "detect_locale",
    "detect_platform",
    "format_amount",
    "get_environment",
    "intent_url",
    "mask_email",
    "page_response",
    "parse_demo_choice",
    "parse_demo_form",
    "render_demo",
    "render_page",
    "security_headers",
    "templates_dir",
]

PageKind = Literal[
    "success", "pending", "declined", "canceled", "expired",
    "error", "not_found", "conflict", "bad_request", "unavailable",
]  # fmt: skip
PAGE_KINDS: tuple[PageKind, ...] = get_args(PageKind)

# Outcomes the buyer reached through a claimed return path are normal pages (200); the rest say
# what went wrong. The flows may override any of these per view.
DEFAULT_STATUS: Mapping[PageKind, int] = MappingProxyType({
    "success": 200, "pending": 200, "declined": 200, "canceled": 200, "expired": 200,
    "error": 502, "not_found": 404, "conflict": 409, "bad_request": 400, "unavailable": 503,
})  # fmt: skip
DEFAULT_REFRESH_SECONDS = 5
_REFRESHING_KINDS = frozenset({"pending", "unavailable"})
_RETRY_KINDS = frozenset({"declined", "canceled", "expired", "error", "bad_request"})
_TONES: Mapping[PageKind, str] = MappingProxyType({
    "success": "ok", "pending": "wait", "unavailable": "wait",
    "declined": "fail", "error": "fail", "conflict": "fail", "bad_request": "fail",
    "canceled": "info", "expired": "info", "not_found": "info",
})  # fmt: skip

_ANDROID_PACKAGE = re.compile(r"^[A-Za-z][A-Za-z0-9_]*(\.[A-Za-z][A-Za-z0-9_]*)+$")
_APP_STORE_ID = re.compile(r"^[0-9]{1,15}$")
_CURRENCY = re.compile(r"^[A-Z]{3}$")
_HOST = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?(?::[0-9]{1,5})?$")
_CURRENCY_SYMBOLS: Mapping[str, str] = MappingProxyType({"JPY": "¥", "USD": "$", "EUR": "€", "GBP": "£"})
_ZERO_DECIMAL_CURRENCIES = frozenset({"JPY"})
_MAX_TEXT = 300  # free text shown to the buyer (reason, names) is cut to this many characters


# ---------------------------------------------------------------- pure helpers


def _http_url(name: str, value: str) -> str:
    """``value`` if it is an absolute http(s) URL with a host; a clear ValueError otherwise."""
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{name} must be an absolute http(s) URL, got {value[:80]!r}")
    return value


def format_amount(amount: str, currency: str) -> str:
    """Display an amount string in its currency: ``¥1,000``, ``$14.00``, ``€14.00``, ``14.00 CHF``."""
    if not _CURRENCY.match(currency):
        raise ValueError(f"currency must be a three-letter ISO 4217 code, got {currency[:10]!r}")
    try:
        value = Decimal(amount.strip())
    except InvalidOperation:
        raise ValueError(f"amount is not a decimal number: {amount[:40]!r}") from None
    if not value.is_finite():
        raise ValueError(f"amount is not a finite number: {amount[:40]!r}")
    places = 0 if currency in _ZERO_DECIMAL_CURRENCIES else 2
    value = value.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)
    sign = "-" if value < 0 else ""
    digits = f"{abs(value):,.{places}f}"
    symbol = _CURRENCY_SYMBOLS.get(currency)
    return f"{sign}{symbol}{digits}" if symbol else f"{sign}{digits} {currency}"


def intent_url(url: str, package: str, fallback_url: str) -> str:
    """Chrome's ``intent://`` form of an http(s) URL that opens ``package`` or, without it, the fallback.

    ``intent://HOST/PATH?QUERY#Intent;scheme=https;package=PKG;S.browser_fallback_url=ENC;end``
    """
    parts = urlsplit(_http_url("url", url))
    if not _ANDROID_PACKAGE.match(package):
        raise ValueError(f"not an Android package name: {package[:80]!r}")
    _http_url("fallback_url", fallback_url)
    host = parts.netloc.rpartition("@")[2]  # never carry user:password into an intent
    target = urlunsplit(("", host, parts.path or "/", parts.query, ""))
    fallback = quote(fallback_url, safe="")
    extras = f"scheme={parts.scheme};package={package};S.browser_fallback_url={fallback}"
    return f"intent:{target}#Intent;{extras};end"


def alternate_host_url(url: str, host: str) -> str:
    """The same URL on another host, e.g. the associated subdomain an iOS "Open in app" tap must use."""
    if not _HOST.match(host):
        raise ValueError(f"not a host name: {host[:80]!r}")
    parts = urlsplit(_http_url("url", url))
    return urlunsplit((parts.scheme, host, parts.path, parts.query, ""))


def _with_query(url: str, **params: str) -> str:
    """Same-origin relative URL (path + query) of ``url`` with ``params`` set."""
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k not in params]
    query.extend(params.items())
    return urlunsplit(("", "", parts.path or "/", urlencode(query), ""))


def _relative(url: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(("", "", parts.path or "/", parts.query, ""))


def _clip(text: str | None) -> str | None:
    if text is None:
        return None
    text = " ".join(text.split())
    return text[: _MAX_TEXT - 1] + "…" if len(text) > _MAX_TEXT else text or None


# ---------------------------------------------------------------- the page model


@dataclass(frozen=True, slots=True)
class AppLinks:
    """How a page can hand the buyer over to the merchant's app (all optional; none ⇒ no app section).

    ``ios_open_url`` is the current URL on the *alternate* associated host (see
    :func:`alternate_host_url`): Safari never opens the app for a tap on the page's own host.
    ``play_store_url`` defaults to the Play listing of ``android_package``.
    """

    app_store_id: str | None = None
    ios_open_url: str | None = None
    android_package: str | None = None
    play_store_url: str | None = None

    def __post_init__(self) -> None:
        if self.app_store_id is not None and not _APP_STORE_ID.match(self.app_store_id):
            raise ValueError(f"app_store_id must be the numeric App Store id, got {self.app_store_id!r}")
        if self.android_package is not None and not _ANDROID_PACKAGE.match(self.android_package):
            raise ValueError(f"android_package is not an Android package name: {self.android_package!r}")
        if self.ios_open_url is not None:
            _http_url("ios_open_url", self.ios_open_url)
        if self.play_store_url is not None:
            _http_url("play_store_url", self.play_store_url)
        elif self.android_package is not None:
            derived = f"https://play.google.com/store/apps/details?id={self.android_package}"
            object.__setattr__(self, "play_store_url", derived)

    @property
    def app_store_url(self) -> str | None:
        return f"https://apps.apple.com/app/id{self.app_store_id}" if self.app_store_id else None


@dataclass(frozen=True, slots=True)
class PageView:
    """Everything a result page shows, already decided by the flow. Buyer data stays out of repr()."""

    kind: PageKind
    merchant_name: str
    status: int | None = None  # None ⇒ DEFAULT_STATUS[kind]
    merchant_reference: str | None = None
    amount: str | None = None  # decimal string as Amazon Pay sends it, e.g. "1000" or "14.00"
    currency: str | None = None  # ISO 4217, e.g. "JPY"
    buyer_name: str | None = field(default=None, repr=False)
    buyer_email: str | None = field(default=None, repr=False)  # full address; only its mask is shown
    payment_descriptor: str | None = field(default=None, repr=False)  # e.g. "Visa ****1234"
    return_url: str | None = None  # "back to shop" / "try again"
    refresh_seconds: int | None = None  # pending/unavailable only; None on pending ⇒ default
    reason: str | None = None  # short buyer-facing explanation, shown as plain text
    app_links: AppLinks = AppLinks()

    def __post_init__(self) -> None:
        if self.kind not in PAGE_KINDS:
            raise ValueError(f"unknown page kind {self.kind!r}; expected one of {', '.join(PAGE_KINDS)}")
        if self.status is None:
            object.__setattr__(self, "status", DEFAULT_STATUS[self.kind])
        elif not (200 <= self.status <= 299 or 400 <= self.status <= 599):
            raise ValueError(f"status of a page must be 2xx, 4xx or 5xx, got {self.status}")
        if (self.amount is None) != (self.currency is None):
            raise ValueError("amount and currency must be given together")
        if self.amount is not None and self.currency is not None:
            format_amount(self.amount, self.currency)  # fail at construction, not at render time
        if self.return_url is not None:
            _http_url("return_url", self.return_url)
        self._check_refresh()

    def _check_refresh(self) -> None:
        if self.refresh_seconds is None:
            if self.kind == "pending":
                object.__setattr__(self, "refresh_seconds", DEFAULT_REFRESH_SECONDS)
            return
        if self.kind not in _REFRESHING_KINDS:
            raise ValueError(f"refresh_seconds only applies to pending/unavailable pages, not {self.kind}")
        if not 1 <= self.refresh_seconds <= 600:
            raise ValueError(f"refresh_seconds must be 1..600, got {self.refresh_seconds}")

    @property
    def http_status(self) -> int:
        return self.status if self.status is not None else DEFAULT_STATUS[self.kind]


# ---------------------------------------------------------------- templates and assets


def templates_dir() -> Path:
    """Installed wheels ship ``templates/`` as ``router/templates``; a source checkout has it at the root."""
    package_dir = Path(router.__file__).resolve().parent
    installed = package_dir / "templates"
    return installed if installed.is_dir() else package_dir.parent / "templates"


@dataclass(frozen=True, slots=True)
class _Assets:
    environment: jinja2.Environment
    catalogs: Mapping[Locale, Catalog]
    css: Markup
    csp: str


@functools.cache
def _assets() -> _Assets:
    """Jinja2 environment, catalogs, CSS and its CSP, loaded once per process."""
    directory = templates_dir()
    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(directory),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        auto_reload=False,
    )
    css = (directory / "page.css").read_text(encoding="utf-8").strip()
    digest = base64.b64encode(hashlib.sha256(css.encode("utf-8")).digest()).decode("ascii")
    csp = "; ".join((
        "default-src 'none'",
        f"style-src 'sha256-{digest}'",
        "img-src 'self' data:",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ))  # fmt: skip
    return _Assets(environment, load_catalogs(directory / "messages"), Markup(css), csp)  # noqa: S704


def get_environment() -> jinja2.Environment:
    """The process-wide Jinja2 environment (autoescape on, strict undefined)."""
    return _assets().environment


def security_headers() -> dict[str, str]:
    """Headers for every HTML page the service sends, error pages included (a fresh dict to extend)."""
    return {
        "Content-Security-Policy": _assets().csp,
        "Referrer-Policy": "no-referrer",
        "Cache-Control": "no-store",
        "X-Robots-Tag": "noindex",
        "X-Content-Type-Options": "nosniff",
        "X-Frame-Options": "DENY",
        "Cross-Origin-Opener-Policy": "same-origin",
    }


def _page_headers(locale: Locale) -> dict[str, str]:
    headers = security_headers()
    headers["Content-Language"] = locale
    headers["Vary"] = "Accept-Language, User-Agent"
    return headers


# ---------------------------------------------------------------- context building


def _common_context(locale: Locale, current_url: str, merchant_name: str) -> dict[str, Any]:
    assets = _assets()
    other: Locale = "ja" if locale == "en" else "en"
    return {
        "locale": locale,
        "t": translator(assets.catalogs[locale]),
        "css": assets.css,
        "merchant_name": merchant_name,
        "lang_switch": {
            "url": _with_query(current_url, lang=other),
            "locale": other,
            "label": assets.catalogs[other]["lang.name"],
        },
    }


def _details(view: PageView) -> list[dict[str, str]]:
    total = format_amount(view.amount, view.currency) if view.amount and view.currency else None
    rows: list[tuple[str, str, str | None]] = [
        ("details.order", "", _clip(view.merchant_reference)),
        ("details.amount", "amount", total),
        ("details.payment_method", "", _clip(view.payment_descriptor)),
        ("details.name", "", _clip(view.buyer_name)),
        ("details.email", "", mask_email(view.buyer_email) if view.buyer_email else None),
        ("details.reason", "", _clip(view.reason)),
    ]  # fmt: skip
    return [{"label_key": key, "css": css, "value": value} for key, css, value in rows if value]


def _app_section(links: AppLinks, platform: Platform, current_url: str) -> dict[str, Any] | None:
    """The "Open in app" block for phones; ``None`` on desktops/unknown agents or without app links."""
    if platform.os == "ios":
        open_url, store_url, store_key = links.ios_open_url, links.app_store_url, "app.store.ios"
    elif platform.os == "android":
        package, store_url, store_key = links.android_package, links.play_store_url, "app.store.android"
        fallback = store_url or current_url
        open_url = intent_url(current_url, package, fallback) if package else None
    else:
        return None
    if open_url is None and store_url is None:
        return None
    return {
        "open_url": open_url,
        "store_url": store_url,
        "store_label_key": store_key,
        "in_app": platform.in_app_browser is not None,
        "in_app_browser": platform.in_app_browser,
    }


def _smart_banner(links: AppLinks, platform: Platform, current_url: str) -> str | None:
    if platform.os != "ios" or not links.app_store_id:
        return None
    # The meta content is a comma-separated list, so a comma inside the URL must stay encoded.
    return f"app-id={links.app_store_id}, app-argument={current_url.replace(',', '%2C')}"


def build_context(view: PageView, locale: Locale, platform: Platform, current_url: str) -> dict[str, Any]:
    """Template context for ``page.html``. ``current_url`` is the absolute URL the buyer loaded."""
    context = _common_context(locale, current_url, view.merchant_name)
    title_key = f"page.{view.kind}.title"
    note_key = f"page.{view.kind}.note"
    catalog = _assets().catalogs[locale]
    context.update({
        "kind": view.kind,
        "status": view.http_status,
        "tone": _TONES[view.kind],
        "title_key": title_key,
        "lead_key": f"page.{view.kind}.lead",
        "note_key": note_key if note_key in catalog else None,
        "page_title": f"{catalog[title_key]} – {view.merchant_name}",
        "details": _details(view),
        "return_url": view.return_url,
        "return_label_key": "actions.retry" if view.kind in _RETRY_KINDS else "actions.back",
        "refresh_seconds": view.refresh_seconds,
        "check_again_url": _relative(current_url) if view.refresh_seconds else None,
        "app": _app_section(view.app_links, platform, current_url),
        "smart_banner": _smart_banner(view.app_links, platform, current_url),
    })  # fmt: skip
    return context


def render_page(view: PageView, locale: Locale, platform: Platform, current_url: str) -> str:
    """The complete HTML document for ``view``."""
    context = build_context(view, locale, platform, current_url)
    return get_environment().get_template("page.html").render(context)


def page_response(
    view: PageView, request: Request, app_links: AppLinks | None = None, *, current_url: str | None = None
) -> HTMLResponse:
    """Render ``view`` for this request's language and platform, with the security headers.

    ``app_links``, when given, replaces ``view.app_links`` (handy when the flow built the view
    before it knew the request's alternate-host URL). ``current_url`` overrides ``request.url``,
    e.g. with the public https URL when a TLS-terminating proxy makes the request look like http.
    """
    if app_links is not None:
        view = replace(view, app_links=app_links)
    locale = detect_locale(request.headers.get("accept-language"), request.query_params.get("lang"))
    platform = detect_platform(request.headers.get("user-agent"))
    html = render_page(view, locale, platform, current_url or str(request.url))
    return HTMLResponse(html, status_code=view.http_status, headers=_page_headers(locale))


# ---------------------------------------------------------------- the demo landing page

DemoScenario = Literal[
    "completed", "pending-then-authorized", "pending-then-declined",
    "declined", "expired", "buyer-canceled", "amazon-error",
]  # fmt: skip
DEMO_SCENARIOS: tuple[DemoScenario, ...] = get_args(DemoScenario)
# currency → amount offered on the demo page; the form posts only the currency.
DEMO_AMOUNTS: Mapping[str, str] = MappingProxyType({"JPY": "1000", "USD": "14.00"})


_MAX_DEMO_FORM_BYTES = 1024


@dataclass(frozen=True, slots=True)
class DemoChoice:
    scenario: DemoScenario
    currency: str
    amount: str
    locale: Locale | None = None  # the language the demo page was shown in, to carry into the flow


def parse_demo_choice(scenario: str | None, currency: str | None, lang: str | None = None) -> DemoChoice:
    """Validate the demo form fields (``scenario``, ``currency``, optional ``lang``); ValueError otherwise."""
    for known in DEMO_SCENARIOS:
        if scenario == known:
            break
    else:
        expected = ", ".join(DEMO_SCENARIOS)
        raise ValueError(f"unknown demo scenario {str(scenario)[:40]!r}; expected one of {expected}")
    if currency is None or currency not in DEMO_AMOUNTS:
        expected = ", ".join(DEMO_AMOUNTS)
        raise ValueError(f"unknown demo currency {str(currency)[:10]!r}; expected one of {expected}")
    locale = lang if lang is not None and is_locale(lang) else None
    return DemoChoice(known, currency, DEMO_AMOUNTS[currency], locale)


def parse_demo_form(body: bytes) -> DemoChoice:
    """Parse the demo page's ``application/x-www-form-urlencoded`` POST body (no python-multipart needed)."""
    if len(body) > _MAX_DEMO_FORM_BYTES:
        raise ValueError(f"demo form body is larger than {_MAX_DEMO_FORM_BYTES} bytes")
    try:
        text = body.decode("ascii")
    except UnicodeDecodeError:
        raise ValueError("demo form body is not URL-encoded ASCII") from None
    fields = dict(parse_qsl(text, keep_blank_values=True, max_num_fields=10))
    return parse_demo_choice(fields.get("scenario"), fields.get("currency"), fields.get("lang"))


@dataclass(frozen=True, slots=True)
class DemoView:
    """The demo landing page at ``/``: one POST form per scenario to ``action``."""

    merchant_name: str = "Demo Shop"
    action: str = "/demo/start"
    scenarios: tuple[DemoScenario, ...] = DEMO_SCENARIOS


def build_demo_context(view: DemoView, locale: Locale, current_url: str) -> dict[str, Any]:
    context = _common_context(locale, current_url, view.merchant_name)
    title = _assets().catalogs[locale]["demo.title"]
    context.update({
        "page_title": title,
        "action": view.action,
        "scenarios": view.scenarios,
        "amounts": [{"currency": c, "label": format_amount(a, c)} for c, a in DEMO_AMOUNTS.items()],
        "refresh_seconds": None,
        "smart_banner": None,
    })  # fmt: skip
    return context


def render_demo(view: DemoView, locale: Locale, current_url: str) -> str:
    return get_environment().get_template("demo.html").render(build_demo_context(view, locale, current_url))


def demo_response(view: DemoView, request: Request) -> HTMLResponse:
    """The demo landing page in the request's language, with the security headers."""
    locale = detect_locale(request.headers.get("accept-language"), request.query_params.get("lang"))
    html = render_demo(view, locale, str(request.url))
    return HTMLResponse(html, headers=_page_headers(locale))
