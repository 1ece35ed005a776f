"""RouteTable: (host, path) → Route. Pure: no I/O, no Starlette.

Host patterns are an exact host ("pay.example.com"), a wildcard ("*.example.com": any subdomain at
any depth, not the apex) or "*" (any host). For one path, an exact host beats the longest wildcard,
which beats "*". The association files of a host claim exactly the paths `paths_for_host` returns,
so the apps and the router can never disagree about which URLs are return URLs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any


class Flow(StrEnum):
    SUCCESS = "success"
    CANCEL = "cancel"
    ERROR = "error"


@dataclass(frozen=True)
class Route:
    host: str  # normalized host pattern
    path: str
    flow: Flow


def normalize_host(host: str) -> str:
    """Lower-case, without port and trailing dot: "Pay.Example.com.:443" → "pay.example.com"."""
    host = host.strip().lower()
    if host.startswith("["):  # IPv6 literal: keep the brackets, drop a port
        end = host.find("]")
        return host[: end + 1] if end != -1 else host
    host = host.rsplit(":", 1)[0] if host.count(":") == 1 else host
    return host.rstrip(".")


def raw_path(scope: Mapping[str, Any]) -> str:
    """The request's path as sent, not percent-decoded: what the routes and association paths match.

    A proxy in front (nginx locations, rate limits, WAF rules) may match the raw path: with the decoded one,
    `/amazon-pay%2Fresult` would be a return here and an unknown path there. Configured paths hold no `%`.
    """
    raw: bytes | None = scope.get("raw_path")
    return raw.decode("latin-1") if raw else str(scope["path"])


def host_pattern_matches(pattern: str, host: str) -> bool:
    if pattern == "*":
        return True
    if pattern.startswith("*."):
        return host.endswith(pattern[1:]) and len(host) > len(pattern) - 1
    return pattern == host


def _specificity(pattern: str) -> tuple[int, int]:
    """Sort key: exact hosts first, then longer wildcards, then "*"."""
    if pattern == "*":
        return (2, 0)
    if pattern.startswith("*."):
        return (1, -len(pattern))
    return (0, 0)


class RouteTable:
    def __init__(self, routes: list[Route]) -> None:
        self.routes = tuple(routes)
        self._by_path: dict[str, list[Route]] = {}
        for route in routes:
            self._by_path.setdefault(route.path, []).append(route)
        for candidates in self._by_path.values():
            candidates.sort(key=lambda r: _specificity(r.host))
        self._patterns = sorted({r.host for r in routes}, key=_specificity)

    def match(self, host: str, path: str) -> Route | None:
        """The route for this request, or None (unknown host or unknown path on a known host)."""
        host = normalize_host(host)
        for route in self._by_path.get(path, ()):
            if host_pattern_matches(route.host, host):
                return route
        return None

    def without_slash(self, host: str, path: str) -> str | None:
        """The route path that `path` is with one trailing slash added ("/result/" → "/result"), or None.

        iOS opens the app for "/result/" too, so a browser may arrive there; the page sends it on to the
        route's own path, which is the one a proxy in front knows."""
        if len(path) > 1 and path.endswith("/") and self.match(host, path[:-1]) is not None:
            return path[:-1]
        return None

    def host_patterns(self, host: str) -> tuple[str, ...]:
        """The configured host patterns that cover `host`, most specific first."""
        host = normalize_host(host)
        return tuple(p for p in self._patterns if host_pattern_matches(p, host))

    def paths_for_host(self, host: str) -> list[Route]:
        """Every route that serves on `host`, one per path, in configuration order."""
        host = normalize_host(host)
        seen: dict[str, Route] = {}
        for route in self.routes:
            if route.path not in seen:
                chosen = self.match(host, route.path)
                if chosen is not None:
                    seen[route.path] = chosen
        return list(seen.values())

    def first(self, flow: Flow) -> Route | None:
        """The first configured route of a flow (used to build return URLs)."""
        return next((r for r in self.routes if r.flow is flow), None)
