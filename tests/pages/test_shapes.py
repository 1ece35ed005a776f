"""Pages filled into their shape's skeleton: the same bytes as Jinja2 rendering the whole context, no buyer's
data in any shape, a bounded cache, and a full rendering whenever a mark could be misread."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
from markupsafe import Markup, escape

from router.web import page_context, render
from router.web.assets import _check_no_mark, assets
from router.web.branding import PagesSettings
from router.web.page_context import build_context
from router.web.pages import PAGE_KINDS, AppLinks, PageView
from router.web.platform import Platform, detect_platform
from router.web.render import render_full, render_page
from router.web.shapes import _PLACEHOLDERS, MARK, ShapeCache, Skeleton, Slots
from tests.pages.parity import BRANDINGS, LINKS
from tests.pages.samples import HOSTILE, UA, sample_view

CURRENT = "https://pay.example.com/amazon-pay/result?ref=r1&amazonCheckoutSessionId=s-1"
PLATFORMS = [detect_platform(UA[name]) for name in ("iphone_safari", "android_chrome", "facebook_ios",
                                                     "line_android", "desktop_chrome")] + [Platform("other")]


def _views() -> list[PageView]:
    views = []
    for kind in PAGE_KINDS:
        refresh = {"refresh_seconds": 9} if kind in ("pending", "unavailable") else {}
        views += [PageView(kind, merchant_name="Shop"), sample_view(kind, **refresh),
                  sample_view(kind, buyer_name=HOSTILE, reference_code=HOSTILE, merchant_name=HOSTILE)]
    return views


@pytest.mark.parametrize("locale", ["en", "ja"])
def test_filled_skeleton_is_the_full_rendering(locale: str) -> None:
    """The reference kept in the test: Jinja2 over the whole real context, for every combination."""
    links_and_modes = itertools.cycle(itertools.product(LINKS.values(), (False, True)))
    for view, platform, branding in itertools.product(_views(), PLATFORMS, BRANDINGS.values()):
        links, test_mode = next(links_and_modes)
        args = (view, locale, platform, CURRENT, branding)
        full = render_full("page.html", build_context(*args, test_mode=test_mode, app_links=links))  # type: ignore[arg-type]
        assert render_page(*args, test_mode=test_mode, app_links=links) == full  # type: ignore[arg-type]


def test_buyer_data_stays_out_of_the_shapes() -> None:
    shapes = render._page_shapes()
    render_page(sample_view("success", buyer_name="Alice Adams", buyer_email="alice@a.example"), "en",
                Platform("desktop"), CURRENT)
    before = len(shapes)
    bob = render_page(sample_view("success", buyer_name="Bob Brown", buyer_email="bob@b.example",
                                  merchant_reference="BOB-7", payment_descriptor="Amex ****9"), "en",
                      Platform("desktop"), CURRENT)
    assert len(shapes) == before  # the same shape: nothing of Alice's was part of it
    assert "Alice" not in bob and "a.example" not in bob and "Bob Brown" in bob and "BOB-7" in bob
    held = repr(list(shapes._skeletons.items()))
    for secret in ("Alice", "alice", "Bob", "bob@", "BOB-7", "Amex", "Jane", "jane"):
        assert secret not in held, secret


def test_shape_cache_is_bounded_and_still_right() -> None:
    def toy(context: object) -> str:
        assert isinstance(context, dict)
        return f"<{context['kind']}>{context['name']}</{context['kind']}>"

    cache = ShapeCache(toy, maxsize=3)
    for round_, kind in itertools.product(range(2), "abcdefg"):
        slots = Slots()
        shaped = {"kind": kind, "name": slots(f"n{round_}<&>")}
        assert cache.render(shaped, slots, lambda: {}) == f"<{kind}>n{round_}&lt;&amp;&gt;</{kind}>"
        assert len(cache) <= 3


def test_a_mark_in_configured_text_is_rendered_in_full() -> None:
    """A support address holding the mark and digits is no gap: that shape is rendered from the real context."""
    branding = PagesSettings(support_email=f"{MARK}0{MARK}@shop.example", support_url=f"https://x.example/{MARK}")
    view = sample_view("declined", reference_code="the reason")
    html = render_page(view, "en", Platform("desktop"), CURRENT, branding)
    assert html == render_full("page.html", build_context(view, "en", Platform("desktop"), CURRENT, branding))
    assert f"{MARK}0{MARK}@shop.example" in html and "the reason" in html


def test_a_mark_in_the_pages_own_text_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="placeholder mark"):
        Skeleton.parse(f"<p>{MARK}</p>")
    with pytest.raises(ValueError, match="placeholder mark"):
        Skeleton.parse(f"<p>{MARK}x{MARK}</p>")
    (tmp_path / "page.html").write_text(f"<p>{MARK}</p>", encoding="utf-8")
    with pytest.raises(ValueError, match=r"page\.html"):
        _check_no_mark(tmp_path, assets().catalogs)
    _check_no_mark(tmp_path.parent / "nothing-here", assets().catalogs)  # the real catalogs pass


def test_slots_escape_values_and_keep_falsy_ones() -> None:
    slots = Slots()
    assert slots(None) is None and slots("") == "" and slots(0) == 0
    first, second, third = slots('<a href="x">'), slots(Markup("<wbr>")), slots(7)
    assert (first, second, third) == _PLACEHOLDERS[:3]
    assert slots.values == ["&lt;a href=&#34;x&#34;&gt;", "<wbr>", "7"]
    assert all(escape(p) == p for p in _PLACEHOLDERS)  # autoescape leaves a placeholder as it is


def test_context_values_are_the_real_ones_without_slots() -> None:
    ctx = build_context(sample_view("success"), "en", Platform("ios"), CURRENT, app_links=AppLinks(app_store_id="4"))
    assert ctx["merchant_name"] == "Example Shop" and ctx["title"] == "Thank you, Jane Doe"
    assert ctx["confirmation"] == "A confirmation will be sent to j***@example.com."
    assert MARK not in repr(ctx)
    assert page_context.NO_BRANDING is render.NO_BRANDING
