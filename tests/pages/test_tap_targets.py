"""Every link and button on the buyer's pages is a tap target of at least 48 x 48 CSS px (Android's 48 dp;
Apple asks 44 pt), measured in a real Chromium on a 390 px wide phone, in both languages."""

from __future__ import annotations

import pytest

from tests.pages.conftest import Contexts
from tests.pages.samples import UA

pytestmark = pytest.mark.asyncio(loop_scope="session")

MIN_PX = 48
KINDS = ["success", "canceled", "error", "amazon_error", "not_found"]

# Each visible link, button or form control: what it says and the box a finger can hit.
TARGETS_JS = """
() => [...document.querySelectorAll('a[href], button, input, select, summary, [role=button]')]
  .filter(el => el.getClientRects().length > 0)
  .map(el => { const box = el.getBoundingClientRect();
               return {text: (el.textContent || el.tagName).trim().slice(0, 40), width: box.width,
                       height: box.height}; })
"""


def too_small(targets: list[dict[str, object]]) -> list[str]:
    return [f"{t['text']!r} {t['width']:.0f}x{t['height']:.0f}" for t in targets
            if float(str(t["width"])) < MIN_PX or float(str(t["height"])) < MIN_PX]


async def test_the_measure_sees_a_small_link() -> None:
    """Guards the guard: a 40 px wide, 22 px high link is flagged, a 48 x 52 one is not."""
    assert too_small([{"text": "日本語", "width": 40.0, "height": 22.0}]) == ["'日本語' 40x22"]
    assert too_small([{"text": "Back", "width": 48.0, "height": 52.0}]) == []


@pytest.mark.parametrize("agent", ["iphone_safari", "android_chrome"])
@pytest.mark.parametrize("lang", ["en", "ja"])
async def test_every_tap_target_is_large_enough(contexts: Contexts, page_server: str, agent: str,
                                                lang: str) -> None:
    context = await contexts.get(UA[agent], lang, 390, 844)
    page = await context.new_page()
    try:
        found: dict[str, list[str]] = {}
        for kind in KINDS:
            await page.goto(f"{page_server}/page/{kind}?lang={lang}&support=1", wait_until="load")
            targets = await page.evaluate(TARGETS_JS)
            texts = " ".join(str(t["text"]) for t in targets)
            # the language switch, the shop link and the help links are all there to be measured
            assert len(targets) >= 4 and ("日本語" in texts or "English" in texts), (kind, targets)
            assert "help@shop.example" in texts, (kind, targets)
            found[kind] = too_small(targets)
        assert {kind: small for kind, small in found.items() if small} == {}
    finally:
        await page.close()
