"""assetlinks.json (Digital Asset Links): build and validate, incl. Android 15 dynamic rules."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

from .claims import PathClaim, claim_components
from .document import Source, kind, load
from .problems import ROOT, Problem, child, error, unknown_keys, warning

HANDLE_ALL_URLS = "delegate_permission/common.handle_all_urls"
FINGERPRINT_RE = re.compile(r"^([0-9A-F]{2}:){31}[0-9A-F]{2}$")
PACKAGE_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_]*(\.[A-Za-z][A-Za-z0-9_]*)+$")
RELATION_RE = re.compile(r"^[a-z_]+/[a-z0-9_.]+$")
_SITE_RE = re.compile(r"^https?://[^/?#@\s]+$")
_HEX64_RE = re.compile(r"^[0-9A-Fa-f]{64}$")
_PREFIX_RE = re.compile(r"^SHA-?256\s*:\s*", re.IGNORECASE)
DYNAMIC_KEYS = ("/", "#", "?", "exclude")
MAX_INCLUDES = 10
WARN_BYTES = 100 * 1024


def normalize_fingerprint(value: str) -> str:
    """Upper-case `AA:BB:…` (32 bytes). Accepts lower case, 64 hex digits without colons and
    keytool's `SHA256: ` prefix, so a value pasted from keytool or Play Console just works."""
    if not isinstance(value, str):
        raise ValueError(f"fingerprint must be a string, got {type(value).__name__}")
    text = _PREFIX_RE.sub("", value.strip())
    if _HEX64_RE.match(text):
        text = ":".join(text[i : i + 2] for i in range(0, 64, 2))
    text = text.upper()
    if not FINGERPRINT_RE.match(text):
        shown = value if len(value) <= 120 else value[:117] + "..."
        raise ValueError(
            f"not a SHA-256 certificate fingerprint: {shown!r}; expected 32 colon-separated hex "
            "bytes like 14:6D:E9:...:44:E5 (keytool -list -v, or Play Console > App signing)"
        )
    return text


def build_assetlinks(
    package: str,
    fingerprints: Sequence[str],
    claims: Sequence[PathClaim] = (),
    *,
    dynamic_rules: bool = True,
) -> list[dict[str, Any]]:
    """One `handle_all_urls` statement for `package`. With `dynamic_rules` and claims, Android
    15+ also gets dynamic rules claiming exactly those URLs (anything unmatched is excluded).
    Without claims no rules are emitted: an empty rule list would be discarded anyway."""
    if not isinstance(package, str) or not PACKAGE_RE.match(package):
        raise ValueError(f"package {package!r} is not an Android application id like com.example.app")
    if isinstance(fingerprints, str):
        raise ValueError("fingerprints must be a sequence of fingerprints, not a single string")
    normalized: list[str] = []
    for fingerprint in fingerprints:
        value = normalize_fingerprint(fingerprint)
        if value not in normalized:
            normalized.append(value)
    if not normalized:
        raise ValueError("at least one SHA-256 signing certificate fingerprint is required")
    statement: dict[str, Any] = {
        "relation": [HANDLE_ALL_URLS],
        "target": {
            "namespace": "android_app",
            "package_name": package,
            "sha256_cert_fingerprints": normalized,
        },
    }
    components = claim_components(claims)
    if dynamic_rules and components:
        statement["relation_extensions"] = {HANDLE_ALL_URLS: {"dynamic_app_link_components": components}}
    return [statement]


