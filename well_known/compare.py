"""Where two JSON documents first differ, for telling an operator what a deployed file lacks."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from .problems import ROOT, child

_SHOWN = 60  # characters of each side quoted in a message


@dataclass(frozen=True)
class Difference:
    where: str  # JSON path, `$` for the whole document
    deployed: str  # a short rendering of each side, or "nothing" where one side has no such key
    expected: str

    def __str__(self) -> str:
        return f"at {self.where}: deployed {self.deployed}, this config {self.expected}"


def first_difference(deployed: Any, expected: Any, where: str = ROOT) -> Difference | None:
    """The first place, in key order then index order, where `deployed` is not `expected`; None if equal.

    Objects compare by keys (order ignored, as JSON parsers do); arrays by position, so a reordered
    list of paths counts as different: Apple applies `components` in order."""
    if isinstance(deployed, dict) and isinstance(expected, dict):
        for key in sorted(deployed.keys() | expected.keys()):
            if key not in deployed or key not in expected:
                return Difference(child(where, key), _shown(deployed, key), _shown(expected, key))
            found = first_difference(deployed[key], expected[key], child(where, key))
            if found is not None:
                return found
        return None
    if isinstance(deployed, list) and isinstance(expected, list):
        for index in range(max(len(deployed), len(expected))):
            if index >= len(deployed) or index >= len(expected):
                return Difference(child(where, index), _shown(deployed, index), _shown(expected, index))
            found = first_difference(deployed[index], expected[index], child(where, index))
            if found is not None:
                return found
        return None
    if type(deployed) is type(expected) and deployed == expected:
        return None
    return Difference(where, _short(deployed), _short(expected))


def _shown(container: Any, key: str | int) -> str:
    present = key in container if isinstance(container, dict) else isinstance(key, int) and key < len(container)
    return _short(container[key]) if present else "nothing"


def _short(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False, sort_keys=True)
    return text if len(text) <= _SHOWN else text[: _SHOWN - 1] + "…"
