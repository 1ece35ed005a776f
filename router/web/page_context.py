"""The template context of a result page (and what every page shares), built from the flow's view. Pure.

Each per-request value goes through ``slot`` (see router.web.shapes): the real value for a full rendering,
a placeholder when the page is filled into its shape's skeleton.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from router.redact import mask_email
from router.web.assets import assets, styles, texts
from router.web.branding import PagesSettings
from router.web.i18n import Locale
from router.web.links import intent_url, relative, with_query
from router.web.pages import RETRY_KINDS, TONES, AppLinks, PageKind, PageView, display_amount
from router.web.platform import Platform
from router.web.shapes import Frozen, as_is

# A reason that makes "incomplete" untrue gets texts of its own (title, lead, note) on the bad-request page.
# A reason with texts of its own (title, lead, note), on the page kind it is given to
_REASON_TEXTS = {("bad_request", "reason.too_long"): "page.too_long",
                 ("unavailable", "reason.not_bound"): "page.not_bound"}
_MAX_TEXT = 300  # free text shown to the buyer (reason, names) is cut to this many characters
NO_BRANDING = PagesSettings()


def _clip(text: str | None) -> str | None:
    if text is None:
        return None
    text = " ".join(text.split())
    return text[: _MAX_TEXT - 1] + "…" if len(text) > _MAX_TEXT else text or None


def common_context(locale: Locale, current_url: str, merchant_name: str,
                   branding: PagesSettings = NO_BRANDING, *, test_mode: bool = False,
                   slot: Callable[[Any], Any] = as_is) -> dict[str, Any]:
    """What every page shows; ``slot`` takes each per-request value (see router.web.shapes)."""
    context = _common(locale, branding, test_mode).copy()
    context["merchant_name"] = slot(merchant_name)
    other: Locale = "ja" if locale == "en" else "en"
    context["lang_switch"] = Frozen(url=slot(with_query(current_url, lang=other)), locale=other,
                                    label=assets().catalogs[other]["lang.name"])
    return context


@functools.lru_cache(maxsize=64)
def _common(locale: Locale, branding: PagesSettings, test_mode: bool) -> dict[str, Any]:
    """The part of every page that depends on the language and the configuration only (callers copy it)."""
    t, heading = texts(locale)
    return {
        "locale": locale,
        "test_mode": test_mode,  # the built-in emulator answers: the band says nothing is charged
        "t": t,
        "heading": heading,
        "css": styles(branding.accent_color)[0],
        "logo_url": branding.logo.url if branding.logo else None,
        "support": _support(branding),
    }


def _support(branding: PagesSettings) -> Frozen | None:
    """Where a buyer gets help, on every page when the merchant configured it."""
    if not branding.support_url and not branding.support_email:
        return None
    support = Frozen(url=branding.support_url or "", email=branding.support_email or "")
    support["mailto"] = f"mailto:{branding.support_email}" if branding.support_email else ""
    return support


def _details(view: PageView, t: Callable[[str], str], slot: Callable[[Any], Any]) -> tuple[Frozen, ...]:
    total = display_amount(view.amount, view.currency) if view.amount and view.currency else None
    success = view.kind == "success"  # the name is in the heading, the email in the confirmation line
    rows: list[tuple[str, str, str | None]] = [
        ("details.order", "", _clip(view.merchant_reference)),
        ("details.amount", "amount", total),
        ("details.payment_method", "", _clip(view.payment_descriptor)),
        ("details.name", "", None if success else _clip(view.buyer_name)),
        ("details.email", "", mask_email(view.buyer_email) if view.buyer_email and not success else None),
        ("details.reason", "", t(view.reason_key) if view.reason_key else None),
        ("details.reference", "", _clip(view.reference_code)),
    ]  # fmt: skip
    return tuple(Frozen(label_key=key, css=css, value=slot(value)) for key, css, value in rows if value)


def _app_section(links: AppLinks, platform: Platform, current_url: str, kind: PageKind,
                 slot: Callable[[Any], Any]) -> Frozen | None:
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
    return Frozen(
        open_url=slot(open_url),
        store_url=slot(store_url),
        store_label_key=store_key,
        # After a decline, a cancel or an expiry the way forward is to try again; the app comes second.
        primary=kind not in RETRY_KINDS,
        in_app=platform.in_app_browser is not None and open_url is not None,
        in_app_browser=platform.in_app_browser,
    )


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
                  branding: PagesSettings = NO_BRANDING, *, test_mode: bool = False,
                  app_links: AppLinks | None = None, slot: Callable[[Any], Any] = as_is) -> dict[str, Any]:
    """Template context for ``page.html``. ``current_url`` is the absolute URL the buyer loaded; ``app_links``
    replaces ``view.app_links``; ``slot`` takes each per-request value (see router.web.shapes)."""
    context = common_context(locale, current_url, view.merchant_name, branding, test_mode=test_mode, slot=slot)
    links = view.app_links if app_links is None else app_links
    name = _clip(view.buyer_name) if view.kind == "success" else None
    texts_key = _texts_key(view)
    title_key = "page.success.title_named" if name else f"{texts_key}.title"
    title_params = {"name": name} if name else {}
    t, heading = texts(locale)
    email = mask_email(view.buyer_email) if view.kind == "success" and view.buyer_email else None
    context.update({
        "kind": view.kind,
        "status": view.http_status,
        "tone": TONES[view.kind],
        "title_key": title_key,
        "title_params": Frozen(name=slot(name)) if name else Frozen(),
        "lead_key": f"{texts_key}.lead",
        "note_key": _note_key(locale, texts_key),
        "title": slot(heading(title_key, **title_params)),
        "page_title": slot(f"{t(title_key, **title_params)} – {view.merchant_name}"),
        "details": _details(view, t, slot),
        "confirmation_email": slot(email),
        "confirmation": slot(t("page.success.confirmation", email=email) if email else None),
        "return_url": slot(view.return_url),
        "return_label_key": _return_label(view.kind),
        "refresh_seconds": slot(view.refresh_seconds),
        "check_again_url": slot(relative(current_url) if view.refresh_seconds else None),
        "app": _app_section(links, platform, current_url, view.kind, slot),
        "smart_banner": slot(_smart_banner(links, platform, current_url)),
    })  # fmt: skip
    return context


def _texts_key(view: PageView) -> str:
    """Where the page's title, lead and note are in the catalogs: its kind's, or its reason's own."""
    own = _REASON_TEXTS.get((view.kind, view.reason_key or ""))
    return own or f"page.{view.kind}"


@functools.lru_cache(maxsize=64)
def _note_key(locale: Locale, texts_key: str) -> str | None:
    key = f"{texts_key}.note"
    return key if key in assets().catalogs[locale] else None
