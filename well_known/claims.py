"""What an app claims on a host: literal paths, optionally only with a given query item."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

# RFC 3986 path characters without percent-escapes: such a path reads the same encoded and
# decoded, so Apple (compares encoded) and Android (compares decoded) see the same string.
_PATH_RE = re.compile(r"^/[A-Za-z0-9\-._~!$&'()+,;=:@/]*$")
# Unreserved characters only: a query item name that no client encodes differently.
QUERY_ITEM_RE = re.compile(r"^[A-Za-z0-9\-._~]+$")
# Apple and Android both read `?*` as "at least one character": present and non-empty.
NON_EMPTY = "?*"


@dataclass(frozen=True)
class PathClaim:
    """URLs whose path is exactly `path`; with `query_items`, only when at least one of those
    query items is present with a non-empty value. Any other query items and any fragment
    are allowed."""

    path: str
    query_items: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "query_items", tuple(self.query_items))
        _check_path(self.path)
        for name in self.query_items:
            _check_query_item(name)
        if len(set(self.query_items)) != len(self.query_items):
            raise ValueError(f"duplicate query item in {self.query_items!r}")


def _check_path(path: object) -> None:
    if not isinstance(path, str):
        raise ValueError(f"claim path must be a string, got {type(path).__name__}")
    if "*" in path or "?" in path:
        raise ValueError(f"claim path {path!r} must be literal: '*' and '?' are wildcards")
    if not path.startswith("/"):
        raise ValueError(f"claim path {path!r} must start with '/'")
    if "$(" in path:
        raise ValueError(f"claim path {path!r} must not contain '$(': Apple reads it as a variable")
    if any(segment in (".", "..") for segment in path.split("/")):
        raise ValueError(f"claim path {path!r} has '.' or '..' segments, which browsers remove")
    if not _PATH_RE.match(path):
        raise ValueError(
            f"claim path {path!r} may only contain unescaped URL path characters "
            "(letters, digits, -._~!$&'()+,;=:@/); no spaces, '%', '#' or non-ASCII"
        )


def _check_query_item(name: object) -> None:
    if not isinstance(name, str) or not QUERY_ITEM_RE.match(name):
        raise ValueError(f"query item name {name!r} must be non-empty letters, digits or -._~")


def canonical(claims: Iterable[PathClaim]) -> list[tuple[str, str | None]]:
    """(path, query item or None) pairs, sorted and deduplicated; a path claimed without a
    query condition makes its query-conditioned claims redundant, so those are dropped."""
    items = list(claims)
    for claim in items:
        if not isinstance(claim, PathClaim):
            raise ValueError(f"expected PathClaim, got {type(claim).__name__}")
    unconditional = {c.path for c in items if not c.query_items}
    pairs: set[tuple[str, str | None]] = {(path, None) for path in unconditional}
    for claim in items:
        if claim.path not in unconditional:
            pairs.update((claim.path, name) for name in claim.query_items)
    return sorted(pairs, key=lambda pair: (pair[0], pair[1] or ""))


def claim_components(claims: Iterable[PathClaim]) -> list[dict[str, Any]]:
    """Rule components claiming exactly `claims`, one per (path, query item); the same shape
    serves Apple `components` and Android `dynamic_app_link_components`."""
    components: list[dict[str, Any]] = []
    for path, item in canonical(claims):
        component: dict[str, Any] = {"/": path}
        if item is not None:
            component["?"] = {item: NON_EMPTY}
        components.append(component)
    return components
