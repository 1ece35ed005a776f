"""Locale choice and message catalogs (flat JSON files, one per locale; no Babel).

Catalog strings are trusted project files; parameters are formatted in as plain text and escaped by
Jinja2's autoescape when the result is written into a page.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Literal, TypeGuard

Locale = Literal["en", "ja"]
LOCALES: tuple[Locale, ...] = ("en", "ja")
DEFAULT_LOCALE: Locale = "en"

# Browsers send a handful of entries; a longer header is noise or abuse and is cut.
_MAX_HEADER_LENGTH = 1024
_MAX_ENTRIES = 32
# Browsers send few distinct headers; any stranger can send endless ones, so the memo of answers is bounded.
_CACHED_HEADERS = 256

Catalog = Mapping[str, str]
Translator = Callable[..., str]


def is_locale(value: str) -> TypeGuard[Locale]:
    return value in LOCALES


def _primary(tag: str) -> str:
    """``"ja-JP"`` → ``"ja"``; ``"EN_us"`` → ``"en"``."""
    return tag.strip().replace("_", "-").split("-", 1)[0].lower()


def _quality(params: list[str]) -> float | None:
    """The q-value of one Accept-Language entry; ``None`` when it is malformed."""
    for param in params:
        name, _, value = param.partition("=")
        if name.strip().lower() == "q":
            try:
                q = float(value.strip())
            except ValueError:
                return None
            return q if 0.0 <= q <= 1.0 else None
    return 1.0


def _ranked_languages(accept_language: str) -> list[str]:
    """Primary language subtags of an Accept-Language header, best first (ties keep header order)."""
    ranked: list[tuple[float, int, str]] = []
    entries = accept_language[:_MAX_HEADER_LENGTH].split(",")[:_MAX_ENTRIES]
    for index, entry in enumerate(entries):
        tag, *params = entry.split(";")
        q = _quality(params)
        if not tag.strip() or q is None or q == 0.0:
            continue
        ranked.append((-q, index, _primary(tag)))
    return [tag for _, _, tag in sorted(ranked)]


def detect_locale(accept_language: str | None, lang_param: str | None) -> Locale:
    """``?lang=`` wins when it names a supported locale; then Accept-Language by q-value; else English."""
    if lang_param:
        chosen = _primary(lang_param[:35])
        if is_locale(chosen):
            return chosen
    if not accept_language:
        return DEFAULT_LOCALE
    return _header_locale(accept_language[:_MAX_HEADER_LENGTH])  # only this much is read: the memo's key


@functools.lru_cache(maxsize=_CACHED_HEADERS)
def _header_locale(accept_language: str) -> Locale:
    for tag in _ranked_languages(accept_language):
        if tag == "*":
            return DEFAULT_LOCALE
        if is_locale(tag):
            return tag
    return DEFAULT_LOCALE


def load_catalog(path: Path) -> Catalog:
    """Read one catalog file; anything but a flat JSON object of strings is a clear error."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ValueError(f"message catalog {path}: cannot read: {exc}") from exc
    if not isinstance(data, dict):
        raise ValueError(f"message catalog {path}: expected a JSON object")
    for key, value in data.items():
        if not isinstance(value, str):
            raise ValueError(f"message catalog {path}: value of {key!r} is not a string")
    return MappingProxyType(data)


def load_catalogs(directory: Path) -> Mapping[Locale, Catalog]:
    """All locales' catalogs from ``<directory>/<locale>.json``."""
    return MappingProxyType({locale: load_catalog(directory / f"{locale}.json") for locale in LOCALES})


def translator(catalog: Catalog) -> Translator:
    """``t(key, **params)`` for one catalog. An unknown key is a programming error and raises KeyError."""

    def t(key: str, **params: object) -> str:
        try:
            message = catalog[key]
        except KeyError:
            raise KeyError(f"no message {key!r} in catalog") from None
        return message.format(**params)

    return t
