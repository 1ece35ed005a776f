"""Rendering a page: the Jinja2 environment, the CSP, the template context and the Starlette response.

Pages carry no JavaScript and no external assets: the only style is one inline ``<style>`` block
whose SHA-256 is pinned in the Content-Security-Policy. Everything up to :func:`render_page` is
pure; only :func:`page_response` touches Starlette.
"""

from __future__ import annotations

import base64
import functools
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import jinja2
from markupsafe import Markup
from starlette.requests import Request
from starlette.responses import HTMLResponse

import router
from router.checkout.money import format_amount
from router.redact import mask_email
from router.web.i18n import Catalog, Locale, detect_locale, load_catalogs, translator
from router.web.links import intent_url, relative, with_query
from router.web.pages import RETRY_KINDS, TONES, AppLinks, PageView
from router.web.platform import Platform, detect_platform

_MAX_TEXT = 300  # free text shown to the buyer (reason, names) is cut to this many characters


def _clip(text: str | None) -> str | None:
    if text is None:
        return None
    text = " ".join(text.split())
    return text[: _MAX_TEXT - 1] + "…" if len(text) > _MAX_TEXT else text or None



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
def assets() -> _Assets:
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
    return assets().environment


def security_headers() -> dict[str, str]:
    """Headers for every HTML page the service sends, error pages included (a fresh dict to extend)."""
    return {
        "Content-Security-Policy": assets().csp,
        "Referrer-Policy": "no-referrer",
        "Cache-Control": "no-store",
        "X-Robots-Tag": "noindex",
        "X-Content-Type-Options": "nosniff",
        "X-Frame-Options": "DENY",
        "Cross-Origin-Opener-Policy": "same-origin",
    }


def page_headers(locale: Locale) -> dict[str, str]:
    headers = security_headers()
    headers["Content-Language"] = locale
    headers["Vary"] = "Accept-Language, User-Agent"
    return headers


# ---------------------------------------------------------------- context building


def common_context(locale: Locale, current_url: str, merchant_name: str, *, test_mode: bool = False) -> dict[str, Any]:
    loaded = assets()
    other: Locale = "ja" if locale == "en" else "en"
    return {
        "locale": locale,
        "test_mode": test_mode,  # the built-in emulator answers: the band says nothing is charged
        "t": translator(loaded.catalogs[locale]),
        "css": loaded.css,
        "merchant_name": merchant_name,
        "lang_switch": {
            "url": with_query(current_url, lang=other),
            "locale": other,
            "label": loaded.catalogs[other]["lang.name"],
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


def build_context(view: PageView, locale: Locale, platform: Platform, current_url: str, *,
                  test_mode: bool = False) -> dict[str, Any]:
    """Template context for ``page.html``. ``current_url`` is the absolute URL the buyer loaded."""
    context = common_context(locale, current_url, view.merchant_name, test_mode=test_mode)
    title_key = f"page.{view.kind}.title"
    note_key = f"page.{view.kind}.note"
    catalog = assets().catalogs[locale]
    context.update({
        "kind": view.kind,
        "status": view.http_status,
        "tone": TONES[view.kind],
        "title_key": title_key,
        "lead_key": f"page.{view.kind}.lead",
        "note_key": note_key if note_key in catalog else None,
        "page_title": f"{catalog[title_key]} – {view.merchant_name}",
        "details": _details(view),
        "return_url": view.return_url,
        "return_label_key": "actions.retry" if view.kind in RETRY_KINDS else "actions.back",
        "refresh_seconds": view.refresh_seconds,
        "check_again_url": relative(current_url) if view.refresh_seconds else None,
        "app": _app_section(view.app_links, platform, current_url),
        "smart_banner": _smart_banner(view.app_links, platform, current_url),
    })  # fmt: skip
    return context


def render_page(view: PageView, locale: Locale, platform: Platform, current_url: str, *,
                test_mode: bool = False) -> str:
    """The complete HTML document for ``view``."""
    context = build_context(view, locale, platform, current_url, test_mode=test_mode)
    return get_environment().get_template("page.html").render(context)


def page_response(
    view: PageView, request: Request, app_links: AppLinks | None = None, *, current_url: str | None = None,
    test_mode: bool = False,
) -> HTMLResponse:
    """Render ``view`` for this request's language and platform, with the security headers.

    ``app_links``, when given, replaces ``view.app_links`` (handy when the flow built the view
    before it knew the request's alternate-host URL). ``current_url`` overrides ``request.url``,
    e.g. with the public https URL when a TLS-terminating proxy makes the request look like http.
    ``test_mode`` shows the "nothing is charged" band (the built-in emulator answers).
    """
    if app_links is not None:
        view = replace(view, app_links=app_links)
    locale = detect_locale(request.headers.get("accept-language"), request.query_params.get("lang"))
    platform = detect_platform(request.headers.get("user-agent"))
    html = render_page(view, locale, platform, current_url or str(request.url), test_mode=test_mode)
    headers = page_headers(locale)
    if view.http_status == 503:  # "temporarily unavailable": say when to come back, as the API does
        headers["Retry-After"] = str(view.refresh_seconds or 10)
    return HTMLResponse(html, status_code=view.http_status, headers=headers)
