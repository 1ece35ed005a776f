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
from markupsafe import Markup, escape
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

import router
from router.checkout.money import format_amount
from router.redact import mask_email
from router.web.branding import Logo, PagesSettings, accent_css
from router.web.i18n import Catalog, Locale, detect_locale, load_catalogs, translator
from router.web.links import intent_url, relative, with_query
from router.web.pages import RETRY_KINDS, TONES, AppLinks, PageKind, PageView
from router.web.platform import Platform, detect_platform

_MAX_TEXT = 300  # free text shown to the buyer (reason, names) is cut to this many characters
_PHRASE = "|"  # in a catalog heading: where a line may break (Japanese has no spaces; see page.css)
_NBSP_TERMS = ("Amazon Pay",)  # never split across lines
NO_BRANDING = PagesSettings()


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


def _csp(css: str) -> str:
    digest = base64.b64encode(hashlib.sha256(css.encode("utf-8")).digest()).decode("ascii")
    return "; ".join((
        "default-src 'none'",
        f"style-src 'sha256-{digest}'",
        # 'self' for the merchant's logo (served from memory); data: only for the empty favicon
        # (<link rel="icon" href="data:,">) that keeps browsers from asking for /favicon.ico.
        "img-src 'self' data:",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ))  # fmt: skip


@functools.cache
def styles(accent: str | None) -> tuple[Markup, str]:
    """The final inline CSS (the merchant's accent appended) and its CSP, computed once per accent."""
    css = str(assets().css) + (accent_css(accent) if accent else "")
    return Markup(css), _csp(css)  # noqa: S704


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
    return _Assets(environment, load_catalogs(directory / "messages"), Markup(css), _csp(css))  # noqa: S704


def get_environment() -> jinja2.Environment:
    """The process-wide Jinja2 environment (autoescape on, strict undefined)."""
    return assets().environment


def security_headers(accent: str | None = None) -> dict[str, str]:
    """Headers for every HTML page the service sends, error pages included (a fresh dict to extend)."""
    return {
        "Content-Security-Policy": styles(accent)[1] if accent else assets().csp,
        "Referrer-Policy": "no-referrer",
        "Cache-Control": "no-store",
        "X-Robots-Tag": "noindex",
        "X-Content-Type-Options": "nosniff",
        "X-Frame-Options": "DENY",
        "Cross-Origin-Opener-Policy": "same-origin",
    }


def page_headers(locale: Locale, accent: str | None = None) -> dict[str, str]:
    headers = security_headers(accent)
    headers["Content-Language"] = locale
    headers["Vary"] = "Accept-Language, User-Agent"
    return headers


# ---------------------------------------------------------------- context building


def _keep_terms(text: str) -> str:
    for term in _NBSP_TERMS:
        text = text.replace(term, term.replace(" ", "\u00a0"))
    return text


@functools.cache
def texts(locale: Locale) -> tuple[Any, Any]:
    """``t(key, **params)`` (plain text) and ``heading(key, **params)`` (Markup with ``<wbr>`` at phrase marks)."""
    catalog = assets().catalogs[locale]
    plain = translator({key: message.replace(_PHRASE, "") for key, message in catalog.items()})

    def t(key: str, **params: object) -> str:
        return _keep_terms(plain(key, **params))

    def heading(key: str, **params: object) -> Markup:
        t(key, **params)  # unknown keys and parameters fail the same way as in t()
        parts = [escape(_keep_terms(part.format(**params))) for part in catalog[key].split(_PHRASE)]
        return Markup("<wbr>").join(parts)

    return t, heading


def common_context(locale: Locale, current_url: str, merchant_name: str,
                   branding: PagesSettings = NO_BRANDING, *, test_mode: bool = False) -> dict[str, Any]:
    loaded = assets()
    other: Locale = "ja" if locale == "en" else "en"
    t, heading = texts(locale)
    return {
        "locale": locale,
        "test_mode": test_mode,  # the built-in emulator answers: the band says nothing is charged
        "t": t,
        "heading": heading,
        "css": styles(branding.accent_color)[0],
        "merchant_name": merchant_name,
        "logo_url": branding.logo.url if branding.logo else None,
        "support": _support(branding),
        "lang_switch": {
            "url": with_query(current_url, lang=other),
            "locale": other,
            "label": loaded.catalogs[other]["lang.name"],
        },
    }


def _support(branding: PagesSettings) -> dict[str, str] | None:
    """Where a buyer gets help, on every page when the merchant configured it."""
    if not branding.support_url and not branding.support_email:
        return None
    support = {"url": branding.support_url or "", "email": branding.support_email or ""}
    support["mailto"] = f"mailto:{branding.support_email}" if branding.support_email else ""
    return support


