from __future__ import annotations

from typing import Any

import pytest

from well_known import aasa_match, aasa_opens

APP = "ABCDE12345.com.example.app"


def doc_with(*components: dict[str, Any], **applinks: Any) -> dict[str, Any]:
    return {"applinks": {**applinks, "details": [{"appIDs": [APP], "components": list(components)}]}}


# §1.4: Apple's example document.
@pytest.mark.parametrize(
    ("url", "index", "exclude"),
    [
        ("https://www.example.com/buy/shoes", 1, False),
        ("https://www.example.com/buy/shoes?size=9#top", 1, False),
        ("https://www.example.com/buy/shoes#no_universal_links", 0, True),
        ("https://www.example.com/help/website/contact", 2, True),
        ("https://www.example.com/help/faq?articleNumber=1234", 3, False),
        ("https://www.example.com/help/faq?x=1&articleNumber=abcd", 3, False),
    ],
)
def test_apple_example_decisions(apple_example: dict[str, Any], url: str, index: int, exclude: bool) -> None:
    match = aasa_match(apple_example, url)
    assert match is not None
    assert (match.detail_index, match.index, match.exclude, match.legacy) == (0, index, exclude, False)
    assert aasa_opens(apple_example, url) is (not exclude)


@pytest.mark.parametrize(
    "url",
    [
        "https://www.example.com/buy",  # /buy/* needs the slash
        "https://www.example.com/help/faq?articleNumber=12345",
        "https://www.example.com/help/faq?articleNumber=123",
        "https://www.example.com/help/faq",
        "https://www.example.com/shop/buy/shoes",
        "https://www.example.com/",
    ],
)
def test_apple_example_unclaimed(apple_example: dict[str, Any], url: str) -> None:
    assert aasa_match(apple_example, url) is None
    assert not aasa_opens(apple_example, url)


def test_app_id_selects_details(apple_example: dict[str, Any]) -> None:
    url = "https://www.example.com/buy/x"
    assert aasa_opens(apple_example, url, "ABCDE12345.com.example.app2")
    assert aasa_match(apple_example, url, "ZZZZZ12345.com.other") is None
    assert aasa_match(apple_example, url, APP) is not None


def test_all_specified_parts_must_match() -> None:
    # §1.6: Apple's own example, written without a leading slash.
    doc = doc_with({"/": "abc", "?": "def", "#": "*"})
    assert aasa_opens(doc, "https://www.example.com/abc?def")
    assert not aasa_opens(doc, "https://www.example.com/abc")
    assert not aasa_opens(doc, "https://www.example.com?def")


def test_first_match_wins_so_exclusions_go_first() -> None:
    exclude = {"/": "/private/*", "exclude": True}
    catch_all = {"/": "/*"}
    assert not aasa_opens(doc_with(exclude, catch_all), "https://h/private/x")
    assert aasa_opens(doc_with(catch_all, exclude), "https://h/private/x")
    assert aasa_opens(doc_with(exclude, catch_all), "https://h/public")


def test_query_string_pattern_matches_the_whole_query() -> None:
    doc = doc_with({"/": "/s", "?": "q=*"})
    assert aasa_opens(doc, "https://h/s?q=shoes")
    assert not aasa_opens(doc, "https://h/s?page=2&q=shoes")
    assert not aasa_opens(doc, "https://h/s")


def test_query_dictionary_constrains_only_named_items() -> None:
    doc = doc_with({"/": "/s", "?": {"q": "?*", "lang": "en"}})
    assert aasa_opens(doc, "https://h/s?page=2&lang=en&q=shoes")
    assert not aasa_opens(doc, "https://h/s?q=shoes&lang=ja")
    assert not aasa_opens(doc, "https://h/s?lang=en")  # missing q reads as empty: ?* fails
    assert not aasa_opens(doc, "https://h/s?lang=en&q=")


def test_missing_query_item_reads_as_empty() -> None:
    assert aasa_opens(doc_with({"?": {"b": "*"}}), "https://h/x")
    assert not aasa_opens(doc_with({"?": {"b": "?*"}}), "https://h/x")


def test_every_occurrence_of_a_repeated_item_must_match() -> None:
    doc = doc_with({"?": {"id": "42"}})
    assert not aasa_opens(doc, "https://h/x?id=7&id=42")
    assert aasa_opens(doc, "https://h/x?id=42&id=42")


def test_non_string_query_value_discards_the_dictionary() -> None:
    assert aasa_opens(doc_with({"/": "/x", "?": {"a": "1", "flag": True}}), "https://h/x?a=2")


def test_fragment_and_absent_parts() -> None:
    doc = doc_with({"#": "tab=?*"})
    assert aasa_opens(doc, "https://h/any?x#tab=1")
    assert not aasa_opens(doc, "https://h/any")
    assert aasa_opens(doc_with({"#": "*"}), "https://h/any")  # absent reads as empty
    assert aasa_opens(doc_with({}), "https://h/")


def test_slashes_at_the_ends_of_paths_are_insignificant() -> None:
    assert aasa_opens(doc_with({"/": "/buy"}), "https://h/buy/")
    assert aasa_opens(doc_with({"/": "/buy/"}), "https://h/buy")
    assert aasa_opens(doc_with({"/": "/"}), "https://h")
    assert not aasa_opens(doc_with({"/": "/id/????"}), "https://h/id/481/")


