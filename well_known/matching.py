"""Which URLs a document opens in the app: Apple swcutil semantics and Android 15 dynamic rules.

Apple: details are tried in order; within a detail the first matching component (or legacy
path) decides, an `exclude` match blocks the app. A component matches when every part it
specifies matches the whole of that URL part; an unspecified part is `*`; an absent part reads
as the empty string. A `"?"` string matches the whole query; a `"?"` dictionary constrains only
the named items. `percentEncoded: false` decodes the URL (never the pattern). Malformed
components never match (`validate_aasa` reports them), except as noted for `"?"` below.

Where the reference is silent we follow swcutil observations published by a third-party project
(blazingly-aasa `docs/parity.md`, not an Apple rule): the leading slash of a path pattern is
optional, trailing slashes are insignificant (`/buy` matches `/buy/`), a missing query item
reads as empty, every occurrence of a repeated item must match, and a non-string value in a
`"?"` dictionary makes the whole dictionary ignored. We do NOT make `/x/*` match `/x` (the
reference records that it does not).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, unquote_plus, urlsplit

from .assetlinks import dynamic_component_problems
from .patterns import compile_glob


@dataclass(frozen=True)
class UrlParts:
    """Raw (still percent-encoded) parts of a URL; None when the part is absent."""

    path: str
    query: str | None
    fragment: str | None


@dataclass(frozen=True)
class Match:
    """The rule that decided: `index` is into the detail's `components` (or legacy `paths`)."""

    detail_index: int
    index: int
    exclude: bool
    legacy: bool
    app_ids: tuple[str, ...]

    @property
    def opens(self) -> bool:
        return not self.exclude


@dataclass(frozen=True)
class _Options:
    case_sensitive: bool
    percent_encoded: bool


def split_url(url: str) -> UrlParts:
    """Split an absolute URL or a bare `/path?query#fragment`; an empty path counts as `/`."""
    if not isinstance(url, str):
        raise ValueError(f"URL must be a string, got {type(url).__name__}")
    try:
        parts = urlsplit(url)
    except ValueError as exc:
        raise ValueError(f"malformed URL: {exc}") from None
    before_fragment = url.split("#", 1)[0]
    return UrlParts(
        path=parts.path or "/",
        query=parts.query if "?" in before_fragment else None,
        fragment=parts.fragment if "#" in url else None,
    )


def aasa_match(doc: Mapping[str, Any], url: str, app_id: str | None = None) -> Match | None:
    """The rule deciding `url` for `app_id` (first detail listing it that has a match), or,
    without `app_id`, the first opening match of any app, else the first exclusion."""
    if not isinstance(doc, Mapping):
        raise ValueError("AASA document must be a JSON object")
    parts = split_url(url)
    applinks = doc.get("applinks")
    if not isinstance(applinks, Mapping):
        return None
    details = _details(applinks)
    first_exclusion: Match | None = None
    for index, detail in enumerate(details):
        if not isinstance(detail, Mapping):
            continue
        ids = _app_ids(detail)
        if app_id is not None and app_id not in ids:
            continue
        verdict = _detail_match(applinks, detail, index, ids, parts)
        if verdict is None:
            continue
        if app_id is not None or verdict.opens:
            return verdict
        first_exclusion = first_exclusion or verdict
    return first_exclusion


def aasa_opens(doc: Mapping[str, Any], url: str, app_id: str | None = None) -> bool:
    """True when `url` opens the app (`app_id`, or any app of the document)."""
    match = aasa_match(doc, url, app_id)
    return match is not None and match.opens


def aasa_app_ids(doc: Mapping[str, Any]) -> set[str]:
    """All app IDs listed in `applinks.details` (modern `appIDs` and legacy `appID`)."""
    applinks = doc.get("applinks")
    details = _details(applinks) if isinstance(applinks, Mapping) else []
    return {i for d in details if isinstance(d, Mapping) for i in _app_ids(d)}


def _app_ids(detail: Mapping[str, Any]) -> tuple[str, ...]:
    listed = detail.get("appIDs")
    ids = [i for i in listed if isinstance(i, str)] if isinstance(listed, list) else []
    single = detail.get("appID")
    if isinstance(single, str) and single not in ids:
        ids.append(single)
    return tuple(ids)


def _details(applinks: Mapping[str, Any]) -> list[Any]:
    """`details` as a list; the oldest form, a dictionary keyed by app ID, is converted."""
    details = applinks.get("details")
    if isinstance(details, list):
        return details
    if isinstance(details, Mapping):
        return [
            {**value, "appID": app_id} if isinstance(value, Mapping) else value
            for app_id, value in details.items()
        ]
    return []


def _detail_match(
    applinks: Mapping[str, Any],
    detail: Mapping[str, Any],
    detail_index: int,
    ids: tuple[str, ...],
    parts: UrlParts,
) -> Match | None:
    components = detail.get("components")
    if isinstance(components, list):  # iOS 13+ ignores `paths` once `components` exist
        variables = _variables(applinks.get("substitutionVariables"))
        defaults = _merge_defaults(_Options(True, True), applinks.get("defaults"))
        defaults = _merge_defaults(defaults, detail.get("defaults"))
        for index, component in enumerate(components):
            if not isinstance(component, Mapping):
                continue
            options = _merge_defaults(defaults, component)
            if _component_matches(component, parts, options, variables):
                exclude = component.get("exclude") is True
                return Match(detail_index, index, exclude, legacy=False, app_ids=ids)
        return None
    paths = detail.get("paths")
    if isinstance(paths, list):
        return _legacy_match(paths, parts, detail_index, ids)
    return None


