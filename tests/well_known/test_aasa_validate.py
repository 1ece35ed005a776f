"""Each rule of the reference checklist (§1, §6 rules 5-7): one failing and one passing document."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from well_known import Problem, validate_aasa
from well_known.problems import errors

APP = "ABCDE12345.com.example.app"
GOOD: dict[str, Any] = {"applinks": {"details": [{"appIDs": [APP], "components": [{"/": "/buy/*"}]}]}}


def good() -> dict[str, Any]:
    return copy.deepcopy(GOOD)


def only(problems: list[Problem], severity: str, where: str, text: str) -> None:
    """Exactly one problem, with this severity, location and message fragment."""
    assert len(problems) == 1, problems
    assert (problems[0].severity, problems[0].where) == (severity, where), problems
    assert text in problems[0].message


def test_reference_examples_are_clean(apple_example: dict[str, Any], legacy_example: dict[str, Any]) -> None:
    assert validate_aasa(apple_example) == []
    assert validate_aasa(json.dumps(apple_example, indent=2)) == []
    assert validate_aasa(legacy_example) == []
    assert validate_aasa(good()) == []


# JSON strictness
def test_bom() -> None:
    raw = json.dumps(GOOD).encode()
    only(validate_aasa(b"\xef\xbb\xbf" + raw), "error", "$", "byte order mark")
    assert validate_aasa(raw) == []
    only(validate_aasa("\ufeff" + json.dumps(GOOD)), "error", "$", "byte order mark")


@pytest.mark.parametrize(
    ("raw", "text"),
    [
        (b'{"applinks": {"details": []}} // comment', "invalid JSON at line 1"),
        (b'{"applinks": {"details": []}}\x00', "invalid JSON"),
        (b"{'applinks': {}}", "invalid JSON"),
        (b'{"applinks": {"details": [NaN]}}', "NaN is not valid JSON"),
        (b'{"applinks": "\xff"}', "not valid UTF-8 at byte 14"),
        (b"[" * 5000 + b"]" * 5000, "nested too deeply"),
    ],
)
def test_not_strict_json(raw: bytes, text: str) -> None:
    only(validate_aasa(raw), "error", "$", text)


def test_duplicate_keys_warn() -> None:
    raw = b'{"applinks": {"details": []}, "applinks": {"details": []}}'
    only(validate_aasa(raw), "warning", "$", "duplicate key 'applinks'")


def test_unserialisable_mapping() -> None:
    only(validate_aasa({"applinks": {1.5j: 1}}), "error", "$", "not serialisable")  # type: ignore[dict-item]


# size
def test_size_limits() -> None:
    def padded(size: int) -> bytes:
        doc = good()
        doc["applinks"]["details"][0]["components"][0]["comment"] = ""
        base = len(json.dumps(doc, separators=(",", ":")))
        doc["applinks"]["details"][0]["components"][0]["comment"] = "x" * (size - base)
        raw = json.dumps(doc, separators=(",", ":")).encode()
        assert len(raw) == size
        return raw

    assert validate_aasa(padded(100 * 1024)) == []
    only(validate_aasa(padded(100 * 1024 + 1)), "warning", "$", "close to Apple's 128 KB limit")
    only(validate_aasa(padded(128 * 1024)), "warning", "$", "128 KB")
    only(validate_aasa(padded(128 * 1024 + 1)), "error", "$", "rejects files over 128 KB")


# top level
def test_top_level_shape() -> None:
    only(validate_aasa([GOOD]), "error", "$", "must be a JSON object, not an array")
    doc = good() | {"appLinks": {}}
    only(validate_aasa(doc), "warning", "appLinks", "unknown top-level key")
    only(validate_aasa({"webcredentials": {"apps": [APP]}}), "warning", "$", "no applinks")


def test_applinks_shape() -> None:
    only(validate_aasa({"applinks": []}), "error", "applinks", "must be an object")
    only(validate_aasa({"applinks": {}}), "error", "applinks", "missing 'details'")
    only(validate_aasa({"applinks": {"details": "x"}}), "error", "applinks.details", "must be an array")
    dict_form: dict[str, Any] = {"applinks": {"details": {APP: {"paths": ["*"]}}}}
    only(validate_aasa(dict_form), "warning", "applinks.details", "oldest form")
    dict_form["applinks"]["details"] = {"nope": {"paths": [1]}}
    problems = errors(validate_aasa(dict_form))
    assert [p.where for p in problems] == ["applinks.details.nope", "applinks.details.nope.paths[0]"]
    doc = good()
    doc["applinks"]["detail"] = []
    only(validate_aasa(doc), "warning", "applinks.detail", "unknown key")


# details
@pytest.mark.parametrize(
    ("detail", "text"),
    [
        ({"components": []}, "missing 'appIDs'"),
        ({"appIDs": [APP]}, "missing 'components'"),
        ({"appIDs": [APP], "components": [], "paths": []}, "mixes 'components' and 'paths'"),
        ({"appIDs": [APP], "appID": APP, "components": []}, "mixes 'appIDs' and 'appID'"),
        ({"appIDs": [APP], "paths": ["*"]}, "mixes 'appIDs' and 'paths'"),
        ({"appID": APP, "components": [{"/": "*"}]}, "mixes 'appID' and 'components'"),
    ],
)
def test_detail_shape(detail: dict[str, Any], text: str) -> None:
    doc = {"applinks": {"details": [detail]}}
    problems = errors(validate_aasa(doc))
    assert any(p.where == "applinks.details[0]" and text in p.message for p in problems), problems


def test_detail_must_be_object() -> None:
    only(validate_aasa({"applinks": {"details": [3]}}), "error", "applinks.details[0]", "must be an object")


@pytest.mark.parametrize(
    ("app_id", "ok"),
    [
        (APP, True),
        ("ABCDE12345.com.example.*", True),
        ("abcde12345.com.example-app", True),
        ("ABCDE1234.com.example.app", False),
        ("ABCDE123456.com.example.app", False),
        ("ABCDE12345.", False),
        ("ABCDE12345.com/example", False),
        ("com.example.app", False),
        (42, False),
    ],
)
def test_app_id_regex(app_id: Any, ok: bool) -> None:
    modern = validate_aasa({"applinks": {"details": [{"appIDs": [app_id], "components": []}]}})
    modern = [p for p in modern if "empty" not in p.message]
    legacy = validate_aasa({"applinks": {"apps": [], "details": [{"appID": app_id, "paths": ["*"]}]}})
    if ok:
        assert modern == [] and legacy == []
    else:
        only(modern, "error", "applinks.details[0].appIDs[0]", "is not TEAMID.bundle.id")
        only(legacy, "error", "applinks.details[0].appID", "is not TEAMID.bundle.id")


def test_app_id_list_shape() -> None:
    doc = {"applinks": {"details": [{"appIDs": APP, "components": []}]}}
    assert any("must be an array of app IDs" in p.message for p in validate_aasa(doc))
    doc = {"applinks": {"details": [{"appIDs": [APP, APP], "components": [{"/": "*"}]}]}}
    only(validate_aasa(doc), "warning", "applinks.details[0].appIDs[1]", "duplicate")


# legacy "apps"
def test_legacy_apps_key(legacy_example: dict[str, Any]) -> None:
    assert validate_aasa(legacy_example) == []
    legacy_example["applinks"]["apps"] = [APP]
    only(validate_aasa(legacy_example), "error", "applinks.apps", "must be an empty array")
    del legacy_example["applinks"]["apps"]
    only(validate_aasa(legacy_example), "warning", "applinks", 'need "apps": []')
    doc = good()
    doc["applinks"]["apps"] = []
    only(validate_aasa(doc), "warning", "applinks.apps", "only the legacy")


def test_legacy_paths() -> None:
    def with_paths(paths: Any) -> dict[str, Any]:
        return {"applinks": {"apps": [], "details": [{"appID": APP, "paths": paths}]}}

    assert validate_aasa(with_paths(["/a", "NOT /b/*", "*"])) == []
    only(validate_aasa(with_paths("/a")), "error", "applinks.details[0].paths", "must be an array")
    only(validate_aasa(with_paths(["/a", 3])), "error", "applinks.details[0].paths[1]", "must be a string")
    only(validate_aasa(with_paths(["NOT/a"])), "warning", "applinks.details[0].paths[0]", "'NOT '")
    only(validate_aasa(with_paths(["*", "NOT /b"])), "warning", "applinks.details[0].paths[1]", "unreachable")


# components
@pytest.mark.parametrize(
    ("component", "where", "text"),
    [
        ({"path": "/a"}, "applinks.details[0].components[0].path", "unknown component key 'path'"),
        ({"/": 5}, "applinks.details[0].components[0]['/']", "must be a string"),
        ({"#": ["x"]}, "applinks.details[0].components[0]['#']", "must be a string"),
        ({"comment": 1}, "applinks.details[0].components[0].comment", "must be a string"),
        ({"exclude": "true"}, "applinks.details[0].components[0].exclude", "must be true or false"),
        ({"caseSensitive": 0}, "applinks.details[0].components[0].caseSensitive", "must be true or false"),
        ({"percentEncoded": None}, "applinks.details[0].components[0].percentEncoded", "true or false"),
        ({"?": ["a"]}, "applinks.details[0].components[0]['?']", "must be a string or an object"),
        ({"?": {"a": 1}}, "applinks.details[0].components[0]['?'].a", "query item pattern must be a string"),
    ],
)
def test_component_keys_and_types(component: dict[str, Any], where: str, text: str) -> None:
    doc = {"applinks": {"details": [{"appIDs": [APP], "components": [component]}]}}
    only(validate_aasa(doc), "error", where, text)


def test_component_must_be_an_object_and_list_must_be_a_list() -> None:
    doc = {"applinks": {"details": [{"appIDs": [APP], "components": ["/a"]}]}}
    only(validate_aasa(doc), "error", "applinks.details[0].components[0]", "must be an object")
    doc = {"applinks": {"details": [{"appIDs": [APP], "components": {"/": "/a"}}]}}
    only(validate_aasa(doc), "error", "applinks.details[0].components", "must be an array")


def test_all_valid_component_keys_pass() -> None:
    component = {
        "/": "/a/*",
        "?": {"x": "?*"},
        "#": "*",
        "exclude": False,
        "comment": "c",
        "caseSensitive": False,
        "percentEncoded": True,
    }
    doc = {"applinks": {"details": [{"appIDs": [APP], "components": [component, {"?": "q=1"}]}]}}
    assert validate_aasa(doc) == []


def test_where_path_matches_the_documented_style() -> None:
    doc = {"applinks": {"details": [{"appIDs": [APP], "components": [{}, {}, {"?": 3}]}]}}
    problems = errors(validate_aasa(doc))
    assert [p.where for p in problems] == ["applinks.details[0].components[2]['?']"]


# defaults
@pytest.mark.parametrize("level", ["applinks", "detail"])
def test_defaults(level: str) -> None:
    def with_defaults(defaults: Any) -> dict[str, Any]:
        doc = good()
        target = doc["applinks"] if level == "applinks" else doc["applinks"]["details"][0]
        target["defaults"] = defaults
        return doc

    base = "applinks.defaults" if level == "applinks" else "applinks.details[0].defaults"
    assert validate_aasa(with_defaults({"caseSensitive": False, "percentEncoded": True})) == []
    only(validate_aasa(with_defaults({"exclude": True})), "error", f"{base}.exclude", "unknown key")
    only(
        validate_aasa(with_defaults({"caseSensitive": "no"})),
        "error",
        f"{base}.caseSensitive",
        "true or false",
    )
    only(validate_aasa(with_defaults([])), "error", base, "must be an object")


# substitution variables
def test_substitution_variables() -> None:
    def with_vars(variables: Any, path: str = "/$(food)/") -> dict[str, Any]:
        doc = good()
        doc["applinks"]["substitutionVariables"] = variables
        doc["applinks"]["details"][0]["components"] = [{"/": path}]
        return doc

    base = "applinks.substitutionVariables"
    assert validate_aasa(with_vars({"food": ["pizza", "sus*"]})) == []
    assert validate_aasa(with_vars({"food": ["pizza"]}, "/$(lang)_$(region)/$(food)")) == []
    only(validate_aasa(with_vars({"fo$od": ["a"]}, "/")), "error", f"{base}['fo$od']", "without $ ( )")
    only(validate_aasa(with_vars({"f(x)": ["a"]}, "/")), "error", f"{base}['f(x)']", "without $ ( )")
    only(validate_aasa(with_vars({"food": "pizza"})), "error", f"{base}.food", "array of strings")
    only(validate_aasa(with_vars({"food": ["$(digit)"]})), "error", f"{base}.food[0]", "other variables")
    only(validate_aasa(with_vars({"lang": ["xx"]}, "/$(lang)")), "warning", f"{base}.lang", "shadows")
    only(validate_aasa(with_vars([], "/")), "error", base, "must be an object")
    only(
        validate_aasa(with_vars({}, "/$(drink)")),
        "warning",
        "applinks.details[0].components[0]['/']",
        "$(drink) is not defined",
    )


# exclusions after a catch-all
@pytest.mark.parametrize("catch_all", [{"/": "/*"}, {"/": "*"}, {}, {"/": "*", "#": "*", "comment": "all"}])
def test_exclude_after_catch_all_warns(catch_all: dict[str, Any]) -> None:
    exclusion = {"/": "/private/*", "exclude": True}
    doc = {"applinks": {"details": [{"appIDs": [APP], "components": [catch_all, exclusion]}]}}
    only(validate_aasa(doc), "warning", "applinks.details[0].components[1]", "exclusion is unreachable")
    doc["applinks"]["details"][0]["components"] = [exclusion, catch_all]
    assert validate_aasa(doc) == []


def test_narrow_components_are_not_catch_alls() -> None:
    for narrow in ({"/": "/a/*"}, {"/": "*", "?": {"x": "*"}}, {"#": "x"}, {"?": "a"}):
        doc = {"applinks": {"details": [{"appIDs": [APP], "components": [narrow, {"/": "/b"}]}]}}
        assert validate_aasa(doc) == [], narrow


# other services
def test_services() -> None:
    doc = good() | {"webcredentials": {"apps": [APP]}, "appclips": {"apps": [APP + ".Clip"]}}
    assert validate_aasa(doc) == []
    only(validate_aasa(good() | {"webcredentials": {}}), "error", "webcredentials", "missing 'apps'")
    only(validate_aasa(good() | {"appclips": []}), "error", "appclips", "must be an object")
    only(validate_aasa(good() | {"appclips": {"apps": ["x"]}}), "error", "appclips.apps[0]", "TEAMID")
    only(
        validate_aasa(good() | {"webcredentials": {"apps": [APP], "details": []}}),
        "warning",
        "webcredentials.details",
        "unknown key",
    )
