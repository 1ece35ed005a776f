"""Golden responses of the buyer pages: every page kind × locale × branding × app links × test mode, with buyer
data, hostile text and unusual Accept-Language / User-Agent values, as the status, the exact header list and a
digest of the body bytes.

``parity_expected.json`` was written by the rendering code before it was optimised; the test compares the
current code against it byte for byte. After an intended change to the pages, regenerate it with
``.venv/bin/python -m tests.pages.parity --write`` and review the diff of the headers.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from router.web.branding import PagesSettings, logo_from_bytes
from router.web.demo_page import DemoView, demo_response
from router.web.pages import PAGE_KINDS, AppLinks, PageKind, PageView
from router.web.render import NO_BRANDING, page_response
from tests.pages.samples import ANDROID_PACKAGE, APP_STORE_ID, HOSTILE, UA, app_links, sample_view

EXPECTED = Path(__file__).with_name("parity_expected.json")
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + bytes(17)
SVG = b'<svg xmlns="http://www.w3.org/2000/svg" width="4" height="4"><rect width="4" height="4"/></svg>'

BRANDINGS: dict[str, PagesSettings] = {
    "none": NO_BRANDING,
    "full": PagesSettings(logo=logo_from_bytes(PNG, "logo.png"), accent_color="#b4451f",
                          support_url="https://shop.example/help?a=1&b=<2>", support_email="help@shop.example"),
    "email": PagesSettings(support_email="o'hara+help@shop.example"),
    "url_light": PagesSettings(accent_color="#ffee00", support_url="https://shop.example/help"),
    "svg": PagesSettings(logo=logo_from_bytes(SVG, "logo.svg"), accent_color="#0a58b0"),
}
LINKS: dict[str, AppLinks | None] = {
    "view": None,  # the view's own (sample) app links
    "sample": app_links(),
    "empty": AppLinks(),
    "store": AppLinks(app_store_id="42"),
    "android": AppLinks(android_package=ANDROID_PACKAGE),
    "ios_open": AppLinks(ios_open_url="https://open.shop.example/amazon-pay/cancel?ref=a,b&c=<d>"),
    "play": AppLinks(android_package=ANDROID_PACKAGE, play_store_url="https://play.example/app?id=x&y=1"),
    "full": AppLinks(app_store_id=APP_STORE_ID, ios_open_url="https://open.shop.example/r?x=1",
                     android_package=ANDROID_PACKAGE),
}
USER_AGENTS: dict[str, str | None] = {
    "none": None, "empty": "", **UA,
    "hostile": HOSTILE,
    "long_iphone_late": "x" * 2100 + " (iPhone; CPU iPhone OS 17_5) Safari/604.1",  # beyond the scanned length
    "long_iphone": "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) " + "y" * 3000,
}
ACCEPT_LANGUAGES: dict[str, str | None] = {
    "none": None, "empty": "", "en": "en", "ja": "ja", "ja_JP": "ja-JP", "star": "*",
    "chrome_ja": "ja-JP,ja;q=0.9,en-US;q=0.8,en;q=0.7",
    "chrome_en": "en-US,en;q=0.9,ja;q=0.8",
    "fr_star": "fr-CH, fr;q=0.9, *;q=0.5, ja;q=0.4",
    "fr_ja": "fr, ja;q=0.5",
    "zero": "ja;q=0, en;q=0",
    "bad_q": "ja;q=abc, en;q=0.1",
    "big_q": "ja;q=1.5, en;q=0.2",
    "underscore": "JA_jp",
    "junk": ";;;,,,;q=,",
    "long": "x" * 2000 + ",ja",
    "many": "de;q=0.5," * 40 + "ja",
    "tiny_ja": "de, ja;q=0.001",
    "ja_late": "en;q=0.1, ja",
    "hostile": HOSTILE,
}
LANG_PARAMS = (None, "ja", "en", "JA-jp", "fr", "ja" * 30, "ja_JP", "")


@dataclass(frozen=True)
class Case:
    """One request to render: the view, how it was asked for, and the page_response options."""

    name: str
    view: PageView | None  # None: the demo landing page
    accept_language: str | None = None
    user_agent: str | None = None
    path: str = "/amazon-pay/cancel"
    query: str = "ref=r1"
    current_url: str | None = "https://pay.example.com/amazon-pay/cancel?ref=r1"
    branding: str = "none"
    links: str = "view"
    test_mode: bool = False
    extra_headers: tuple[tuple[str, str], ...] = field(default=())

    def request(self) -> Request:
        headers = [(b"host", b"pay.example.com:8443")]
        if self.user_agent is not None:
            headers.append((b"user-agent", self.user_agent.encode("latin-1")))
        if self.accept_language is not None:
            headers.append((b"accept-language", self.accept_language.encode("latin-1")))
        headers.extend((k.encode("latin-1"), v.encode("latin-1")) for k, v in self.extra_headers)
        return Request({
            "type": "http", "method": "GET", "path": self.path, "raw_path": self.path.encode("utf-8"),
            "query_string": self.query.encode("latin-1"), "headers": headers, "scheme": "http",
            "server": ("127.0.0.1", 8443), "root_path": "", "http_version": "1.1",
        })  # fmt: skip

    def response(self) -> Response:
        branding = BRANDINGS[self.branding]
        if self.view is None:
            return demo_response(DemoView(), self.request(), branding)
        return page_response(self.view, self.request(), LINKS[self.links], current_url=self.current_url,
                             branding=branding, test_mode=self.test_mode)


def outcome(response: Response) -> dict[str, Any]:
    """What goes on the wire: the status, every header in order and the body's digest."""
    body = bytes(response.body)
    return {
        "status": response.status_code,
        "headers": [f"{k.decode('latin-1')}: {v.decode('latin-1')}" for k, v in response.raw_headers],
        "length": len(body),
        "sha256": hashlib.sha256(body).hexdigest(),
    }


