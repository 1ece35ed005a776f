"""Locale detection and the message catalogs."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from router.web.demo_page import DEMO_SCENARIOS
from router.web.i18n import LOCALES, detect_locale, load_catalog, load_catalogs, translator
from router.web.pages import PAGE_KINDS
from router.web.render import templates_dir


@pytest.mark.parametrize(
    ("accept_language", "lang", "expected"),
    [
        (None, None, "en"),
        ("", None, "en"),
        ("ja", None, "ja"),
        ("ja-JP,ja;q=0.9,en-US;q=0.8,en;q=0.7", None, "ja"),
        ("en-US,en;q=0.9,ja;q=0.8", None, "en"),
        ("fr-FR,fr;q=0.9,ja;q=0.8,en;q=0.5", None, "ja"),  # first supported by q-value
        ("en;q=0.3,ja;q=0.8", None, "ja"),  # q-values beat header order
        ("ja;q=0,en", None, "en"),  # q=0 means "not acceptable"
        ("ja;q=0", None, "en"),
        ("de,fr", None, "en"),  # nothing supported → default
        ("*", None, "en"),
        ("ja;q=abc,en;q=0.1", None, "en"),  # malformed q ignored
        ("ja;q=2", None, "en"),  # out-of-range q ignored
        ("JA-jp", None, "ja"),
        ("ja_JP", None, "ja"),
        (" ja ; q=0.9 , en ; q=0.8", None, "ja"),
        ("en-US,en;q=0.9", "ja", "ja"),  # ?lang= wins
        ("ja", "en", "en"),
        ("ja", "ja-JP", "ja"),
        ("ja", "fr", "ja"),  # invalid ?lang= is ignored, header decides
        ("en", "", "en"),
        (None, "<script>", "en"),
    ],
)
def test_detect_locale(accept_language: str | None, lang: str | None, expected: str) -> None:
    assert detect_locale(accept_language, lang) == expected


@given(st.text(max_size=200), st.one_of(st.none(), st.text(max_size=40)))
def test_detect_locale_never_fails(accept_language: str, lang: str | None) -> None:
    assert detect_locale(accept_language, lang) in LOCALES


def _catalogs() -> dict[str, dict[str, str]]:
    directory = templates_dir() / "messages"
    return {
        locale: json.loads((directory / f"{locale}.json").read_text(encoding="utf-8")) for locale in LOCALES
    }


def test_catalogs_have_the_same_keys() -> None:
    catalogs = _catalogs()
    assert set(catalogs["en"]) == set(catalogs["ja"])


def test_catalogs_have_the_same_placeholders_and_no_blank_messages() -> None:
    catalogs = _catalogs()
    for key, english in catalogs["en"].items():
        japanese = catalogs["ja"][key]
        assert english.strip() and japanese.strip(), key
        assert re.findall(r"\{(\w+)\}", english) == re.findall(r"\{(\w+)\}", japanese), key


def test_japanese_catalog_is_japanese() -> None:
    ja = _catalogs()["ja"]
    assert ja["page.success.title"] == "ご注文|ありがとう|ございました"  # "|": where a heading may break
    assert ja["page.success.lead"].endswith("お支払いが完了しました。")
    # Every buyer-facing page message carries Japanese script, not an untranslated English copy.
    for key, message in ja.items():
        if key.startswith(("page.", "app.", "actions.", "details.")):
            assert re.search(r"[\u3040-\u30ff\u4e00-\u9fff]", message), key


_LITERAL_CALL = re.compile(r"""\bt\(\s*"([^"]+)"\s*[,)]""")
_ANY_CALL = re.compile(r"\bt\(([^)]*)\)")
# Non-literal t(...) arguments in templates; each is produced by pages.py from known keys (tested below).
_COMPUTED_ARGUMENTS = {
    "title_key",
    "lead_key",
    "note_key",
    "row.label_key",
    "return_label_key",
    "app.store_label_key",
    '"demo.scenario." ~ scenario ~ ".title"',
    '"demo.scenario." ~ scenario ~ ".body"',
}


def _template_sources() -> dict[str, str]:
    return {path.name: path.read_text(encoding="utf-8") for path in templates_dir().glob("*.html")}


def test_every_literal_key_used_in_templates_exists() -> None:
    catalogs = _catalogs()
    used = {key for source in _template_sources().values() for key in _LITERAL_CALL.findall(source)}
    assert used, "no t() calls found: the scan is broken"
    for locale, catalog in catalogs.items():
        assert used <= set(catalog), (locale, used - set(catalog))


def test_templates_use_only_known_computed_keys() -> None:
    for name, source in _template_sources().items():
        for argument in _ANY_CALL.findall(source):
            if not argument.strip().startswith('"') or "~" in argument:
                assert argument.strip() in _COMPUTED_ARGUMENTS, (name, argument)


def test_computed_keys_exist() -> None:
    keys = {f"page.{kind}.{part}" for kind in PAGE_KINDS for part in ("title", "lead")}
    keys |= {f"demo.scenario.{s}.{part}" for s in DEMO_SCENARIOS for part in ("title", "body")}
    keys |= {"actions.back", "actions.retry", "app.store.ios", "app.store.android", "lang.name"}
    keys |= {f"details.{name}" for name in ("order", "amount", "payment_method", "name", "email", "reason")}
    for locale, catalog in _catalogs().items():
        assert keys <= set(catalog), (locale, keys - set(catalog))


def test_translator_formats_parameters_and_rejects_unknown_keys() -> None:
    t = translator({"greet": "Hello {name}", "plain": "No params"})
    assert t("greet", name="<b>") == "Hello <b>"  # plain text; the template escapes it
    assert t("plain") == "No params"
    with pytest.raises(KeyError, match="missing"):
        t("missing")


def test_load_catalog_rejects_bad_files(tmp_path: Path) -> None:
    (tmp_path / "list.json").write_text("[]", encoding="utf-8")
    (tmp_path / "nested.json").write_text('{"a": {"b": "c"}}', encoding="utf-8")
    (tmp_path / "broken.json").write_text("{", encoding="utf-8")
    with pytest.raises(ValueError, match="expected a JSON object"):
        load_catalog(tmp_path / "list.json")
    with pytest.raises(ValueError, match="'a' is not a string"):
        load_catalog(tmp_path / "nested.json")
    with pytest.raises(ValueError, match="cannot read"):
        load_catalog(tmp_path / "broken.json")
    with pytest.raises(ValueError, match="cannot read"):
        load_catalog(tmp_path / "absent.json")


def test_load_catalogs_reads_every_locale() -> None:
    catalogs = load_catalogs(templates_dir() / "messages")
    assert set(catalogs) == set(LOCALES)
    assert catalogs["ja"]["app.open"] == "アプリで開く"


def test_every_reason_the_code_names_is_in_both_catalogs() -> None:
    """A page's reason is a catalog key (router.web.flows, router.web.guard): a key missing here would fail the
    page that needs it."""
    root = Path(__file__).resolve().parents[2] / "router" / "web"
    named = {key for name in ("flows.py", "guard.py")
             for key in re.findall(r'"(reason\.[a-z_]+)"', (root / name).read_text(encoding="utf-8"))}
    assert len(named) >= 9
    for locale, catalog in load_catalogs(templates_dir() / "messages").items():
        assert named <= set(catalog), (locale, named - set(catalog))
