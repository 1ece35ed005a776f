"""apple-app-site-association: build the modern format and validate any document."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from .claims import PathClaim, claim_components
from .document import Source, kind, load
from .patterns import PREDEFINED, referenced_variables
from .problems import ROOT, Problem, child, error, unknown_keys, warning

APP_ID_RE = re.compile(r"^[A-Za-z0-9]{10}\.[A-Za-z0-9.*-]+$")
MAX_BYTES = 128 * 1024  # Apple: uncompressed size no greater than 128 KB
WARN_BYTES = 100 * 1024

TOP_LEVEL_KEYS = ("applinks", "webcredentials", "appclips", "activitycontinuation")
APPLINKS_KEYS = ("details", "defaults", "substitutionVariables", "apps")
DETAIL_KEYS = ("appID", "appIDs", "components", "paths", "defaults")
COMPONENT_KEYS = ("/", "?", "#", "exclude", "comment", "caseSensitive", "percentEncoded")
DEFAULTS_KEYS = ("caseSensitive", "percentEncoded")
_STRING_KEYS = ("/", "#", "comment")
_BOOL_KEYS = ("exclude", "caseSensitive", "percentEncoded")


def is_valid_app_id(value: object) -> bool:
    """`TEAMID.bundle.id` with a 10-character Team ID prefix."""
    return isinstance(value, str) and APP_ID_RE.match(value) is not None


def build_aasa(
    app_ids: Sequence[str],
    claims: Sequence[PathClaim],
    *,
    webcredentials_apps: Sequence[str] = (),
    appclips_apps: Sequence[str] = (),
) -> dict[str, Any]:
    """A modern-format AASA whose applinks claim exactly the URLs in `claims` for `app_ids`.

    One component per (path, query item), sorted; no exclusions and no catch-all are needed
    because nothing else is listed. Raises ValueError for malformed app IDs."""
    ids = _checked_ids(app_ids, "app_ids")
    if not ids:
        raise ValueError("app_ids must list at least one TEAMID.bundle.id")
    components = claim_components(claims)
    doc: dict[str, Any] = {"applinks": {"details": [{"appIDs": ids, "components": components}]}}
    if webcredentials_apps:
        doc["webcredentials"] = {"apps": _checked_ids(webcredentials_apps, "webcredentials_apps")}
    if appclips_apps:
        doc["appclips"] = {"apps": _checked_ids(appclips_apps, "appclips_apps")}
    return doc


def _checked_ids(values: Sequence[str], name: str) -> list[str]:
    if isinstance(values, str):
        raise ValueError(f"{name} must be a sequence of app IDs, not a single string")
    result: list[str] = []
    for value in values:
        if not is_valid_app_id(value):
            raise ValueError(f"{name}: {value!r} is not an app ID like ABCDE12345.com.example.app")
        if value not in result:
            result.append(value)
    return result


def validate_aasa(doc: Source) -> list[Problem]:
    """Every problem in an AASA document (bytes and text are parsed strictly first)."""
    loaded = load(doc)
    problems = list(loaded.problems)
    if loaded.size > MAX_BYTES:
        problems.append(error(ROOT, f"{loaded.size} bytes: Apple rejects files over 128 KB"))
    elif loaded.size > WARN_BYTES:
        problems.append(warning(ROOT, f"{loaded.size} bytes: close to Apple's 128 KB limit"))
    if loaded.usable:
        problems.extend(_document(loaded.value))
    return problems


def _document(value: Any) -> list[Problem]:
    if not isinstance(value, Mapping):
        return [error(ROOT, f"must be a JSON object, not {kind(value)}")]
    problems = unknown_keys(value, ROOT, TOP_LEVEL_KEYS, "top-level key", "warning")
    if "applinks" in value:
        problems.extend(_applinks(value["applinks"], "applinks"))
    else:
        problems.append(warning(ROOT, "no applinks: this file opens no universal links"))
    for service in ("webcredentials", "appclips", "activitycontinuation"):
        if service in value:
            problems.extend(_service(value[service], service))
    return problems


def _service(value: Any, where: str) -> list[Problem]:
    if not isinstance(value, Mapping):
        return [error(where, f"must be an object with 'apps', not {kind(value)}")]
    problems = unknown_keys(value, where, ("apps",), "key", "warning")
    if "apps" not in value:
        return [*problems, error(where, "missing 'apps' (an array of app IDs)")]
    return problems + _id_list(value["apps"], child(where, "apps"))


def _applinks(value: Any, where: str) -> list[Problem]:
    if not isinstance(value, Mapping):
        return [error(where, f"must be an object, not {kind(value)}")]
    problems = unknown_keys(value, where, APPLINKS_KEYS, "key", "warning")
    problems += _defaults(value.get("defaults"), child(where, "defaults"))
    names = _variable_names(value.get("substitutionVariables"))
    problems += _substitution(value.get("substitutionVariables"), child(where, "substitutionVariables"))
    details = value.get("details")
    if "details" not in value:
        problems.append(error(where, "missing 'details' (an array)"))
    elif isinstance(details, Mapping):
        problems.append(warning(child(where, "details"), "oldest form keyed by app ID; use an array"))
        problems += _keyed_details(details, child(where, "details"))
    elif not isinstance(details, list):
        problems.append(error(child(where, "details"), f"must be an array, not {kind(details)}"))
    else:
        for index, detail in enumerate(details):
            problems += _detail(detail, child(child(where, "details"), index), names)
    problems += _legacy_apps(value, where, details if isinstance(details, list) else [])
    return problems


def _keyed_details(details: Mapping[str, Any], where: str) -> list[Problem]:
    problems: list[Problem] = []
    for app_id, entry in details.items():
        at = child(where, app_id)
        if not is_valid_app_id(app_id):
            problems.append(error(at, f"{app_id!r} is not TEAMID.bundle.id"))
        if not isinstance(entry, Mapping) or "paths" not in entry:
            problems.append(error(at, "must be an object with 'paths'"))
        else:
            problems += _paths(entry["paths"], child(at, "paths"))
    return problems


def _legacy_apps(applinks: Mapping[str, Any], where: str, details: list[Any]) -> list[Problem]:
    legacy = any(isinstance(d, Mapping) and "paths" in d for d in details)
    if "apps" in applinks:
        if applinks["apps"] != []:
            return [error(child(where, "apps"), "must be an empty array")]
        if not legacy:
            return [warning(child(where, "apps"), "only the legacy 'paths' format uses 'apps': []")]
    elif legacy:
        return [warning(where, "legacy 'paths' format: iOS 9-12 also need \"apps\": []")]
    return []


def _detail(value: Any, where: str, variables: set[str]) -> list[Problem]:
    if not isinstance(value, Mapping):
        return [error(where, f"must be an object, not {kind(value)}")]
    problems = unknown_keys(value, where, DETAIL_KEYS, "key", "warning")
    problems += _detail_shape(value, where)
    if "appIDs" in value:
        problems += _id_list(value["appIDs"], child(where, "appIDs"))
    if "appID" in value and not is_valid_app_id(value["appID"]):
        problems.append(error(child(where, "appID"), f"{value['appID']!r} is not TEAMID.bundle.id"))
    problems += _defaults(value.get("defaults"), child(where, "defaults"))
    if "components" in value:
        problems += _components(value["components"], child(where, "components"), variables)
    if "paths" in value:
        problems += _paths(value["paths"], child(where, "paths"))
    return problems


def _detail_shape(value: Mapping[str, Any], where: str) -> list[Problem]:
    """appIDs + components (modern) or appID + paths (legacy); Apple: never mix the two."""
    problems: list[Problem] = []
    if "appIDs" not in value and "appID" not in value:
        problems.append(error(where, "missing 'appIDs' (or legacy 'appID')"))
    if "components" not in value and "paths" not in value:
        problems.append(error(where, "missing 'components' (or legacy 'paths')"))
    mixed = [
        ("components", "paths"),
        ("appIDs", "appID"),
        ("appIDs", "paths"),
        ("appID", "components"),
    ]
    for modern, legacy in mixed:
        if modern in value and legacy in value:
            problems.append(
                error(where, f"mixes '{modern}' and '{legacy}': use appIDs+components or appID+paths")
            )
    return problems


def _id_list(value: Any, where: str) -> list[Problem]:
    if not isinstance(value, list):
        return [error(where, f"must be an array of app IDs, not {kind(value)}")]
    problems: list[Problem] = []
    if not value:
        problems.append(warning(where, "empty: no app is associated"))
    for index, app_id in enumerate(value):
        if not is_valid_app_id(app_id):
            problems.append(error(child(where, index), f"{app_id!r} is not TEAMID.bundle.id"))
        elif value.index(app_id) != index:
            problems.append(warning(child(where, index), f"duplicate app ID {app_id!r}"))
    return problems


def _defaults(value: Any, where: str) -> list[Problem]:
    if value is None:
        return []
    if not isinstance(value, Mapping):
        return [error(where, f"must be an object, not {kind(value)}")]
    problems = unknown_keys(value, where, DEFAULTS_KEYS, "key", "error")
    for key in DEFAULTS_KEYS:
        if key in value and not isinstance(value[key], bool):
            problems.append(error(child(where, key), f"must be true or false, not {kind(value[key])}"))
    return problems


def _variable_names(value: Any) -> set[str]:
    return {k for k in value if isinstance(k, str)} if isinstance(value, Mapping) else set()


def _substitution(value: Any, where: str) -> list[Problem]:
    if value is None:
        return []
    if not isinstance(value, Mapping):
        return [error(where, f"must be an object, not {kind(value)}")]
    problems: list[Problem] = []
    for name, values in value.items():
        at = child(where, name)
        if name == "" or any(c in name for c in "$()"):
            problems.append(error(at, f"variable name {name!r} must be non-empty without $ ( )"))
        elif name in PREDEFINED:
            problems.append(warning(at, f"shadows the predefined variable $({name})"))
        if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
            problems.append(error(at, "must be an array of strings"))
            continue
        if not values:
            problems.append(warning(at, "empty: $(" + name + ") can never match"))
        for index, text in enumerate(values):
            if "$(" in text:
                problems.append(error(child(at, index), "values cannot use other variables"))
    return problems


def _components(value: Any, where: str, variables: set[str]) -> list[Problem]:
    if not isinstance(value, list):
        return [error(where, f"must be an array of objects, not {kind(value)}")]
    problems: list[Problem] = []
    if not value:
        problems.append(warning(where, "empty: this detail claims no URLs"))
    catch_all: int | None = None
    for index, component in enumerate(value):
        at = child(where, index)
        problems += _component(component, at, variables)
        if catch_all is not None:
            what = "exclusion" if _is_exclude(component) else "component"
            problems.append(
                warning(at, f"{what} is unreachable: the catch-all at [{catch_all}] matches first")
            )
        elif isinstance(component, Mapping) and _is_catch_all(component):
            catch_all = index
    return problems


def _component(value: Any, where: str, variables: set[str]) -> list[Problem]:
    if not isinstance(value, Mapping):
        return [error(where, f"must be an object, not {kind(value)}")]
    problems = unknown_keys(value, where, COMPONENT_KEYS, "component key", "error")
    for key in _STRING_KEYS:
        if key in value and not isinstance(value[key], str):
            problems.append(error(child(where, key), f"must be a string, not {kind(value[key])}"))
    for key in _BOOL_KEYS:
        if key in value and not isinstance(value[key], bool):
            problems.append(error(child(where, key), f"must be true or false, not {kind(value[key])}"))
    problems += _query(value.get("?"), child(where, "?")) if "?" in value else []
    for key in ("/", "#", "?"):
        problems += _undefined_variables(value.get(key), child(where, key), variables)
    return problems


def _query(value: Any, where: str) -> list[Problem]:
    if isinstance(value, str):
        return []
    if not isinstance(value, Mapping):
        return [error(where, f"must be a string or an object, not {kind(value)}")]
    return [
        error(child(where, name), f"query item pattern must be a string, not {kind(pattern)}")
        for name, pattern in value.items()
        if not isinstance(pattern, str)
    ]


def _undefined_variables(value: Any, where: str, variables: set[str]) -> list[Problem]:
    patterns: list[str] = []
    if isinstance(value, str):
        patterns = [value]
    elif isinstance(value, Mapping):
        patterns = [v for v in value.values() if isinstance(v, str)]
    return [
        warning(where, f"$({name}) is not defined in substitutionVariables")
        for pattern in patterns
        for name in referenced_variables(pattern)
        if name not in variables and name not in PREDEFINED
    ]


def _paths(value: Any, where: str) -> list[Problem]:
    if not isinstance(value, list):
        return [error(where, f"must be an array of strings, not {kind(value)}")]
    problems: list[Problem] = []
    catch_all: int | None = None
    for index, path in enumerate(value):
        at = child(where, index)
        if not isinstance(path, str):
            problems.append(error(at, f"must be a string, not {kind(path)}"))
            continue
        if path.upper().startswith("NOT") and not path.startswith("NOT "):
            problems.append(warning(at, f"{path!r}: exclusions are written 'NOT ' with one space"))
        if catch_all is not None:
            problems.append(warning(at, f"unreachable: the catch-all at [{catch_all}] matches first"))
        elif _is_all_stars(path, allow_slash=True):
            catch_all = index
    return problems


def _is_exclude(component: Any) -> bool:
    return isinstance(component, Mapping) and component.get("exclude") is True


def _is_catch_all(component: Mapping[str, Any]) -> bool:
    """Matches every URL: no constraint beyond `*`-only patterns (comments aside)."""
    path = component.get("/", "*")
    fragment = component.get("#", "*")
    query = component.get("?", "*")
    if isinstance(query, Mapping) and not query:
        query = "*"
    return (
        isinstance(path, str)
        and _is_all_stars(path, allow_slash=True)
        and isinstance(fragment, str)
        and _is_all_stars(fragment, allow_slash=False)
        and isinstance(query, str)
        and _is_all_stars(query, allow_slash=False)
    )


def _is_all_stars(pattern: str, *, allow_slash: bool) -> bool:
    rest = pattern[1:] if allow_slash and pattern.startswith("/") else pattern
    return rest != "" and set(rest) == {"*"}