def _views(kind: PageKind) -> dict[str, PageView]:
    refresh = {"refresh_seconds": 7} if kind in ("pending", "unavailable") else {}
    return {
        "minimal": PageView(kind, merchant_name="Example Shop"),
        "full": sample_view(kind, **refresh),
        "hostile": sample_view(
            kind, merchant_name=HOSTILE + " Amazon Pay", merchant_reference=HOSTILE,
            reference_code=HOSTILE + " Amazon Pay", reason_key="reason.invalid_session",
            buyer_name="Amazon Pay " + HOSTILE, buyer_email='"x<y>"@exa&mple.com', payment_descriptor="Visa \"'<>&",
            amount="14.00", currency="USD", return_url="https://shop.example/cart?a=1&b=\"x\"'<y>",
        ),
        "long": sample_view(kind, reference_code="word " * 200, buyer_name="N" * 400, merchant_reference="R " * 300,
                            amount="14", currency="CHF", buyer_email="no-at-sign"),
        "bare_buyer": PageView(kind, merchant_name="Shop", buyer_name="Jane  \n Doe", buyer_email="jane@example.com",
                               amount="1234567", currency="JPY", reference_code="  spaced\treason  "),
    }


def _base_cases() -> Iterator[Case]:
    """kind × locale × branding × view, each with a rotating User-Agent, app links, test mode and URL."""
    agents = itertools.cycle(USER_AGENTS)
    links = itertools.cycle(LINKS)
    brandings = itertools.cycle(["full", "email", "url_light", "svg"])
    urls = itertools.cycle([
        ("explicit", "https://pay.example.com/amazon-pay/cancel?ref=r1"),
        ("request", None),
        ("lang_in_url", "https://pay.example.com/amazon-pay/result?ref=r1&lang=en&amazonCheckoutSessionId=s-1"),
        ("odd_url", "https://pay.example.com//evil.example/%2Fx?ref=a,b&q=%7E+%20&empty="),
    ])
    matrix = itertools.product(PAGE_KINDS, ("en", "ja"), (False, True), _views("success"))
    for kind, locale, branded, view_name in matrix:
        view = _views(kind)[view_name]
        agent, link, (url_name, url) = next(agents), next(links), next(urls)
        branding = next(brandings) if branded else "none"
        test_mode = (len(kind) + len(view_name) + branded) % 2 == 0
        name = f"{kind}|{locale}|{view_name}|brand={branding}|ua={agent}|links={link}|test={test_mode:d}|{url_name}"
        yield Case(name, view, accept_language=locale, user_agent=USER_AGENTS[agent], branding=branding, links=link,
                   test_mode=test_mode, current_url=url)


