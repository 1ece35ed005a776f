from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from well_known import (
    PathClaim,
    android_dynamic_match,
    build_assetlinks,
    dumps,
    normalize_fingerprint,
    validate_assetlinks,
)
from well_known.problems import Problem, errors

from .conftest import FINGERPRINT

RELATION = "delegate_permission/common.handle_all_urls"
LOWER = FINGERPRINT.lower()
OTHER = ":".join(["AB"] * 32)


def only(problems: list[Problem], severity: str, where: str, text: str) -> None:
    assert len(problems) == 1, problems
    assert (problems[0].severity, problems[0].where) == (severity, where), problems
    assert text in problems[0].message


# fingerprints
@pytest.mark.parametrize(
    "value",
    [
        FINGERPRINT,
        LOWER,
        f"  {LOWER}\n",
        FINGERPRINT.replace(":", ""),
        f"SHA256: {FINGERPRINT}",
        f"sha-256:{LOWER}",
    ],
)
def test_normalize_fingerprint_accepts_common_spellings(value: str) -> None:
    assert normalize_fingerprint(value) == FINGERPRINT


@pytest.mark.parametrize(
    "value",
    [
        FINGERPRINT[:-3],  # 31 bytes
        FINGERPRINT + ":00",  # 33 bytes
        FINGERPRINT.replace("14", "1G"),
        FINGERPRINT.replace(":", "-"),
        FINGERPRINT.replace(":", "")[:-1],
        "SHA1: " + ":".join(["AB"] * 20),
        "",
    ],
)
def test_normalize_fingerprint_refuses_others_clearly(value: str) -> None:
    with pytest.raises(ValueError, match="expected 32 colon-separated hex bytes"):
        normalize_fingerprint(value)


def test_normalize_fingerprint_truncates_huge_input_in_the_message() -> None:
    with pytest.raises(ValueError) as info:
        normalize_fingerprint("x" * 10000)
    assert len(str(info.value)) < 400


# build
def test_build_without_claims_is_the_play_console_statement() -> None:
    assert build_assetlinks("com.example", [LOWER]) == [
        {
            "relation": [RELATION],
            "target": {
                "namespace": "android_app",
                "package_name": "com.example",
                "sha256_cert_fingerprints": [FINGERPRINT],
            },
        }
    ]


def test_build_with_claims_adds_dynamic_rules_claiming_exactly_them() -> None:
    claims = [PathClaim("/r", ("amazonCheckoutSessionId",)), PathClaim("/c")]
    statements = build_assetlinks("com.example.shop", [FINGERPRINT, OTHER, LOWER], claims)
    statement = statements[0]
    assert statement["target"]["sha256_cert_fingerprints"] == [FINGERPRINT, OTHER]
    components = statement["relation_extensions"][RELATION]["dynamic_app_link_components"]
    assert components == [{"/": "/c"}, {"/": "/r", "?": {"amazonCheckoutSessionId": "?*"}}]
    assert android_dynamic_match(components, "https://h/r?amazonCheckoutSessionId=x&ref=1")
    assert android_dynamic_match(components, "https://h/c?anything#frag")
    assert not android_dynamic_match(components, "https://h/r")
    assert not android_dynamic_match(components, "https://h/other")
    assert validate_assetlinks(dumps(statements)) == []
    assert (
        "relation_extensions" not in build_assetlinks("com.example", [OTHER], claims, dynamic_rules=False)[0]
    )


