"""A cursor over one TOML table that knows its own path and records problems instead of raising.

Every getter returns a usable value (the default when the key is missing or wrong) and, when the
value is wrong, records "<file>: <path>.<key>: <message>". Reading goes on, so one pass reports
every problem. The keys a section asks for are its allowed keys: `done()` reports the others.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any, overload

from router.secrets import SecretProblem, resolve_secret
from router.validators import DNS_NAME, is_ip_literal, url_problem
from router.web.routing import normalize_host


class Problems:
    """The problems of one file, in the order found."""

    def __init__(self, source: str, env: Mapping[str, str], *, offline: bool = False,
                 base_dir: Path = Path()) -> None:
        self.source = source
        self.env = env
        self.base_dir = base_dir  # secrets and key files are read relative to the config file
        self.offline = offline  # secrets are checked for shape only, never read
        self.lines: list[str] = []

    def add(self, key: str, message: str) -> None:
        self.lines.append(f"{self.source}: {key}: {message}" if key else f"{self.source}: {message}")


class Section:
    def __init__(self, problems: Problems, path: str, table: Mapping[str, Any]) -> None:
        self.problems = problems
        self.path = path
        self.table = table
        self.asked: list[str] = []

    # --- paths and problems ----------------------------------------------------------------------

    def key(self, name: str) -> str:
        return f"{self.path}.{name}" if self.path else name

    def fail(self, name: str, message: str) -> None:
        """A problem with key `name` of this section ("" for the section itself)."""
        self.problems.add(self.key(name) if name else self.path, message)

    def has(self, name: str) -> bool:
        self._ask(name)
        return name in self.table

    def raw(self, name: str) -> Any:
        self._ask(name)
        return self.table.get(name)

    def _ask(self, name: str) -> None:
        if name not in self.asked:
            self.asked.append(name)

    def done(self) -> None:
        """Report the keys nobody asked for."""
        allowed = ", ".join(sorted(self.asked))
        for unknown in sorted(set(self.table) - set(self.asked)):
            self.fail(unknown, f"unknown key (allowed: {allowed})")

    def _typed(self, name: str, kind: type, what: str, required: bool) -> Any:
        if not self.has(name):
            if required:
                self.fail(name, "is required")
            return None
        value = self.table[name]
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            return float(value)
        if not isinstance(value, kind) or (kind in (int, float) and isinstance(value, bool)):
            self.fail(name, f"must be {what}")
            return None
        return value

    # --- typed getters ---------------------------------------------------------------------------

    @overload
    def str_(self, name: str, default: str, *, required: bool = False) -> str: ...
    @overload
    def str_(self, name: str, default: None = None, *, required: bool = False) -> str | None: ...
    def str_(self, name: str, default: str | None = None, *, required: bool = False) -> str | None:
        value = self._typed(name, str, "a string", required)
        return default if value is None else str(value)

    def bool_(self, name: str, default: bool) -> bool:
        value = self._typed(name, bool, "true or false", False)
        return default if value is None else bool(value)

    def int_(self, name: str, default: int, *, positive: bool = False) -> int:
        value = self._typed(name, int, "an integer", False)
        return default if value is None or not self._positive(name, value, positive) else int(value)

    def float_(self, name: str, default: float, *, positive: bool = False,
               at_most: float | None = None, why: str = "") -> float:
        value = self._typed(name, float, "a number", False)
        if value is None or not self._positive(name, value, positive):  # also refuses nan and inf
            return default
        if at_most is not None and value > at_most:
            self.fail(name, f"must be at most {at_most:g}{f' ({why})' if why else ''}")
            return default
        return float(value)

    def _positive(self, name: str, value: float, positive: bool) -> bool:
        if not math.isfinite(value):  # nan and inf pass every comparison below, or the wrong way
            self.fail(name, "must be a finite number")
            return False
        if positive and value <= 0:
            self.fail(name, "must be greater than 0")
            return False
        return True

    def list_of_str(self, name: str, *, required: bool = False, non_empty: str | None = None) -> list[str]:
        """A list of strings; `non_empty` is the message for a present but empty list."""
        value = self._typed(name, list, "a list", required)
        if value is None:
            return []
        if not all(isinstance(v, str) for v in value):
            self.fail(name, "must be a list of strings")
            return []
        if not value and non_empty:
            self.fail(name, non_empty)
        return list(value)

    def url(self, name: str, *, required: bool = False, allow_http_loopback: bool = False) -> str | None:
        """An absolute https URL (javascript:, data: and relative URLs refused)."""
        value = self.str_(name, required=required)
        if value is None:
            return None
        problem = url_problem(value, allow_http_loopback=allow_http_loopback)
        if problem is not None:
            self.fail(name, problem)
            return None
        return value

    def host(self, name: str, *, wildcard: bool = True, required: bool = False) -> str | None:
        """A DNS host name, normalised (lower case, no trailing dot); never an IP literal."""
        value = self.str_(name, required=required)
        if value is None:
            return None
        host = value.strip().lower().rstrip(".")
        if wildcard and host == "*":
            return host
        bare = host[2:] if wildcard and host.startswith("*.") else host
        if ":" not in host and "/" not in host and DNS_NAME.fullmatch(bare) and is_ip_literal(bare):
            self.fail(name, f"{value!r} is an IP address: routes need a DNS name (apps cannot claim an IP)")
            return None
        if ":" in host or "/" in host or not DNS_NAME.fullmatch(bare):
            allowed = 'a host name like "pay.example.com"' + (', "*.example.com" or "*"' if wildcard else "")
            self.fail(name, f"{value!r} is not {allowed} (no scheme, port or path)")
            return None
        return normalize_host(host) if not host.startswith("*.") else host

    def secret(self, name: str) -> str | None:
        """A secret from `<name>_env = "VAR"` or `<name>_file = "path"` (exactly one; router.secrets)."""
        self._ask(f"{name}_env")
        self._ask(f"{name}_file")
        if self.problems.offline:  # shape only: strings, never read
            for key in (f"{name}_env", f"{name}_file"):
                self.str_(key)
            return None
        try:
            return resolve_secret(self.table, self.path, name, self.problems.env, self.problems.base_dir)
        except SecretProblem as exc:
            self.problems.add(exc.key, str(exc))
            return None

    # --- nested tables ---------------------------------------------------------------------------

    def section(self, name: str) -> Section | None:
        """The sub-table `name`, or None when it is absent (or not a table: a problem)."""
        value = self.raw(name)
        if value is None:
            return None
        if not isinstance(value, dict):
            self.fail(name, "must be a table")
            return None
        return Section(self.problems, self.key(name), value)

    def tables(self, name: str, *, required: str) -> list[Section]:
        """An array of tables ([[name]]); `required` is the message when it is missing."""
        value = self.raw(name)
        if value is None:
            self.fail(name, f"is required: {required}")
            return []
        if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
            self.fail(name, f"must be an array of tables ([[{name}]])")
            return []
        return [Section(self.problems, f"{self.key(name)}[{i}]", v) for i, v in enumerate(value)]
