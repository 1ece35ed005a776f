"""The pages' fixed material, loaded once per process: the Jinja2 environment, the message catalogs with their
translators, and the inline CSS with the Content-Security-Policy that pins its SHA-256."""

from __future__ import annotations

import base64
import functools
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2
from markupsafe import Markup, escape

import router
from router.web.branding import accent_css
from router.web.i18n import Catalog, Locale, load_catalogs, translator
from router.web.shapes import MARK

_PHRASE = "|"  # in a catalog heading: where a line may break (Japanese has no spaces; see page.css)
_NBSP_TERMS = ("Amazon Pay",)  # never split across lines


def templates_dir() -> Path:
    """Installed wheels ship ``templates/`` as ``router/templates``; a source checkout has it at the root."""
    package_dir = Path(router.__file__).resolve().parent
    installed = package_dir / "templates"
    return installed if installed.is_dir() else package_dir.parent / "templates"


@dataclass(frozen=True, slots=True)
class _Assets:
    environment: jinja2.Environment
    catalogs: Mapping[Locale, Catalog]
    css: Markup
    csp: str


def _csp(css: str) -> str:
    digest = base64.b64encode(hashlib.sha256(css.encode("utf-8")).digest()).decode("ascii")
    return "; ".join((
        "default-src 'none'",
        f"style-src 'sha256-{digest}'",
        # 'self' for the merchant's logo (served from memory); data: only for the empty favicon
        # (<link rel="icon" href="data:,">) that keeps browsers from asking for /favicon.ico.
        "img-src 'self' data:",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ))  # fmt: skip


@functools.cache
def styles(accent: str | None) -> tuple[Markup, str]:
    """The final inline CSS (the merchant's accent appended) and its CSP, computed once per accent."""
    css = str(assets().css) + (accent_css(accent) if accent else "")
    return Markup(css), _csp(css)  # noqa: S704


@functools.cache
def assets() -> _Assets:
    """Jinja2 environment, catalogs, CSS and its CSP, loaded once per process."""
    directory = templates_dir()
    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(directory),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        auto_reload=False,
    )
    css = (directory / "page.css").read_text(encoding="utf-8").strip()
    catalogs = load_catalogs(directory / "messages")
    _check_no_mark(directory, catalogs)
    return _Assets(environment, catalogs, Markup(css), _csp(css))  # noqa: S704


def _check_no_mark(directory: Path, catalogs: Mapping[Locale, Catalog]) -> None:
    """The pages' own text must not hold the shapes' placeholder mark (it would be read as a gap)."""
    texts = [(path.name, path.read_text(encoding="utf-8")) for path in sorted(directory.glob("*.*"))]
    texts += [(f"{locale}.json", "".join(catalog.values())) for locale, catalog in catalogs.items()]
    for name, text in texts:
        if MARK in text:
            raise ValueError(f"{name}: holds U+{ord(MARK):04X}, which the page shapes reserve")


def get_environment() -> jinja2.Environment:
    """The process-wide Jinja2 environment (autoescape on, strict undefined)."""
    return assets().environment


def _keep_terms(text: str) -> str:
    for term in _NBSP_TERMS:
        text = text.replace(term, term.replace(" ", "\u00a0"))
    return text


@functools.cache
def texts(locale: Locale) -> tuple[Any, Any]:
    """``t(key, **params)`` (plain text) and ``heading(key, **params)`` (Markup with ``<wbr>`` at phrase marks).

    A message without parameters is formatted once: the keys are the catalog's, so the memo stays small."""
    catalog = assets().catalogs[locale]
    plain = translator({key: message.replace(_PHRASE, "") for key, message in catalog.items()})
    plain_memo: dict[str, str] = {}
    heading_memo: dict[str, Markup] = {}

    def t(key: str, **params: object) -> str:
        if params:
            return _keep_terms(plain(key, **params))
        text = plain_memo.get(key)
        if text is None:
            text = plain_memo[key] = _keep_terms(plain(key))
        return text

    def heading(key: str, **params: object) -> Markup:
        if params:
            return _heading(key, params)
        markup = heading_memo.get(key)
        if markup is None:
            markup = heading_memo[key] = _heading(key, {})
        return markup

    def _heading(key: str, params: Mapping[str, object]) -> Markup:
        t(key, **params)  # unknown keys and parameters fail the same way as in t()
        parts = [escape(_keep_terms(part.format(**params))) for part in catalog[key].split(_PHRASE)]
        return Markup("<wbr>").join(parts)

    return t, heading
