"""The demo landing page at ``/``: its scenarios, its form and its rendering."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Literal, get_args
from urllib.parse import parse_qsl

from starlette.requests import Request
from starlette.responses import HTMLResponse

from router.checkout.money import format_amount
from router.web.branding import PagesSettings
from router.web.i18n import Locale, detect_locale, is_locale
from router.web.render import NO_BRANDING, common_context, get_environment, page_headers

DemoScenario = Literal[
    "completed", "pending-then-authorized", "pending-then-declined",
    "declined", "expired", "buyer-canceled", "amazon-error",
]  # fmt: skip
DEMO_SCENARIOS: tuple[DemoScenario, ...] = get_args(DemoScenario)
# currency → amount offered on the demo page; the form posts only the currency.
DEMO_AMOUNTS: Mapping[str, str] = MappingProxyType({"JPY": "1000", "USD": "14.00"})


MAX_DEMO_FORM_BYTES = 1024


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
    if len(body) > MAX_DEMO_FORM_BYTES:
        raise ValueError(f"demo form body is larger than {MAX_DEMO_FORM_BYTES} bytes")
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


def build_demo_context(view: DemoView, locale: Locale, current_url: str,
                       branding: PagesSettings = NO_BRANDING) -> dict[str, Any]:
    context = common_context(locale, current_url, view.merchant_name, branding,
                             test_mode=True)  # always the emulator
    context.update({
        "page_title": context["t"]("demo.title"),
        "action": view.action,
        "scenarios": view.scenarios,
        "amounts": [{"currency": c, "label": format_amount(a, c)} for c, a in DEMO_AMOUNTS.items()],
        "refresh_seconds": None,
        "smart_banner": None,
    })  # fmt: skip
    return context


def render_demo(view: DemoView, locale: Locale, current_url: str, branding: PagesSettings = NO_BRANDING) -> str:
    context = build_demo_context(view, locale, current_url, branding)
    return get_environment().get_template("demo.html").render(context)


def demo_response(view: DemoView, request: Request, branding: PagesSettings = NO_BRANDING) -> HTMLResponse:
    """The demo landing page in the request's language, with the security headers."""
    locale = detect_locale(request.headers.get("accept-language"), request.query_params.get("lang"))
    html = render_demo(view, locale, str(request.url), branding)
    return HTMLResponse(html, headers=page_headers(locale, branding.accent_color))
