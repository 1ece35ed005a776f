"""Bad input gets problems or a ValueError, never a crash; the library stays standalone."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from well_known import aasa_match, android_dynamic_match, validate_aasa, validate_assetlinks
from well_known.problems import Problem

KEYS = ["applinks", "details", "appIDs", "appID", "components", "paths", "apps", "defaults", "/", "?", "#"]
KEYS += ["exclude", "caseSensitive", "percentEncoded", "substitutionVariables", "relation", "target"]
KEYS += ["namespace", "package_name", "sha256_cert_fingerprints", "relation_extensions", "include"]
KEYS += ["delegate_permission/common.handle_all_urls", "dynamic_app_link_components", "x"]

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False),
    st.text(max_size=8),
    st.sampled_from(["*", "/*", "?*", "$(lang)", "$(", "NOT /a", "ABCDE12345.com.x", "android_app"]),
)
json_values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.one_of(st.sampled_from(KEYS), st.text(max_size=4)), inner, max_size=5),
    ),
    max_leaves=30,
)
urls = st.one_of(
    st.text(max_size=30),
    st.builds(
        lambda p, q, f: f"https://h{p}?{q}#{f}",
        st.text(max_size=10),
        st.text(max_size=10),
        st.text(max_size=5),
    ),
)


def well_formed(problems: list[Problem]) -> bool:
    return all(p.severity in ("error", "warning") and p.where and p.message for p in problems)


@given(json_values)
def test_validators_never_crash_on_any_json(value: Any) -> None:
    assert well_formed(validate_aasa(value))
    assert well_formed(validate_assetlinks(value))


@given(st.binary(max_size=200))
def test_validators_never_crash_on_any_bytes(raw: bytes) -> None:
    assert well_formed(validate_aasa(raw))
    assert well_formed(validate_assetlinks(raw))


@given(json_values, urls, st.one_of(st.none(), st.sampled_from(["ABCDE12345.com.x", "x"])))
def test_apple_matcher_never_crashes(doc: Any, url: str, app_id: str | None) -> None:
    try:
        aasa_match(doc, url, app_id)
    except ValueError:
        pass  # not an object, or a URL urllib cannot split: a clear refusal


@given(json_values, urls)
def test_android_matcher_never_crashes(rules: Any, url: str) -> None:
    try:
        android_dynamic_match(rules, url)
    except ValueError:
        pass


def test_importing_the_library_pulls_in_neither_starlette_nor_the_router() -> None:
    code = (
        "import sys, well_known\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('starlette', 'router'))\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_python_values_are_validated_as_they_would_be_served() -> None:
    doc = {
        "applinks": {
            "substitutionVariables": {1: ("a",)},
            "details": ({"appIDs": ("ABCDE12345.a",), "components": ()},),
        }
    }
    problems = validate_aasa(doc)  # type: ignore[arg-type]
    assert [p.message for p in problems] == ["empty: this detail claims no URLs"]