def validate_assetlinks(doc: Source) -> list[Problem]:
    """Every problem in an assetlinks.json document (bytes and text are parsed strictly first)."""
    loaded = load(doc)
    problems = list(loaded.problems)
    if loaded.size > WARN_BYTES:
        problems.append(warning(ROOT, f"{loaded.size} bytes: keep it small, Google may answer TOO_LARGE"))
    if not loaded.usable:
        return problems
    value = loaded.value
    if not isinstance(value, list):
        return [*problems, error(ROOT, f"must be a JSON array of statements, not {kind(value)}")]
    if not value:
        problems.append(warning(ROOT, "empty: no app is associated"))
    dynamic_seen: set[tuple[str, str]] = set()
    includes = 0
    for index, statement in enumerate(value):
        at = child(ROOT, index)
        if isinstance(statement, Mapping) and "include" in statement:
            includes += 1
            problems += _include(statement, at)
        else:
            problems += _statement(statement, at, dynamic_seen)
    if includes > MAX_INCLUDES:
        problems.append(error(ROOT, f"{includes} include statements; at most {MAX_INCLUDES} are allowed"))
    if value and includes == 0 and not any(_is_app_link_statement(s) for s in value):
        problems.append(warning(ROOT, f"no android_app statement with {HANDLE_ALL_URLS}: no App Links"))
    return problems


def _is_app_link_statement(statement: Any) -> bool:
    if not isinstance(statement, Mapping):
        return False
    relation = statement.get("relation")
    target = statement.get("target")
    return (
        isinstance(relation, list)
        and HANDLE_ALL_URLS in relation
        and isinstance(target, Mapping)
        and target.get("namespace") == "android_app"
    )


def _include(statement: Mapping[str, Any], where: str) -> list[Problem]:
    problems = unknown_keys(statement, where, ("include",), "key in an include statement", "warning")
    url = statement["include"]
    at = child(where, "include")
    if not isinstance(url, str):
        return [*problems, error(at, f"must be a URL string, not {kind(url)}")]
    parts = urlsplit(url)
    if parts.scheme != "https" or not parts.hostname:
        problems.append(error(at, f"{url!r} must be an https:// URL with a fully qualified host"))
    return problems


def _statement(statement: Any, where: str, dynamic_seen: set[tuple[str, str]]) -> list[Problem]:
    if not isinstance(statement, Mapping):
        return [error(where, f"must be an object, not {kind(statement)}")]
    problems = unknown_keys(statement, where, ("relation", "target", "relation_extensions"), "key", "warning")
    relations = _relations(statement.get("relation"), child(where, "relation"))
    if "relation" not in statement:
        problems.append(error(where, "missing 'relation'"))
    else:
        problems += relations[1]
    if "target" not in statement:
        problems.append(error(where, "missing 'target'"))
    else:
        problems += _target(statement["target"], child(where, "target"))
    if "relation_extensions" in statement:
        target = statement.get("target")
        package = target.get("package_name") if isinstance(target, Mapping) else None
        problems += _extensions(
            statement["relation_extensions"],
            child(where, "relation_extensions"),
            relations[0],
            package,
            dynamic_seen,
        )
    return problems


def _relations(value: Any, where: str) -> tuple[list[str], list[Problem]]:
    if not isinstance(value, list) or not value:
        return [], [error(where, "must be a non-empty array of relation strings")]
    problems = [
        error(child(where, i), f"{r!r} is not a relation like {HANDLE_ALL_URLS}")
        for i, r in enumerate(value)
        if not isinstance(r, str) or not RELATION_RE.match(r)
    ]
    return [r for r in value if isinstance(r, str)], problems


def _target(value: Any, where: str) -> list[Problem]:
    if not isinstance(value, Mapping):
        return [error(where, f"must be an object, not {kind(value)}")]
    namespace = value.get("namespace")
    if namespace == "android_app":
        allowed: tuple[str, ...] = ("namespace", "package_name", "sha256_cert_fingerprints")
        problems = unknown_keys(value, where, allowed, "target key", "warning")
        return problems + _android_target(value, where)
    if namespace == "web":
        problems = unknown_keys(value, where, ("namespace", "site"), "target key", "warning")
        site = value.get("site")
        if not isinstance(site, str) or not _SITE_RE.match(site):
            problems.append(error(child(where, "site"), "must be an origin like https://example.com"))
        return problems
    return [error(child(where, "namespace"), f"{namespace!r}: expected 'android_app' or 'web'")]


