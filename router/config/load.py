"""TOML file → validated, frozen settings. Every problem names the file and the key.

Loading collects every problem before failing, so an operator fixes a config in one pass; a bad
config never starts a half-working server.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

from router.config import sections
from router.config.reader import Problems, Section
from router.config.settings import AmazonPaySettings, ConfigError, Settings, TracingSettings, aasa_for
from router.ops.settings import OpsSettings
from router.web.branding import PagesSettings, read_pages
from well_known import dumps

AASA_MAX_BYTES = 128 * 1024
T = TypeVar("T")


def load(path: str | os.PathLike[str], env: Mapping[str, str] | None = None, *, offline: bool = False) -> Settings:
    """Read and validate a config file; raise ConfigError listing every problem.

    `offline` skips the secrets (environment variables, the private key file): for CI without them.
    """
    name = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([f"{name}: cannot read the file: {exc}"]) from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([f"{name}: TOML syntax error: {exc}"]) from None
    base = Path(path).resolve().parent
    return parse(data, source=name, env=os.environ if env is None else env, base_dir=base, offline=offline)


def parse(data: Mapping[str, Any], *, source: str, env: Mapping[str, str], base_dir: Path,
          offline: bool = False) -> Settings:
    problems = Problems(source, env, offline=offline, base_dir=base_dir)
    root = Section(problems, "", data)
    settings = _settings(root, base_dir)
    root.done()
    if settings.ios is not None and settings.routes and not problems.lines:  # needs valid app ids and routes
        _check_aasa_sizes(root, settings)
    if problems.lines:
        raise ConfigError(problems.lines)
    return settings


def _settings(root: Section, base_dir: Path) -> Settings:
    ios_section, android_section = root.section("ios"), root.section("android")
    ios = sections.ios(ios_section) if ios_section else None
    android = sections.android(android_section) if android_section else None
    for section in (ios_section, android_section):
        if section is not None:
            section.done()
    if not (root.has("ios") or root.has("android")):
        root.fail("ios", "configure [ios] or [android] (or both): the apps the return URLs open")
    limits, graceful = _table(root, "server", sections.server)
    return Settings(
        routes=tuple(sections.routes(root, ios)),
        ios=ios,
        android=android,
        amazon_pay=_amazon_pay(root, base_dir),
        merchant=_table(root, "merchant", sections.merchant),
        storage=_table(root, "storage", lambda s: sections.storage(s, base_dir)),
        checkout=_table(root, "checkout", sections.checkout),
        ops=OpsSettings(_table(root, "metrics", sections.metrics_listen), graceful),
        server=limits,
        pages=_pages(root, base_dir),
        tracing=_tracing(root),
        source=root.problems.source,
    )


def _table(root: Section, name: str, read: Callable[[Section], T]) -> T:
    """A section whose keys all have defaults: read as empty when absent."""
    section = root.section(name) or Section(root.problems, name, {})
    value = read(section)
    section.done()
    return value


def _tracing(root: Section) -> TracingSettings | None:
    """[tracing], or None (no traces) when the section is absent."""
    section = root.section("tracing")
    if section is None:
        return None
    value = sections.tracing(section)
    section.done()
    return value


def _pages(root: Section, base_dir: Path) -> PagesSettings:
    """[pages]: read by router.web.branding (the logo is loaded here, once)."""
    section = root.section("pages") or Section(root.problems, "pages", {})
    for key in sorted(PagesSettings.KEYS):
        section.has(key)  # the allowed keys
    pages = read_pages(section.table, base_dir, root.problems.add)
    section.done()
    return pages


def _amazon_pay(root: Section, base_dir: Path) -> AmazonPaySettings | None:
    """The real Amazon Pay, or None for the built-in emulator: only when the config says so."""
    section = root.section("amazon_pay")
    if section is None:
        if not root.has("amazon_pay"):
            root.fail("amazon_pay", sections.MISSING_AMAZON_PAY)
        return None
    if section.bool_("emulator", False):
        for other in sorted(set(section.table) - {"emulator"}):
            section.fail(other, "is not used with emulator = true (the built-in emulator answers)")
        return None
    value = sections.amazon_pay(section, base_dir)
    section.done()
    return value


def _check_aasa_sizes(root: Section, settings: Settings) -> None:
    assert settings.ios is not None
    table = settings.route_table
    for pattern in sorted({r.host for r in settings.routes}):
        probe = pattern.replace("*.", "x.") if pattern != "*" else "any.invalid"
        size = len(dumps(aasa_for(settings.ios, table.paths_for_host(probe))))
        if size > AASA_MAX_BYTES:
            root.fail("routes", f"the apple-app-site-association for {pattern} would be {size} bytes,"
                      f" over Apple's limit of {AASA_MAX_BYTES}")