@pytest.mark.parametrize(
    ("package", "prints", "message"),
    [
        ("example", [FINGERPRINT], "not an Android application id"),
        ("com.1example", [FINGERPRINT], "not an Android application id"),
        ("com.example", [], "at least one"),
        ("com.example", FINGERPRINT, "not a single string"),
        ("com.example", ["nope"], "not a SHA-256"),
    ],
)
def test_build_refuses_bad_input(package: str, prints: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build_assetlinks(package, prints)


# validate
def test_reference_examples_are_clean(android_example: list[dict[str, Any]]) -> None:
    assert validate_assetlinks(android_example) == []
    assert validate_assetlinks(json.dumps(android_example, indent=2).encode()) == []
    del android_example[0]["relation_extensions"]
    assert validate_assetlinks(android_example) == []


def test_json_strictness() -> None:
    raw = json.dumps(build_assetlinks("com.example", [FINGERPRINT])).encode()
    only(validate_assetlinks(b"\xef\xbb\xbf" + raw), "error", "$", "byte order mark")
    only(validate_assetlinks(raw + b","), "error", "$", "invalid JSON")
    only(validate_assetlinks({"relation": []}), "error", "$", "must be a JSON array")
    only(validate_assetlinks([]), "warning", "$", "empty")


@pytest.mark.parametrize(
    ("patch", "where", "text"),
    [
        ({"relation": None}, "$[0].relation", "non-empty array"),
        ({"relation": []}, "$[0].relation", "non-empty array"),
        ({"relation": ["handle_all_urls"]}, "$[0].relation[0]", "is not a relation"),
        ({"target": "com.example"}, "$[0].target", "must be an object"),
        ({"target": {"namespace": "ios_app"}}, "$[0].target.namespace", "expected 'android_app' or 'web'"),
        ({"extra": 1}, "$[0].extra", "unknown key"),
    ],
)
def test_statement_problems(
    android_example: list[dict[str, Any]], patch: dict[str, Any], where: str, text: str
) -> None:
    android_example[0].update(patch)
    del android_example[0]["relation_extensions"]
    problems = validate_assetlinks(android_example)
    assert any(p.where == where and text in p.message for p in problems), problems


def test_missing_relation_and_target() -> None:
    problems = validate_assetlinks([{}])
    assert [(p.where, p.message) for p in problems if p.severity == "error"] == [
        ("$[0]", "missing 'relation'"),
        ("$[0]", "missing 'target'"),
    ]
    only(errors(validate_assetlinks([3])), "error", "$[0]", "must be an object")


@pytest.mark.parametrize(
    ("target", "where", "text"),
    [
        ({"package_name": "nodots"}, "$[0].target.package_name", "not an application id"),
        ({"sha256_cert_fingerprints": []}, "$[0].target.sha256_cert_fingerprints", "non-empty array"),
        ({"sha256_cert_fingerprints": [LOWER]}, "$[0].target.sha256_cert_fingerprints[0]", "upper case"),
        (
            {"sha256_cert_fingerprints": ["AB:CD"]},
            "$[0].target.sha256_cert_fingerprints[0]",
            "32 colon-separated",
        ),
        (
            {"sha256_cert_fingerprint": [FINGERPRINT]},
            "$[0].target.sha256_cert_fingerprint",
            "unknown target key",
        ),
    ],
)
def test_android_target(
    android_example: list[dict[str, Any]], target: dict[str, Any], where: str, text: str
) -> None:
    android_example[0]["target"].update(target)
    problems = validate_assetlinks(android_example)
    assert any(p.where == where and text in p.message for p in problems), problems


def test_duplicate_fingerprint_warns(android_example: list[dict[str, Any]]) -> None:
    android_example[0]["target"]["sha256_cert_fingerprints"].append(FINGERPRINT)
    only(
        validate_assetlinks(android_example),
        "warning",
        "$[0].target.sha256_cert_fingerprints[1]",
        "duplicate",
    )


def test_web_targets() -> None:
    def web(site: Any) -> list[dict[str, Any]]:
        return [
            {
                "relation": ["delegate_permission/common.get_login_creds"],
                "target": {"namespace": "web", "site": site},
            },
            build_assetlinks("com.example", [FINGERPRINT])[0],
        ]

    assert validate_assetlinks(web("https://example.com")) == []
    assert validate_assetlinks(web("https://example.com:8443")) == []
    only(validate_assetlinks(web("https://example.com/path")), "error", "$[0].target.site", "origin")
    only(validate_assetlinks(web(None)), "error", "$[0].target.site", "origin")


def test_no_app_link_statement_warns() -> None:
    doc = [
        {
            "relation": ["delegate_permission/common.get_login_creds"],
            "target": {"namespace": "web", "site": "https://e.com"},
        }
    ]
    only(validate_assetlinks(doc), "warning", "$", "no android_app statement")


def test_includes() -> None:
    good = {"include": "https://example.com/.well-known/assetlinks.json"}
    assert validate_assetlinks([good]) == []
    only(validate_assetlinks([{"include": "http://example.com/a.json"}]), "error", "$[0].include", "https://")
    only(validate_assetlinks([{"include": 3}]), "error", "$[0].include", "URL string")
    only(validate_assetlinks([good] * 11), "error", "$", "at most 10")
    assert validate_assetlinks([good] * 10) == []


# Android 15 dynamic rules
def dynamic(components: Any) -> list[dict[str, Any]]:
    statement = build_assetlinks("com.example", [FINGERPRINT])[0]
    statement["relation_extensions"] = {RELATION: {"dynamic_app_link_components": components}}
    return [statement]


DYN = f"$[0].relation_extensions['{RELATION}'].dynamic_app_link_components"


@pytest.mark.parametrize(
    ("components", "where", "text"),
    [
        ([], DYN, "non-empty array"),
        ("x", DYN, "non-empty array"),
        ([{}], f"{DYN}[0]", "non-empty object"),
        ([{"/": ""}], f"{DYN}[0]['/']", "non-empty string"),
        ([{"#": 1}], f"{DYN}[0]['#']", "non-empty string"),
        ([{"?": "dl=1"}], f"{DYN}[0]['?']", "non-empty object"),
        ([{"?": {"dl": ""}}], f"{DYN}[0]['?'].dl", "non-empty string"),
        ([{"/": "/a", "exclude": 1}], f"{DYN}[0].exclude", "true or false"),
        ([{"/": "/a", "caseSensitive": False}], f"{DYN}[0].caseSensitive", "unknown component key"),
    ],
)
def test_dynamic_rule_errors(components: Any, where: str, text: str) -> None:
    only(validate_assetlinks(dynamic(components)), "error", where, text)


def test_only_exclusions_warns() -> None:
    only(validate_assetlinks(dynamic([{"/": "/a", "exclude": True}])), "warning", DYN, "nothing opens")
    assert validate_assetlinks(dynamic([{"/": "/a", "exclude": True}, {"/": "*"}])) == []


def test_one_dynamic_rule_list_per_app_and_relation(android_example: list[dict[str, Any]]) -> None:
    android_example.append(copy.deepcopy(android_example[0]))
    problems = validate_assetlinks(android_example)
    only(problems, "error", f"$[1].relation_extensions['{RELATION}']", "second dynamic_app_link_components")


def test_extension_for_an_undeclared_relation_warns() -> None:
    doc = dynamic([{"/": "*"}])
    doc[0]["relation"] = ["delegate_permission/common.get_login_creds", RELATION]
    assert validate_assetlinks(doc) == []
    doc[0]["relation"] = ["delegate_permission/common.get_login_creds"]
    problems = validate_assetlinks(doc)
    assert any("does not declare" in p.message for p in problems), problems
