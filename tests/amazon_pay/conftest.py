"""Fixtures for the Amazon Pay tests: RSA keys, one emulator on a real socket, a fast client."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from router.amazon_pay import AmazonPayClient, create_emulator_app, generate_key_pair
from tests.amazon_pay.helpers import LEGACY_KEY_ID, LIVE_KEY_ID, SANDBOX_KEY_ID, KeyPair, make_config
from tests.support import serve_app


@pytest.fixture(scope="session")
def keys() -> KeyPair:
    return KeyPair(*generate_key_pair())


@pytest.fixture(scope="session")
def other_keys() -> KeyPair:
    return KeyPair(*generate_key_pair())


@pytest.fixture(scope="session")
def emulator_url(keys: KeyPair) -> Iterator[str]:
    public = keys.private_key.public_key()
    app = create_emulator_app({SANDBOX_KEY_ID: public, LIVE_KEY_ID: public, LEGACY_KEY_ID: public})
    with serve_app(app) as url:
        yield url


@pytest.fixture
async def client(keys: KeyPair, emulator_url: str) -> AsyncIterator[AmazonPayClient]:
    async with AmazonPayClient(make_config(keys, emulator_url)) as amazon:
        yield amazon
