"""first_difference: where a deployed association file first departs from the expected one."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from well_known.compare import Difference, first_difference

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=4), inner, max_size=4),
    max_leaves=20,
)


def test_equal_documents_have_no_difference_whatever_the_key_order() -> None:
    assert first_difference({"a": [1, {"b": "x"}], "c": None}, {"c": None, "a": [1, {"b": "x"}]}) is None


def test_the_first_difference_by_key_then_index_is_named() -> None:
    deployed = {"applinks": {"details": [{"appIDs": ["T.a"], "components": [{"/": "/old"}]}]}}
    expected = {"applinks": {"details": [{"appIDs": ["T.a"], "components": [{"/": "/new"}]}]}}
    assert first_difference(deployed, expected) == Difference(
        "applinks.details[0].components[0]['/']", '"/old"', '"/new"')


def test_a_missing_key_or_item_shows_nothing_on_its_side() -> None:
    assert first_difference({"a": 1}, {"a": 1, "b": [2]}) == Difference("b", "nothing", "[2]")
    assert first_difference([1, 2, 3], [1, 2]) == Difference("$[2]", "3", "nothing")
    assert str(first_difference([1], [1, 2])) == "at $[1]: deployed nothing, this config 2"


def test_a_reordered_list_and_a_changed_type_are_differences() -> None:
    assert first_difference(["/a", "/b"], ["/b", "/a"]) == Difference("$[0]", '"/a"', '"/b"')
    assert first_difference({"n": 1}, {"n": True}) == Difference("n", "1", "true")
    assert first_difference({"n": 1}, {"n": 1.0}) == Difference("n", "1", "1.0")


def test_long_values_are_cut_short() -> None:
    found = first_difference({"x": "a" * 200}, {"x": "b"})
    assert found is not None and len(found.deployed) == 60 and found.deployed.endswith("…")


@given(JSON)
def test_a_document_never_differs_from_itself(document: Any) -> None:
    assert first_difference(document, document) is None


@given(JSON, JSON)
def test_a_difference_is_found_exactly_when_the_documents_differ(a: Any, b: Any) -> None:
    same = json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)  # tells 1 from true, as == does not
    assert (first_difference(a, b) is None) == same
