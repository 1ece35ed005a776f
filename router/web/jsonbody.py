"""What a JSON request body must be: the media type, a bounded nesting depth, each key once per object. Pure."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

# Integers longer than this are read as Decimal: int() refuses over 4,300 digits (sys.get_int_max_str_digits),
# which json.loads reports as invalid JSON, and costs quadratic time below that. No field takes one this long.
MAX_INT_DIGITS = 64
MAX_DEPTH = 32  # our bodies nest 2 levels; json.loads recurses once per level and fails near 1,000
_OPEN, _CLOSE, _QUOTE, _BACKSLASH = frozenset(b"[{"), frozenset(b"]}"), ord('"'), ord("\\")


def is_json(content_type: str | None) -> bool:
    """The header's media type (before any parameter) is application/json, in any letter case.

    ``application/json; charset=utf-8`` and ``APPLICATION/JSON`` are JSON; ``text/plain;
    application/json`` and ``application/jsonp`` are not.
    """
    media_type = (content_type or "").split(";", 1)[0]
    return media_type.strip().lower() == "application/json"


def nesting_depth(raw: bytes, limit: int = MAX_DEPTH) -> int:
    """The deepest array/object nesting in ``raw`` (strings skipped), counting stops past ``limit``.

    Run before json.loads, which would otherwise raise RecursionError on ``[`` × 2000.
    """
    depth = deepest = 0
    in_string = escaped = False
    for byte in raw:
        if in_string:
            if escaped:
                escaped = False
            elif byte == _BACKSLASH:
                escaped = True
            elif byte == _QUOTE:
                in_string = False
        elif byte == _QUOTE:
            in_string = True
        elif byte in _OPEN:
            depth += 1
            if depth > deepest:
                deepest = depth
                if deepest > limit:
                    break
        elif byte in _CLOSE:
            depth -= 1
    return deepest


class DuplicateKey(ValueError):
    """A key that appears twice in one JSON object."""

    def __init__(self, key: str) -> None:
        super().__init__(f"duplicate key {key!r}")
        self.key = key


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) < len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise DuplicateKey(key)
            seen.add(key)
    return obj


def _integer(text: str) -> int | Decimal:
    return int(text) if len(text) <= MAX_INT_DIGITS else Decimal(text)


def loads(raw: bytes) -> Any:
    """json.loads, but a key twice in any object, at any depth, raises DuplicateKey.

    json.loads keeps the last value silently, so `{"currencyCode": "USD", "currencyCode": "JPY"}`
    would mean whatever the parser the merchant tested with happened to keep. A very long integer is a
    Decimal (MAX_INT_DIGITS), so the field's own check refuses it; 1e999 is already float("inf").
    """
    return json.loads(raw, object_pairs_hook=_unique_keys, parse_int=_integer)
