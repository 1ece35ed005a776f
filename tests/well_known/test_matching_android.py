from __future__ import annotations

from typing import Any

import pytest

from well_known import android_dynamic_match

from .conftest import ANDROID_COMPONENTS


# §2.4 example: in order, first match wins, no match ⇒ excluded.
@pytest.mark.parametrize(
    ("url", "opens"),
    [
        ("https://h/anything?dl=x", True),
        ("https://h/anything?other=1&dl=", True),  # "*" accepts an empty value when present
        ("https://h/page#app", True),
        ("https://h/products/42", True),
        ("https://h/products", False),
        ("https://h/shoes?in_app=true", True),
        ("https://h/shoes?utm=1&in_app=true", True),  # extra parameters are allowed
        ("https://h/shoes?in_app=false", False),
        ("https://h/shoes", False),
        ("https://h/other", False),  # the trailing {"/": "*", "exclude": true}
    ],
)
def test_reference_example(url: str, opens: bool) -> None:
    assert android_dynamic_match(ANDROID_COMPONENTS, url) is opens


def test_no_match_means_excluded() -> None:
    assert android_dynamic_match([{"/": "/a"}], "https://h/a")
    assert not android_dynamic_match([{"/": "/a"}], "https://h/b")


def test_exclusion_list_needs_a_trailing_catch_all() -> None:
    rules: list[dict[str, Any]] = [{"/": "/private/*", "exclude": True}]
    assert not android_dynamic_match(rules, "https://h/public")
    rules.append({"/": "*"})
    assert android_dynamic_match(rules, "https://h/public")
    assert not android_dynamic_match(rules, "https://h/private/x")


def test_query_item_must_be_present_and_is_decoded() -> None:
    rules = [{"/": "/r", "?": {"id": "?*"}}]
    assert android_dynamic_match(rules, "https://h/r?id=a%20b")
    assert android_dynamic_match(rules, "https://h/r?id=+")  # '+' decodes to a space
    assert not android_dynamic_match(rules, "https://h/r?id=")
    assert not android_dynamic_match(rules, "https://h/r")
    assert not android_dynamic_match(rules, "https://h/r?ID=1")  # case-sensitive


def test_trailing_slash_is_significant_on_android() -> None:
    assert not android_dynamic_match([{"/": "/r"}], "https://h/r/")


@pytest.mark.parametrize(
    "rules",
    [
        [],
        [{}],
        [{"/": ""}],
        [{"?": "dl=1"}],
        [{"?": {}}],
        [{"/": "/a", "comment": "x"}],
        [{"/": "/a", "exclude": "yes"}],
        "not a list",
    ],
)
def test_malformed_rules_raise(rules: Any) -> None:
    with pytest.raises(ValueError, match="Android ignores them"):
        android_dynamic_match(rules, "https://h/a")
