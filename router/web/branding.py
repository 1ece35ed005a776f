"""The merchant's branding for the buyer pages ([pages] in the config): logo, accent colour, support, links. Pure.

The logo is read once at load and kept in memory: the pages serve it from their own origin, so the
CSP keeps ``img-src 'self'`` and no buyer request ever leaves for a third-party host.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from router.validators import url_problem

LOGO_PATH = "/_return-router/logo"  # fixed; a ?v=<etag> query makes a changed logo a new URL
LOGO_MAX_BYTES = 256 * 1024
_HEX = re.compile(r"#([0-9a-fA-F]{3}|[0-9a-fA-F]{6})", re.ASCII)
_EMAIL = re.compile(r"[^@\s<>\"]{1,64}@[A-Za-z0-9.-]{1,253}\.[A-Za-z]{2,63}", re.ASCII)
_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@dataclass(frozen=True, slots=True)
class Logo:
    content: bytes = field(repr=False)
    media_type: str  # image/png or image/svg+xml

    @property
    def etag(self) -> str:
        return '"' + hashlib.sha256(self.content).hexdigest()[:32] + '"'

    @property
    def url(self) -> str:
        return f"{LOGO_PATH}?v={self.etag.strip(chr(34))[:12]}"


@dataclass(frozen=True, slots=True)
class PagesSettings:
    KEYS: ClassVar[set[str]] = {"logo_file", "accent_color", "support_url", "support_email",
                                "continue_shopping_url", "retry_url"}
    logo: Logo | None = None
    accent_color: str | None = None  # "#rrggbb", lower case
    support_url: str | None = None
    support_email: str | None = None
    continue_shopping_url: str | None = None  # after a payment; falls back to [merchant] shop_url
    retry_url: str | None = None  # after a decline, a cancel or an expiry; falls back to shop_url


def logo_from_bytes(content: bytes, name: str) -> Logo:
    """A PNG or SVG logo; ValueError saying what is wrong otherwise."""
    if len(content) > LOGO_MAX_BYTES:
        raise ValueError(f"is {len(content)} bytes, over the limit of {LOGO_MAX_BYTES}")
    if content.startswith(_PNG_MAGIC):
        return Logo(content, "image/png")
    head = content[:2048].decode("utf-8", "replace").lower()
    if name.lower().endswith(".svg") and "<svg" in head:
        if "<!entity" in content.decode("utf-8", "replace").lower():
            raise ValueError("is an SVG with entity declarations (not allowed)")
        return Logo(content, "image/svg+xml")
    raise ValueError("must be a PNG or an SVG (.svg) image")


def normalize_hex(value: str) -> str:
    """``"#0A5"`` → ``"#00aa55"``; ValueError when it is not a #rgb / #rrggbb colour."""
    if not _HEX.fullmatch(value):
        raise ValueError(f"{value[:20]!r} is not a hex colour like \"#0a58b0\"")
    digits = value[1:].lower()
    return "#" + ("".join(c * 2 for c in digits) if len(digits) == 3 else digits)


def read_pages(section: Mapping[str, Any], base_dir: Path, fail: Callable[[str, str], None]) -> PagesSettings:
    """[pages] from the TOML table; each problem goes to ``fail(key, message)``."""
    values: dict[str, Any] = {}
    for key in PagesSettings.KEYS:
        value = section.get(key)
        if value is not None and not isinstance(value, str):
            fail(f"pages.{key}", "must be a string")
        elif value is not None:
            values[key] = value
    urls = {k: v for k, v in values.items() if k.endswith("_url")}
    for key, value in urls.items():
        problem = url_problem(value)  # links a buyer follows: absolute https, like every configured link
        if problem is not None:
            fail(f"pages.{key}", problem)
            urls[key] = None
    email = values.get("support_email")
    if email is not None and not _EMAIL.fullmatch(email):
        fail("pages.support_email", f"{email[:60]!r} is not an email address")
        email = None
    accent = None
    if "accent_color" in values:
        try:
            accent = normalize_hex(values["accent_color"])
        except ValueError as exc:
            fail("pages.accent_color", str(exc))
    logo = None
    if "logo_file" in values:
        try:
            logo = logo_from_bytes((base_dir / values["logo_file"]).read_bytes(), values["logo_file"])
        except OSError as exc:
            fail("pages.logo_file", f"cannot read {values['logo_file']}: {exc.strerror}")
        except ValueError as exc:
            fail("pages.logo_file", f"{values['logo_file']} {exc}")
    return PagesSettings(logo=logo, accent_color=accent, support_email=email, **urls)


# ---------------------------------------------------------------- accent colour → CSS


def _rgb(color: str) -> tuple[float, float, float]:
    return int(color[1:3], 16) / 255, int(color[3:5], 16) / 255, int(color[5:7], 16) / 255


def _luminance(color: str) -> float:
    def linear(c: float) -> float:
        return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (linear(c) for c in _rgb(color))
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast(a: str, b: str) -> float:
    """WCAG contrast ratio of two #rrggbb colours (1..21)."""
    high, low = sorted((_luminance(a), _luminance(b)), reverse=True)
    return (high + 0.05) / (low + 0.05)


def _mix(color: str, toward: str, share: float) -> str:
    mixed = (round((c * (1 - share) + t * share) * 255) for c, t in zip(_rgb(color), _rgb(toward), strict=True))
    return "#" + "".join(f"{c:02x}" for c in mixed)


def readable(color: str, background: str, minimum: float = 4.5) -> str:
    """``color``, darkened or lightened just enough to be read as text on ``background``."""
    toward = "#000000" if _luminance(background) > 0.5 else "#ffffff"
    for step in range(11):
        candidate = _mix(color, toward, step / 10)
        if contrast(candidate, background) >= minimum:
            return candidate
    return toward


def accent_css(accent: str) -> str:
    """CSS custom properties that put the merchant's accent on buttons and links, readable in both schemes."""
    on_accent = "#ffffff" if contrast(accent, "#ffffff") >= contrast(accent, "#111111") else "#111111"
    light = f"--accent:{accent};--on-accent:{on_accent};--accent-text:{readable(accent, '#ffffff')}"
    dark = f"--accent:{accent};--on-accent:{on_accent};--accent-text:{readable(accent, '#1a1e23')}"
    return f":root{{{light}}}@media (prefers-color-scheme:dark){{:root{{{dark}}}}}"
