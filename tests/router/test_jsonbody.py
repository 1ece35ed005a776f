"""The JSON body rules: media type parsed, nesting measured before parsing."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from router.web.jsonbody import MAX_DEPTH, DuplicateKey, is_json, loads, nesting_depth


@pytest.mark.parametrize(("header", "expected"), [
    ("application/json", True), ("APPLICATION/JSON", True), ("application/json; charset=utf-8", True),
    ("text/plain; application/json", False), ("application/jsonp", False), (None, False), ("", False),
])
def test_media_type_is_parsed(header: str | None, expected: bool) -> None:
    assert is_json(header) is expected


def test_brackets_inside_strings_do_not_count() -> None:
    assert nesting_depth(b'{"a": "[[[[{{{{", "b": "\\"[[["}') == 1
    assert nesting_depth(b"[" * 2000 + b"]" * 2000) == MAX_DEPTH + 1  # counting stops past the limit


json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=5),
                           lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner,
                                                                                      max_size=3), max_leaves=20)


def depth(value: object) -> int:
    if isinstance(value, list):
        return 1 + max((depth(v) for v in value), default=0)
    if isinstance(value, dict):
        return 1 + max((depth(v) for v in value.values()), default=0)
    return 0


@given(json_values)
def test_depth_matches_the_parsed_value(value: object) -> None:
    assert nesting_depth(json.dumps(value).encode()) == depth(value)


@given(json_values)
def test_loads_reads_any_body_without_repeated_keys(value: object) -> None:
    assert loads(json.dumps(value).encode()) == value


@pytest.mark.parametrize(("raw", "key"), [
    (b'{"a": 1, "a": 1}', "a"), (b'{"a": {"b": [{"c": 1, "d": 2, "c": 3}]}}', "c"), (b'[{}, {"x": 0, "x": 0}]', "x"),
])
def test_loads_refuses_a_key_twice_in_one_object(raw: bytes, key: str) -> None:
    with pytest.raises(DuplicateKey) as info:
        loads(raw)
    assert info.value.key == key
    assert loads(b'{"a": {"a": 1}, "b": {"a": 2}}') == {"a": {"a": 1}, "b": {"a": 2}}  # once per object is fine


def test_a_huge_integer_is_read_as_a_decimal() -> None:
    """int() refuses more than 4,300 digits: json.loads raised ValueError, reported as invalid JSON."""
    huge = "1" + "0" * 5000
    assert loads(f'{{"a": {huge}, "b": -{huge}, "c": 12}}'.encode()) == {"a": Decimal(huge), "b": -Decimal(huge),
                                                                          "c": 12}
    assert type(loads(b"12")) is int
