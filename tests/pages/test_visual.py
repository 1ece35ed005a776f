"""A small visual regression check: each page kind at 390 px in both languages against committed references.

The comparison is perceptual: both images are reduced to grey at half size (which also evens out
anti-aliasing), a pixel counts as different when it moves by more than PIXEL_DELTA, and a page fails when
more than MAX_DIFFERING of its pixels do, or when its size changed. After a deliberate change, refresh the
references with: RETURN_ROUTER_UPDATE_REFERENCES=1 make test ARGS=tests/pages/test_visual.py
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest
from PIL import Image, ImageChops

from router.web.pages import PAGE_KINDS
from tests.pages.conftest import Contexts
from tests.pages.samples import UA

pytestmark = pytest.mark.asyncio(loop_scope="session")

REFERENCES = Path(__file__).parent / "reference"
UPDATE = os.environ.get("RETURN_ROUTER_UPDATE_REFERENCES") == "1"
PIXEL_DELTA = 40  # of 255 grey levels
MAX_DIFFERING = 0.004  # share of pixels


def reduce(png: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(png)).convert("L")
    return image.resize((image.width // 2, image.height // 2), Image.Resampling.BOX)


def difference(actual: Image.Image, expected: Image.Image) -> float:
    """Share of pixels that differ perceptibly (1.0 when the sizes differ)."""
    if actual.size != expected.size:
        return 1.0
    delta = ImageChops.difference(actual, expected).point(lambda v: 255 if v > PIXEL_DELTA else 0)
    histogram = delta.histogram()
    return histogram[255] / (actual.width * actual.height)


async def test_the_comparison_tolerates_noise_and_catches_layout_changes() -> None:
    base = Image.new("L", (100, 100), 255)
    noisy = base.point(lambda v: v - 20)
    assert difference(noisy, base) == 0.0  # a slight tint is no change
    moved = base.copy()
    moved.paste(0, (10, 10, 30, 20))  # a 20x10 block, like a button that moved
    assert difference(moved, base) == 0.02 > MAX_DIFFERING
    assert difference(base.resize((100, 90)), base) == 1.0


@pytest.mark.parametrize("locale", ["en", "ja"])
async def test_pages_look_like_the_references(contexts: Contexts, page_server: str, locale: str) -> None:
    context = await contexts.get(UA["iphone_safari"], {"en": "en-US", "ja": "ja-JP"}[locale], 390, 844)
    page = await context.new_page()
    failures = []
    try:
        for kind in PAGE_KINDS:
            refresh = "&refresh=600" if kind in ("pending", "unavailable") else ""  # no reload mid-shot
            await page.goto(f"{page_server}/page/{kind}?lang={locale}{refresh}", wait_until="load")
            shot = reduce(await page.screenshot(full_page=True, animations="disabled", caret="hide"))
            reference = REFERENCES / f"{kind}-{locale}.png"
            if UPDATE:
                shot.save(reference, optimize=True)
                continue
            if not reference.exists():
                failures.append(f"{kind}-{locale}: no reference image {reference.name}")
                continue
            share = difference(shot, Image.open(reference))
            if share > MAX_DIFFERING:
                shot.save(REFERENCES.parent / f".actual-{kind}-{locale}.png")
                failures.append(f"{kind}-{locale}: {share:.2%} of pixels differ")
    finally:
        await page.close()
    assert failures == [], "layout changed; if on purpose: RETURN_ROUTER_UPDATE_REFERENCES=1 make test ARGS=" + __file__