def _android_target(value: Mapping[str, Any], where: str) -> list[Problem]:
    problems: list[Problem] = []
    package = value.get("package_name")
    if not isinstance(package, str) or not PACKAGE_RE.match(package):
        problems.append(error(child(where, "package_name"), f"{package!r} is not an application id"))
    at = child(where, "sha256_cert_fingerprints")
    prints = value.get("sha256_cert_fingerprints")
    if not isinstance(prints, list) or not prints:
        return [*problems, error(at, "must be a non-empty array of SHA-256 fingerprints")]
    for index, fingerprint in enumerate(prints):
        problems += _fingerprint(fingerprint, child(at, index))
        if fingerprint in prints[:index]:
            problems.append(warning(child(at, index), "duplicate fingerprint"))
    return problems


def _fingerprint(value: Any, where: str) -> list[Problem]:
    if isinstance(value, str) and FINGERPRINT_RE.match(value):
        return []
    if isinstance(value, str) and FINGERPRINT_RE.match(value.upper()):
        return [error(where, "must be upper case (lower-case fingerprints fail verification)")]
    return [error(where, f"{value!r} is not 32 colon-separated upper-case hex bytes")]


def _extensions(
    value: Any,
    where: str,
    relations: list[str],
    package: object,
    dynamic_seen: set[tuple[str, str]],
) -> list[Problem]:
    if not isinstance(value, Mapping):
        return [error(where, f"must be an object, not {kind(value)}")]
    problems: list[Problem] = []
    for relation, extension in value.items():
        at = child(where, relation)
        if relation not in relations:
            problems.append(warning(at, "extends a relation this statement does not declare"))
        if not isinstance(extension, Mapping):
            problems.append(error(at, f"must be an object, not {kind(extension)}"))
            continue
        problems += unknown_keys(extension, at, ("dynamic_app_link_components",), "key", "warning")
        if "dynamic_app_link_components" not in extension:
            continue
        key = (str(package), relation)
        if key in dynamic_seen:
            problems.append(error(at, "second dynamic_app_link_components for this app and relation"))
        dynamic_seen.add(key)
        components = extension["dynamic_app_link_components"]
        problems += dynamic_component_problems(components, child(at, "dynamic_app_link_components"))
    return problems


def dynamic_component_problems(components: Any, where: str) -> list[Problem]:
    """Problems in a `dynamic_app_link_components` list; any error makes Android drop them all."""
    if not isinstance(components, list) or not components:
        return [error(where, "must be a non-empty array (Android discards empty or malformed rules)")]
    problems: list[Problem] = []
    for index, component in enumerate(components):
        problems += _dynamic_component(component, child(where, index))
    if not problems and all(c.get("exclude") is True for c in components):
        problems.append(warning(where, 'only exclusions: nothing opens; end with {"/": "*"}'))
    return problems


def _dynamic_component(value: Any, where: str) -> list[Problem]:
    if not isinstance(value, Mapping) or not value:
        return [error(where, "must be a non-empty object")]
    problems = unknown_keys(value, where, DYNAMIC_KEYS, "component key", "error")
    for key in ("/", "#"):
        if key in value and (not isinstance(value[key], str) or not value[key]):
            problems.append(error(child(where, key), "must be a non-empty string"))
    if "exclude" in value and not isinstance(value["exclude"], bool):
        problems.append(error(child(where, "exclude"), "must be true or false"))
    if "?" in value:
        query = value["?"]
        if not isinstance(query, Mapping) or not query:
            problems.append(error(child(where, "?"), "must be a non-empty object of name: pattern"))
        else:
            problems += [
                error(child(child(where, "?"), str(name)), "must map a non-empty name to a non-empty string")
                for name, pattern in query.items()
                if not name or not isinstance(pattern, str) or not pattern
            ]
    return problems