def _details(view: PageView) -> list[dict[str, str]]:
    total = format_amount(view.amount, view.currency) if view.amount and view.currency else None
    success = view.kind == "success"  # the name is in the heading, the email in the confirmation line
    rows: list[tuple[str, str, str | None]] = [
        ("details.order", "", _clip(view.merchant_reference)),
        ("details.amount", "amount", total),
        ("details.payment_method", "", _clip(view.payment_descriptor)),
        ("details.name", "", None if success else _clip(view.buyer_name)),
        ("details.email", "", mask_email(view.buyer_email) if view.buyer_email and not success else None),
        ("details.reason", "", _clip(view.reason)),
    ]  # fmt: skip
    return [{"label_key": key, "css": css, "value": value} for key, css, value in rows if value]


def _app_section(links: AppLinks, platform: Platform, current_url: str, kind: PageKind) -> dict[str, Any] | None:
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
        # After a decline, a cancel or an expiry the way forward is to try again; the app comes second.
        "primary": kind not in RETRY_KINDS,
        "in_app": platform.in_app_browser is not None and open_url is not None,
        "in_app_browser": platform.in_app_browser,
    }


def _smart_banner(links: AppLinks, platform: Platform, current_url: str) -> str | None:
    if platform.os != "ios" or not links.app_store_id:
        return None
    # The meta content is a comma-separated list, so a comma inside the URL must stay encoded.
    return f"app-id={links.app_store_id}, app-argument={current_url.replace(',', '%2C')}"


def _return_label(kind: PageKind) -> str:
    if kind == "success":
        return "actions.continue"
    return "actions.retry" if kind in RETRY_KINDS else "actions.back"


def build_context(view: PageView, locale: Locale, platform: Platform, current_url: str,
                  branding: PagesSettings = NO_BRANDING, *, test_mode: bool = False) -> dict[str, Any]:
    """Template context for ``page.html``. ``current_url`` is the absolute URL the buyer loaded."""
    context = common_context(locale, current_url, view.merchant_name, branding, test_mode=test_mode)
    name = _clip(view.buyer_name) if view.kind == "success" else None
    title_key = "page.success.title_named" if name else f"page.{view.kind}.title"
    title_params = {"name": name} if name else {}
    note_key = f"page.{view.kind}.note"
    catalog = assets().catalogs[locale]
    email = mask_email(view.buyer_email) if view.kind == "success" and view.buyer_email else None
    context.update({
        "kind": view.kind,
        "status": view.http_status,
        "tone": TONES[view.kind],
        "title_key": title_key,
        "title_params": title_params,
        "lead_key": f"page.{view.kind}.lead",
        "note_key": note_key if note_key in catalog else None,
        "page_title": f"{context['t'](title_key, **title_params)} – {view.merchant_name}",
        "details": _details(view),
        "confirmation_email": email,
        "return_url": view.return_url,
        "return_label_key": _return_label(view.kind),
        "refresh_seconds": view.refresh_seconds,
        "check_again_url": relative(current_url) if view.refresh_seconds else None,
        "app": _app_section(view.app_links, platform, current_url, view.kind),
        "smart_banner": _smart_banner(view.app_links, platform, current_url),
    })  # fmt: skip
    return context


def render_page(view: PageView, locale: Locale, platform: Platform, current_url: str,
                branding: PagesSettings = NO_BRANDING, *, test_mode: bool = False) -> str:
    """The complete HTML document for ``view``."""
    context = build_context(view, locale, platform, current_url, branding, test_mode=test_mode)
    return get_environment().get_template("page.html").render(context)


def page_response(
    view: PageView, request: Request, app_links: AppLinks | None = None, *, current_url: str | None = None,
    branding: PagesSettings = NO_BRANDING,
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
    html = render_page(view, locale, platform, current_url or str(request.url), branding, test_mode=test_mode)
    headers = page_headers(locale, branding.accent_color)
    if view.http_status == 503:  # "temporarily unavailable": say when to come back, as the API does
        headers["Retry-After"] = str(view.refresh_seconds or 10)
    return HTMLResponse(html, status_code=view.http_status, headers=headers)


def logo_response(logo: Logo, request: Request) -> Response:
    """The merchant's logo from memory: a strong ETag, 304 on a match, and no way to run an SVG's scripts."""
    headers = {
        "ETag": logo.etag,
        "Cache-Control": "public, max-age=86400",
        "X-Content-Type-Options": "nosniff",
        # Opened on its own, an SVG is a document: sandbox it so nothing in it can run.
        "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; sandbox",
        "Cross-Origin-Resource-Policy": "same-origin",
    }
    if logo.etag in [tag.strip() for tag in request.headers.get("if-none-match", "").split(",")]:
        return Response(status_code=304, headers=headers)
    return Response(logo.content, media_type=logo.media_type, headers=headers)
