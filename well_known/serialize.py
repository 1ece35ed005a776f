"""Byte-exact serialisation of association files."""

from __future__ import annotations

import json
from typing import Any


def dumps(doc: Any) -> bytes:
    """Compact UTF-8 JSON without BOM or trailing newline, keys in insertion order.

    The builders insert keys in a fixed order, so the same input always gives the same bytes
    (stable ETags, byte-identical files on every host). NaN/Infinity are refused: not JSON.
    """
    text = json.dumps(doc, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    return text.encode("utf-8")
