"""Fixtures shared by every test area."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import pytest_asyncio
from hypothesis import settings
from playwright.async_api import Browser, async_playwright

from router.amazon_pay import generate_key_pair
from tests.support.emulator import Emulator, serve_emulator

# No per-example time limit: hypothesis's 200 ms default is a timed assertion, and on these 2-core machines
# under `make test`'s parallel load an example of a pure function took longer (test_same_site_links failed
# once so). Speed is measured in `make bench`; a test here checks only what the code does.
settings.register_profile("return-router", deadline=None)
settings.load_profile("return-router")

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def browser() -> AsyncIterator[Browser]:
    """One real headless Chromium (Debian's package) for the whole run; never a downloaded browser."""
    if not CHROMIUM.exists():
        pytest.skip(f"no Chromium at {CHROMIUM}: install Debian's chromium package to run browser tests")
    async with async_playwright() as playwright:
        chromium = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        await chromium.close()


@pytest.fixture(scope="session")
def key_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """An RSA key pair on disk (private.pem, public.pem): the merchant's Amazon Pay key in tests."""
    directory = tmp_path_factory.mktemp("keys")
    private_pem, public_pem = generate_key_pair()
    (directory / "private.pem").write_bytes(private_pem)
    (directory / "public.pem").write_bytes(public_pem)
    return directory / "private.pem", directory / "public.pem"


@pytest.fixture
def emulator(key_files: tuple[Path, Path]) -> Iterator[Emulator]:
    """The Amazon Pay emulator on a real socket in this process, knowing the merchant's key as KEY_ID."""
    with serve_emulator(key_files[1]) as served:
        yield served
