"""Problems found in an association file or on a deployed host."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

Severity = Literal["error", "warning"]
ROOT = "$"
_IDENT_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class Problem:
    """One finding. `where` is a JSON path such as `applinks.details[0].components[2]['?']`
    (`$` is the document itself) or, for remote checks, the URL that was fetched."""

    severity: Severity
    where: str
    message: str

    def __str__(self) -> str:
        return f"{self.severity}: {self.where}: {self.message}"


def error(where: str, message: str) -> Problem:
    return Problem("error", where, message)


def warning(where: str, message: str) -> Problem:
    return Problem("warning", where, message)


def errors(problems: Iterable[Problem]) -> list[Problem]:
    """Only the problems that make the file fail (warnings dropped)."""
    return [p for p in problems if p.severity == "error"]


def child(where: str, key: str | int) -> str:
    """JSON path of `key` below `where`: `a.b`, `a[0]`, `a['?']`, `$[0]` below the root."""
    if isinstance(key, int):
        step = f"[{key}]"
    elif _IDENT_RE.match(key):
        step = f".{key}"
    else:
        step = f"[{_quote(key)}]"
    if where == ROOT:
        return step[1:] if step.startswith(".") else ROOT + step
    return where + step


def _quote(key: str) -> str:
    # JSON escaping keeps control characters and quotes readable; single quotes as in the docs.
    inner = json.dumps(key, ensure_ascii=False)[1:-1].replace("'", "\\'")
    return f"'{inner}'"


def unknown_keys(
    value: Mapping[str, Any], where: str, allowed: Sequence[str], what: str, severity: Severity
) -> list[Problem]:
    """One problem per key of `value` outside `allowed`."""
    names = ", ".join(repr(k) for k in allowed)
    return [
        Problem(severity, child(where, str(k)), f"unknown {what} {k!r}; expected {names}")
        for k in value
        if k not in allowed
    ]