def _legacy_match(paths: list[Any], parts: UrlParts, detail_index: int, ids: tuple[str, ...]) -> Match | None:
    # Legacy (iOS 9-12): path only, case-sensitive, "NOT " excludes, first match stops.
    for index, entry in enumerate(paths):
        if not isinstance(entry, str):
            continue
        exclude = entry.startswith("NOT ")
        pattern = entry[4:] if exclude else entry
        if _path_matches(lambda p: compile_glob(p, substitution=False).fullmatch, pattern, parts.path):
            return Match(detail_index, index, exclude, legacy=True, app_ids=ids)
    return None


def _merge_defaults(base: _Options, source: object) -> _Options:
    if not isinstance(source, Mapping):
        return base
    case = source.get("caseSensitive")
    encoded = source.get("percentEncoded")
    return _Options(
        case if isinstance(case, bool) else base.case_sensitive,
        encoded if isinstance(encoded, bool) else base.percent_encoded,
    )


def _variables(source: object) -> dict[str, list[str]]:
    if not isinstance(source, Mapping):
        return {}
    return {
        name: [v for v in values if isinstance(v, str)]
        for name, values in source.items()
        if isinstance(name, str) and isinstance(values, list)
    }


def _component_matches(
    component: Mapping[str, Any], parts: UrlParts, options: _Options, variables: dict[str, list[str]]
) -> bool:
    decode = (lambda s: s) if options.percent_encoded else unquote

    def glob_ok(pattern: object, text: str | None, *, path: bool = False) -> bool:
        if not isinstance(pattern, str):
            return False
        text = decode(text or "")

        def matcher(glob_text: str) -> Callable[[str], bool]:
            return compile_glob(glob_text, variables, case_sensitive=options.case_sensitive).fullmatch

        return _path_matches(matcher, pattern, text) if path else matcher(pattern)(text)

    if "/" in component and not glob_ok(component["/"], parts.path, path=True):
        return False
    if "#" in component and not glob_ok(component["#"], parts.fragment):
        return False
    if "?" not in component:
        return True
    query = component["?"]
    if isinstance(query, Mapping):
        items = [(decode(n), decode(v)) for n, v in query_items(parts.query)]
        return _apple_items_match(query, items, options, variables)
    return glob_ok(query, parts.query)


def _path_matches(matcher: Callable[[str], Callable[[str], bool]], pattern: str, path: str) -> bool:
    """Leading slash runs are insignificant to Apple's path comparison, and so is a trailing one: "/a/"
    claims "/a". Yet "*" matches zero or more characters, so "/buy/*" claims "/buy/" (Apple: "path starts
    with /buy/"), though not "/buy": a pattern ending in "*" is also tried on the path as written."""
    glob = pattern.strip("/")
    texts = {path.strip("/"), path.lstrip("/")} if glob.endswith("*") else {path.strip("/")}
    return any(matcher(glob)(text) for text in texts)


def _apple_items_match(
    wanted: Mapping[Any, Any],
    items: list[tuple[str, str]],
    options: _Options,
    variables: dict[str, list[str]],
) -> bool:
    """Each named item must match in every occurrence; a missing item reads as empty."""
    if not all(isinstance(n, str) and isinstance(p, str) for n, p in wanted.items()):
        return True  # swcutil ignores the whole dictionary then (observed, see module doc)
    fold = (lambda s: s) if options.case_sensitive else str.lower
    for name, pattern in wanted.items():
        glob = compile_glob(pattern, variables, case_sensitive=options.case_sensitive)
        values = [v for n, v in items if fold(n) == fold(name)] or [""]
        if not all(glob.fullmatch(v) for v in values):
            return False
    return True


def query_items(query: str | None) -> list[tuple[str, str]]:
    """(name, value) pairs in order, still encoded; an item without `=` has an empty value."""
    if not query:
        return []
    pairs: list[tuple[str, str]] = []
    for segment in query.split("&"):
        if segment:
            name, _, value = segment.partition("=")
            pairs.append((name, value))
    return pairs


def android_dynamic_match(components: Sequence[Mapping[str, Any]], url: str) -> bool:
    """Android 15 `dynamic_app_link_components`: first matching component decides, no match
    means excluded. Compares the decoded path, query values and fragment case-sensitively; a
    `"?"` entry needs its item present (first occurrence counts); extra items are allowed.
    Raises ValueError for malformed rules, which Android discards as a whole."""
    problems = dynamic_component_problems(components, "dynamic_app_link_components")
    bad = [p for p in problems if p.severity == "error"]
    if bad:
        raise ValueError(f"malformed dynamic rules, Android ignores them: {bad[0]}")
    parts = split_url(url)
    for component in components:
        if _android_component_matches(component, parts):
            return component.get("exclude") is not True
    return False


def _android_component_matches(component: Mapping[str, Any], parts: UrlParts) -> bool:
    def ok(key: str, text: str | None) -> bool:
        pattern = component.get(key)
        if pattern is None:
            return True
        return compile_glob(pattern, substitution=False).fullmatch(unquote(text or ""))

    if not ok("/", parts.path) or not ok("#", parts.fragment):
        return False
    wanted = component.get("?")
    if wanted is None:
        return True
    items = [(unquote_plus(n), unquote_plus(v)) for n, v in query_items(parts.query)]
    for name, pattern in wanted.items():
        # Uri.getQueryParameter semantics: the item must be present; its first value counts.
        value = next((v for n, v in items if n == name), None)
        if value is None or not compile_glob(pattern, substitution=False).fullmatch(value):
            return False
    return True
