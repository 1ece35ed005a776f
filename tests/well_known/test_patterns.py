from __future__ import annotations

from functools import cache

import pytest
from hypothesis import given
from hypothesis import strategies as st

from well_known.patterns import compile_glob, referenced_variables


def reference_match(pattern: str, text: str) -> bool:
    """Obviously-correct (exponential without the cache) definition of `*` and `?`."""

    @cache
    def go(i: int, j: int) -> bool:
        if i == len(pattern):
            return j == len(text)
        if pattern[i] == "*":
            return go(i + 1, j) or (j < len(text) and go(i, j + 1))
        if j < len(text) and (pattern[i] == "?" or pattern[i] == text[j]):
            return go(i + 1, j + 1)
        return False

    return go(0, 0)


@pytest.mark.parametrize(
    ("pattern", "text", "expected"),
    [
        ("/buy/*", "/buy/shoes", True),
        ("/buy/*", "/buy/", True),
        ("/buy/*", "/buy", False),  # the reference: `/tap/*` does not match `/tap`
        ("/buy/*", "/xbuy/shoes", False),  # whole-part: no substring match
        ("/buy", "/buy/shoes", False),
        ("????", "1234", True),
        ("????", "123", False),
        ("????", "12345", False),
        ("?*", "", False),
        ("?*", "x", True),
        ("*", "", True),
        ("a*b*c", "aXXbYYc", True),
        ("a*b*c", "aXXbYY", False),
        ("\\*", "\\x", True),  # no escape syntax: the backslash is literal
    ],
)
def test_wildcards(pattern: str, text: str, expected: bool) -> None:
    assert compile_glob(pattern).fullmatch(text) is expected


@given(st.text("ab*?", max_size=12), st.text("ab", max_size=12))
def test_matches_the_reference_definition(pattern: str, text: str) -> None:
    assert compile_glob(pattern).fullmatch(text) is reference_match(pattern, text)


def test_hostile_patterns_stay_fast() -> None:
    # A backtracking translation needs ~len(text)**40 steps here; the NFA needs 81 * 5000.
    pattern = "*a" * 40 + "b"
    assert compile_glob(pattern).fullmatch("a" * 5000) is False
    assert compile_glob(pattern).fullmatch("a" * 5000 + "b") is True


def test_case_insensitive() -> None:
    assert compile_glob("/Help/*", case_sensitive=False).fullmatch("/HELP/x")
    assert not compile_glob("/Help/*").fullmatch("/HELP/x")


def test_custom_substitution_variables_from_the_reference() -> None:
    glob = compile_glob("/$(lang)_$(region)/$(food)/", {"food": ["burrito", "pizza", "sushi", "samosa"]})
    assert glob.fullmatch("/en_US/pizza/")
    assert glob.fullmatch("/ja_JP/sushi/")
    assert not glob.fullmatch("/en_US/taco/")
    assert not glob.fullmatch("/EN_us/pizza/")


def test_variable_values_may_hold_wildcards_but_not_variables() -> None:
    glob = compile_glob("/$(v)", {"v": ["a*", "b?", "$(digit)"]})
    assert glob.fullmatch("/aaaa") and glob.fullmatch("/bx")
    assert glob.fullmatch("/$(digit)") and not glob.fullmatch("/5")


@pytest.mark.parametrize(
    ("name", "good", "bad"),
    [
        ("alpha", "q", "1"),
        ("upper", "Q", "q"),
        ("lower", "q", "Q"),
        ("alnum", "7", "-"),
        ("digit", "7", "x"),
        ("xdigit", "F", "g"),
    ],
)
def test_predefined_classes_match_one_character(name: str, good: str, bad: str) -> None:
    glob = compile_glob(f"/$({name})")
    assert glob.fullmatch("/" + good)
    assert not glob.fullmatch("/" + bad)
    assert not glob.fullmatch("/" + good + good)


def test_case_folding_applies_to_predefined_classes() -> None:
    assert compile_glob("$(upper)", case_sensitive=False).fullmatch("q")


def test_undefined_variables_and_android_patterns_stay_literal() -> None:
    assert compile_glob("/$(nope)").fullmatch("/$(nope)")
    assert compile_glob("/$(digit)", substitution=False).fullmatch("/$(digit)")
    assert not compile_glob("/$(digit)", substitution=False).fullmatch("/1")


def test_referenced_variables() -> None:
    assert referenced_variables("/$(a)/$(b c)/$(x$y)/$(") == ["a", "b c"]
