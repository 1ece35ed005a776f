"""Japanese headings in a real Chromium with Debian's Noto CJK font: measured line by line, no line holds a
single character and "Amazon Pay" is never split, at the widths of today's phones (360-430 px)."""

from __future__ import annotations

import pytest

from router.web.pages import PAGE_KINDS
from tests.pages.conftest import Contexts
from tests.pages.samples import UA

pytestmark = pytest.mark.asyncio(loop_scope="session")

# For each heading: its characters (spaces dropped) grouped by the line box they are laid out in.
LINES_JS = """
() => [...document.querySelectorAll('h1, h2')].map(heading => {
  const lines = new Map();
  const walker = document.createTreeWalker(heading, NodeFilter.SHOW_TEXT);
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    for (let i = 0; i < node.data.length; i++) {
      if (/\\s/.test(node.data[i])) continue;
      const range = document.createRange();
      range.setStart(node, i); range.setEnd(node, i + 1);
      const rect = range.getClientRects()[0];
      if (!rect) continue;
      const top = Math.round(rect.top + rect.height / 2);
      const key = [...lines.keys()].find(k => Math.abs(k - top) < rect.height / 2) ?? top;
      lines.set(key, (lines.get(key) || '') + node.data[i]);
    }
  }
  return [...lines.entries()].sort((a, b) => a[0] - b[0]).map(entry => entry[1]);
})
"""


def problems_in(headings: list[list[str]]) -> list[str]:
    found = []
    for lines in headings:
        text = "".join(lines)
        found += [f"one-character line {line!r} in {text!r}" for line in lines if len(lines) > 1 and len(line) == 1]
        if "AmazonPay" in text and not any("AmazonPay" in line for line in lines):
            found.append(f"'Amazon Pay' split in {lines!r}")
    return found


async def test_the_measurement_sees_orphans_and_splits() -> None:
    """Guards the guard: the checks flag what they must."""
    assert problems_in([["お支払いを完了できませんでし", "た"]]) == [
        "one-character line 'た' in 'お支払いを完了できませんでした'"
    ]
    assert problems_in([["エラーAmazon", "Pay"]])[0].startswith("'Amazon Pay' split")
    assert problems_in([["ご注文", "ありがとうございました"]]) == []


@pytest.mark.parametrize("width", [360, 390, 430])
async def test_japanese_headings_break_between_phrases(contexts: Contexts, page_server: str, width: int) -> None:
    context = await contexts.get(UA["android_chrome"], "ja-JP", width, 800)
    page = await context.new_page()
    try:
        measured: dict[str, list[list[str]]] = {}
        for kind in PAGE_KINDS:
            await page.goto(f"{page_server}/page/{kind}?lang=ja", wait_until="load")
            measured[kind] = await page.evaluate(LINES_JS)
        await page.goto(f"{page_server}/?lang=ja", wait_until="load")
        measured["demo"] = await page.evaluate(LINES_JS)
        assert all(measured.values()), "no headings measured: the probe is broken"
        assert any(len(lines) > 1 for headings in measured.values() for lines in headings), "nothing wrapped"
        found = {kind: problems_in(headings) for kind, headings in measured.items()}
        assert {kind: p for kind, p in found.items() if p} == {}
    finally:
        await page.close()


async def test_the_probe_measures_real_line_boxes(contexts: Contexts, page_server: str) -> None:
    """A heading of plain kana that fills one line and spills one character is seen as an orphan."""
    context = await contexts.get(UA["android_chrome"], "ja-JP", 360, 800)
    page = await context.new_page()
    try:
        await page.goto(f"{page_server}/page/declined?lang=ja", wait_until="load")
        fill = "(n) => { const h = document.querySelector('h1'); h.style.textWrap = 'wrap';" \
               " h.textContent = 'あ'.repeat(n); }"
        await page.evaluate(fill, 60)
        per_line = len((await page.evaluate(LINES_JS))[0][0])
        await page.evaluate(fill, per_line + 1)
        lines = (await page.evaluate(LINES_JS))[0]
        assert lines == ["あ" * per_line, "あ"]
        assert problems_in([lines])
    finally:
        await page.close()
