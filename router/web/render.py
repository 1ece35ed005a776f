"""Rendering a page: the security headers, the page from its shape, and the Starlette responses.

Pages carry no JavaScript and no external assets: the only style is one inline ``<style>`` block
whose SHA-256 is pinned in the Content-Security-Policy. Everything up to :func:`render_page` is
pure; only the responses touch Starlette.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from router.web.assets import assets, get_environment, styles, templates_dir, texts
from router.web.branding import Logo, PagesSettings
from router.web.i18n import Locale, detect_locale
from router.web.page_context import NO_BRANDING, build_context, common_context
from router.web.pages import AppLinks, PageView
from router.web.platform import Platform, detect_platform
from router.web.shapes import ShapeCache, Slots

__all__ = [  # the context builders and the environment are used through this module too
    "NO_BRANDING", "build_context", "common_context", "get_environment", "logo_response", "page_headers",
    "page_response", "render_full", "render_page", "security_headers", "styles", "templates_dir", "texts",
]  # fmt: skip


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


# ---------------------------------------------------------------- the page from its shape


def render_full(template: str, context: Mapping[str, Any]) -> str:
    """``template`` rendered by Jinja2 from a whole context: the reference the shapes are cut from."""
    return get_environment().get_template(template).render(context)


@functools.cache
def _page_shapes() -> ShapeCache:
    return ShapeCache(functools.partial(render_full, "page.html"))


def render_page(view: PageView, locale: Locale, platform: Platform, current_url: str,
                branding: PagesSettings = NO_BRANDING, *, test_mode: bool = False,
                app_links: AppLinks | None = None) -> str:
    """The complete HTML document for ``view`` (``app_links``, when given, replaces ``view.app_links``)."""
    args = (view, locale, platform, current_url, branding)
    slots = Slots()
    shaped = build_context(*args, test_mode=test_mode, app_links=app_links, slot=slots)
    return _page_shapes().render(shaped, slots, lambda: build_context(*args, test_mode=test_mode,
                                                                      app_links=app_links))


class _PageResponse(HTMLResponse):
    """An HTMLResponse whose header list is copied from a prepared one (the same bytes, in the same order)."""

    def __init__(self, html: str, status_code: int, headers: tuple[tuple[bytes, bytes], ...]) -> None:
        self.status_code = status_code
        self.background = None
        self.body = html.encode("utf-8")
        raw = list(headers)
        if not (status_code < 200 or status_code in (204, 304)):
            raw.append((b"content-length", str(len(self.body)).encode("latin-1")))
        raw.append((b"content-type", b"text/html; charset=utf-8"))
        self.raw_headers = raw


@functools.lru_cache(maxsize=64)
def _raw_page_headers(locale: Locale, accent: str | None, retry_after: str | None) -> tuple[tuple[bytes, bytes], ...]:
    headers = page_headers(locale, accent)
    if retry_after is not None:
        headers["Retry-After"] = retry_after
    return tuple((k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items())


def _lang_param(request: Request) -> str | None:
    """``?lang=``, without parsing a query that cannot hold it (no "lang" and no %-escape that could spell it)."""
    query: bytes = request.scope.get("query_string", b"")
    if b"lang" not in query and b"%" not in query:
        return None
    return request.query_params.get("lang")


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
    headers = request.headers
    locale = detect_locale(headers.get("accept-language"), _lang_param(request))
    platform = detect_platform(headers.get("user-agent"))
    html = render_page(view, locale, platform, current_url or str(request.url), branding, test_mode=test_mode,
                       app_links=app_links)
    # "temporarily unavailable": say when to come back, as the API does
    retry_after = str(view.refresh_seconds or 10) if view.http_status == 503 else None
    return _PageResponse(html, view.http_status, _raw_page_headers(locale, branding.accent_color, retry_after))


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
