"""Strict loading of a JSON association file from bytes, text or an already parsed value."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .problems import ROOT, Problem, error, warning
from .serialize import dumps

_BOMS = {
    b"\xef\xbb\xbf": "a UTF-8 byte order mark",
    b"\xff\xfe": "a UTF-16 byte order mark",
    b"\xfe\xff": "a UTF-16 byte order mark",
}

Source = bytes | bytearray | str | Mapping[str, Any] | Sequence[Any]


@dataclass
class Loaded:
    """The parsed value (None when unusable), its size in UTF-8 bytes and the problems found."""

    value: Any = None
    usable: bool = False
    size: int = 0
    problems: list[Problem] = field(default_factory=list)


class _NotJson(ValueError):
    pass


def load(source: Source) -> Loaded:
    """Parse like a strict client: UTF-8 only, no BOM, no NaN/Infinity, no trailing data."""
    if isinstance(source, bytes | bytearray):
        return _load_bytes(bytes(source))
    if isinstance(source, str):
        return _load_bytes(source.encode("utf-8", "surrogatepass"))
    try:
        raw = dumps(source)
    except (TypeError, ValueError, RecursionError) as exc:
        return Loaded(problems=[error(ROOT, f"not serialisable as JSON: {exc}")])
    # Validate what would be served: the round trip turns tuples into lists, keys into strings.
    return Loaded(value=json.loads(raw), usable=True, size=len(raw))


def _load_bytes(raw: bytes) -> Loaded:
    loaded = Loaded(size=len(raw))
    for bom, name in _BOMS.items():
        if raw.startswith(bom):
            loaded.problems.append(error(ROOT, f"starts with {name}; serve UTF-8 without a BOM"))
            raw = raw[len(bom) :] if bom == b"\xef\xbb\xbf" else raw
            break
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        loaded.problems.append(error(ROOT, f"not valid UTF-8 at byte {exc.start}"))
        return loaded
    duplicates: list[str] = []
    try:
        loaded.value = json.loads(
            text, parse_constant=_reject_constant, object_pairs_hook=_pairs_hook(duplicates)
        )
    except json.JSONDecodeError as exc:
        loaded.problems.append(
            error(ROOT, f"invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}")
        )
        return loaded
    except _NotJson as exc:
        loaded.problems.append(error(ROOT, str(exc)))
        return loaded
    except RecursionError:
        loaded.problems.append(error(ROOT, "JSON nested too deeply"))
        return loaded
    loaded.problems.extend(
        warning(ROOT, f"duplicate key {key!r}: clients may keep either value") for key in duplicates
    )
    loaded.usable = True
    return loaded


def _reject_constant(name: str) -> Any:
    raise _NotJson(f"{name} is not valid JSON")


def _pairs_hook(duplicates: list[str]) -> Any:
    def hook(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        result: dict[str, Any] = {}
        for key, value in pairs:
            if key in result:
                duplicates.append(key)
            result[key] = value
        return result

    return hook


def kind(value: Any) -> str:
    """How a JSON value is described in messages: `a string`, `an array`, `null` ..."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object" if isinstance(value, Mapping) else type(value).__name__