@pytest.mark.parametrize(("pattern", "url", "opens"), [
    ("/buy/*", "https://h/buy/", True),  # "*" matches zero characters: "path starts with /buy/"
    ("/buy/*", "https://h/buy", False),
    ("/*/*", "https://h/b/", True),
    ("buy/*", "https://h/buy/", True),
    ("/buy/*", "https://h/buy/shoes/", True),
])
def test_a_star_at_the_end_matches_an_empty_rest_after_the_slash(pattern: str, url: str, opens: bool) -> None:
    assert aasa_opens(doc_with({"/": pattern}), url) is opens
    assert aasa_opens({"applinks": {"apps": [], "details": [{"appID": APP, "paths": [pattern]}]}}, url) is opens


def test_case_sensitivity_and_defaults_hierarchy() -> None:
    url = "https://h/HELP/x"
    assert not aasa_opens(doc_with({"/": "/help/*"}), url)
    assert aasa_opens(doc_with({"/": "/help/*", "caseSensitive": False}), url)
    assert aasa_opens(doc_with({"/": "/help/*"}, defaults={"caseSensitive": False}), url)
    # component beats the domain-level default
    assert not aasa_opens(
        doc_with({"/": "/help/*", "caseSensitive": True}, defaults={"caseSensitive": False}), url
    )
    # app-level (details) default beats the domain-level one
    doc = {
        "applinks": {
            "defaults": {"caseSensitive": True},
            "details": [
                {"appIDs": [APP], "defaults": {"caseSensitive": False}, "components": [{"/": "/help/*"}]}
            ],
        }
    }
    assert aasa_opens(doc, url)


def test_case_insensitive_query_names() -> None:
    doc = doc_with({"?": {"Ref": "?*"}, "caseSensitive": False})
    assert aasa_opens(doc, "https://h/x?REF=1")


def test_percent_encoded_flag() -> None:
    url = "https://h/caf%C3%A9?q=a%20b"
    assert aasa_opens(doc_with({"/": "/caf%C3%A9"}), url)
    assert not aasa_opens(doc_with({"/": "/café"}), url)
    assert aasa_opens(doc_with({"/": "/café", "percentEncoded": False}), url)
    assert aasa_opens(doc_with({"/": "*", "?": {"q": "a b"}}, defaults={"percentEncoded": False}), url)
    # the pattern itself is never decoded
    assert not aasa_opens(doc_with({"/": "/caf%C3%A9", "percentEncoded": False}), url)


def test_substitution_variables() -> None:
    doc = doc_with(
        {"/": "/$(lang)_$(region)/$(food)/"},
        substitutionVariables={"food": ["burrito", "pizza", "sushi", "samosa"]},
    )
    assert aasa_opens(doc, "https://h/en_US/pizza/")
    assert not aasa_opens(doc, "https://h/en_US/pasta/")
    assert aasa_opens(doc_with({"/": "/order/$(digit)$(digit)"}), "https://h/order/42")


# §1.5: legacy paths with NOT.
@pytest.mark.parametrize(
    ("url", "opens", "index"),
    [
        ("https://h/wwdc/news/", True, 0),
        ("https://h/wwdc/news/?tab=1#x", True, 0),  # only the path is compared
        ("https://h/videos/wwdc/2010/keynote", False, 1),
        ("https://h/videos/wwdc/2011/keynote", True, 2),
        ("https://h/videos/wwdc/2020/keynote", None, None),
        ("https://h/WWDC/news/", None, None),  # case-sensitive
    ],
)
def test_legacy_not_example(
    legacy_example: dict[str, Any], url: str, opens: bool | None, index: int | None
) -> None:
    match = aasa_match(legacy_example, url)
    if opens is None:
        assert match is None
        return
    assert match is not None and match.legacy and match.index == index
    assert match.opens is opens
    assert match.app_ids == (APP,)


def test_any_app_that_opens_wins_over_another_apps_exclusion() -> None:
    other = "ZZZZZ12345.com.example.other"
    doc = {
        "applinks": {
            "details": [
                {"appIDs": [APP], "components": [{"/": "/x", "exclude": True}]},
                {"appIDs": [other], "components": [{"/": "/x"}]},
            ]
        }
    }
    assert aasa_opens(doc, "https://h/x")
    assert not aasa_opens(doc, "https://h/x", APP)
    assert aasa_opens(doc, "https://h/x", other)
    only_exclusion = {"applinks": {"details": doc["applinks"]["details"][:1]}}
    match = aasa_match(only_exclusion, "https://h/x")
    assert match is not None and match.exclude


def test_oldest_dictionary_details_form() -> None:
    doc = {"applinks": {"apps": [], "details": {APP: {"paths": ["/a/*"]}}}}
    assert aasa_opens(doc, "https://h/a/b", APP)


def test_malformed_entries_never_match_and_never_crash() -> None:
    doc = doc_with(
        "junk",  # type: ignore[arg-type]
        {"/": 5},
        {"/": "/x", "?": ["a"]},
        {"/": "/x", "#": None},
        {"/": "/ok"},
    )
    assert not aasa_opens(doc, "https://h/x?a")
    assert aasa_opens(doc, "https://h/ok")
    assert aasa_match({"applinks": "nope"}, "https://h/x") is None
    assert aasa_match({"applinks": {"details": 3}}, "https://h/x") is None


def test_bad_arguments_raise_value_error() -> None:
    with pytest.raises(ValueError, match="JSON object"):
        aasa_match(["not", "a", "dict"], "https://h/")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="URL must be a string"):
        aasa_match({}, None)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="malformed URL"):
        aasa_match({}, "https://[::1/x")
