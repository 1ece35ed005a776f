"""End-to-end fixtures: the Amazon Pay emulator and return-router, each on a real socket."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from router.app import create_app
from router.config import Settings
from tests.support import serve_app
from tests.support.emulator import Emulator
from tests.support.fixtures import receiver  # noqa: F401  (fixture)
from tests.support.routers import Router, load_settings


@pytest.fixture
def make_settings(tmp_path: Path, emulator: Emulator, key_files: tuple[Path, Path]) -> Callable[..., Settings]:
    def make(extra: str = "", db: str | None = None, region: str = "us") -> Settings:
        return load_settings(tmp_path / "router.toml", emulator.url, key_files[0],
                             db or f"sqlite:///{tmp_path}/rr.db", extra=extra, region=region)
    return make


@pytest.fixture
def router(make_settings: Callable[..., Settings]) -> Iterator[Router]:
    with serve_app(create_app(make_settings(), background=False)) as url:
        yield Router(url)


@pytest.fixture
def jp_router(make_settings: Callable[..., Settings], tmp_path: Path) -> Iterator[Router]:
    """A merchant of Amazon Pay Japan: the API takes JPY only. Its own database, beside `router`'s."""
    settings = make_settings(region="jp", db=f"sqlite:///{tmp_path}/rr-jp.db")
    with serve_app(create_app(settings, background=False)) as url:
        yield Router(url)