def _edge_cases() -> Iterator[Case]:
    canceled = sample_view("canceled")
    for name, value in ACCEPT_LANGUAGES.items():
        yield Case(f"accept_language={name}", canceled, accept_language=value, user_agent=UA["iphone_safari"])
    for lang in LANG_PARAMS:
        query = "ref=r1" if lang is None else f"ref=r1&lang={lang}"
        yield Case(f"lang_param={lang}", canceled, accept_language="ja", query=query, current_url=None)
    yield Case("lang_param_encoded", canceled, query="ref=r1&l%61ng=ja", current_url=None)
    yield Case("lang_param_twice", canceled, query="lang=fr&ref=r1&lang=ja", current_url=None)
    for name in USER_AGENTS:
        for kind in ("success", "declined", "pending"):
            yield Case(f"user_agent={name}|{kind}", sample_view(kind), user_agent=USER_AGENTS[name], links="full",
                       accept_language="ja" if kind == "declined" else "en")
    for kind, status in (("error", 500), ("error", 503), ("unavailable", 503), ("conflict", 409),
                         ("success", 201), ("bad_request", 422), ("not_found", 410)):
        view = PageView(kind, merchant_name="Example Shop", status=status)
        yield Case(f"status={kind}:{status}", view, user_agent=UA["android_chrome"], links="sample")
    for seconds in (1, 3, 10, 600):
        for kind in ("pending", "unavailable"):
            view = PageView(kind, merchant_name="Example Shop", refresh_seconds=seconds)
            yield Case(f"refresh={kind}:{seconds}", view, accept_language="ja", test_mode=True)
    yield Case("unavailable_default", PageView("unavailable", merchant_name="S"), current_url=None,
               path="/amazon-pay/result", query="ref=r1&amazonCheckoutSessionId=a,b&x=%3Cy%3E")
    yield Case("request_url_unicode_path", canceled, path="/amazon-pay/ca ncel/日本", query="ref=%E6%97%A5",
               current_url=None)
    for branding in BRANDINGS:
        for locale in ("en", "ja"):
            yield Case(f"demo|{locale}|brand={branding}", None, accept_language=locale, path="/", query="")
    yield Case("demo|lang_param", None, accept_language="en", path="/", query="lang=ja")
    yield Case("demo|hostile_query", None, path="/", query="a=<b>&lang=en&c=%22")


def cases() -> list[Case]:
    return [*_base_cases(), *_edge_cases()]


def render_all(selected: list[Case] | None = None) -> dict[str, dict[str, Any]]:
    return {case.name: outcome(case.response()) for case in (selected if selected is not None else cases())}


_LENGTH = "content-length: "


def pack(outcomes: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The golden file's form: each distinct header list once (its content-length a ``*``), cases point at it."""
    sets: list[list[str]] = []
    packed: dict[str, dict[str, Any]] = {}
    for name, result in outcomes.items():
        headers = [_LENGTH + "*" if h == f"{_LENGTH}{result['length']}" else h for h in result["headers"]]
        if headers not in sets:
            sets.append(headers)
        packed[name] = {**result, "headers": sets.index(headers)}
    return {"header_sets": sets, "cases": packed}


def unpack(data: dict[str, Any]) -> dict[str, dict[str, Any]]:
    sets = data["header_sets"]
    return {name: {**result, "headers": [f"{_LENGTH}{result['length']}" if h == _LENGTH + "*" else h
                                         for h in sets[result["headers"]]]}
            for name, result in data["cases"].items()}


def expected() -> dict[str, dict[str, Any]]:
    return unpack(json.loads(EXPECTED.read_text(encoding="utf-8")))


def main(argv: list[str]) -> None:
    if argv != ["--write"]:
        sys.exit("usage: python -m tests.pages.parity --write  (rewrites the golden file from the current code)")
    data = pack(render_all())
    sets = ",\n".join(json.dumps(headers, ensure_ascii=False) for headers in data["header_sets"])
    rows = ",\n".join(f"{json.dumps(name, ensure_ascii=False)}: {json.dumps(result)}"
                       for name, result in data["cases"].items())
    EXPECTED.write_text(f'{{"header_sets": [\n{sets}\n],\n"cases": {{\n{rows}\n}}}}\n', encoding="utf-8")
    print(f"wrote {EXPECTED}: {len(data['cases'])} cases, {len(data['header_sets'])} header lists")


if __name__ == "__main__":
    main(sys.argv[1:])
