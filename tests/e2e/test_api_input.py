"""Text and JSON the merchant API refuses before anything is stored, on SQLite and PostgreSQL, over a socket."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import AsyncIterator, Callable

import asyncpg
import httpx
import pytest

from router.app import create_app
from router.config import Settings
from tests.support import serve_app
from tests.support.config import AUTH
from tests.support.stores import PG_DSN, Backend, backend  # noqa: F401  (fixture)

JSON = {**AUTH, "content-type": "application/json"}
MONEY = b'"chargeAmount":{"amount":"14.00","currencyCode":"USD"},"paymentIntent":"Confirm"'


def body(*fields: bytes) -> bytes:
    return b"{" + b",".join((MONEY, *fields)) + b"}"


async def checkouts(db: Backend) -> int:
    if db.name == "sqlite":
        with contextlib.closing(sqlite3.connect(db.url.removeprefix("sqlite:///"))) as conn:
            return int(conn.execute("SELECT count(*) FROM checkouts").fetchone()[0])
    conn = await asyncpg.connect(PG_DSN, server_settings={"search_path": str(db.schema)})
    try:
        return int(await conn.fetchval("SELECT count(*) FROM checkouts"))
    finally:
        await conn.close()


@pytest.fixture
async def api(make_settings: Callable[..., Settings], backend: Backend  # noqa: F811
              ) -> AsyncIterator[tuple[httpx.AsyncClient, Backend]]:
    with serve_app(create_app(make_settings(db=backend.url), background=False)) as url:
        async with httpx.AsyncClient(base_url=url, headers=JSON) as client:
            yield client, backend


@pytest.mark.parametrize(("fields", "code"), [
    # NUL: a PostgreSQL text cannot hold it; a lone surrogate has no UTF-8 form (the store raised: a 500)
    ((b'"merchantReference":"o-1"', b'"supplementaryData":"x\\u0000y"'), "invalid_field"),
    ((b'"merchantReference":"o-1"', b'"supplementaryData":"\\ud800"'), "invalid_field"),
    ((b'"merchantReference":"o-1"', b'"supplementaryData":"\\udfff x"'), "invalid_field"),
    ((b'"merchantReference":"o\\u0000"',), "invalid_merchant_reference"),
    ((b'"merchantReference":"o\\ud800"',), "invalid_merchant_reference"),
    ((b'"merchantReference":"o\\u001b[2J"',), "invalid_merchant_reference"),
    ((b'"merchantReference":"o-1"', b'"\\ud800":1'), "unknown_field"),  # echoed, escaped: no 500
])
async def test_text_no_store_can_hold_is_refused(api: tuple[httpx.AsyncClient, Backend], fields: tuple[bytes, ...],
                                                 code: str) -> None:
    client, db = api
    answer = await client.post("/v1/checkouts", content=body(*fields))
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"]["code"] == code
    assert await checkouts(db) == 0


async def test_free_text_keeps_its_line_breaks_and_tabs(api: tuple[httpx.AsyncClient, Backend]) -> None:
    client, db = api
    supplementary = b'"supplementaryData":"{\\n\\t\\"a\\": \\"\xc3\xa9\\"\\n}"'  # pretty-printed JSON
    answer = await client.post("/v1/checkouts", content=body(b'"merchantReference":"o-1"', supplementary))
    assert answer.status_code == 201, answer.text
    assert await checkouts(db) == 1


@pytest.mark.parametrize("raw", [
    b'{"merchantReference":"a","merchantReference":"b",' + MONEY + b"}",
    b'{"merchantReference":"a","chargeAmount":{"amount":"1.00","currencyCode":"USD","currencyCode":"JPY"},'
    b'"paymentIntent":"Confirm"}',
    b'{"merchantReference":"a",' + MONEY + b',"x":[{"k":{"d":1,"d":2}}]}',  # deeper than any field we read
])
async def test_a_key_twice_in_one_object_is_refused(api: tuple[httpx.AsyncClient, Backend], raw: bytes) -> None:
    client, db = api
    answer = await client.post("/v1/checkouts", content=raw)
    assert answer.status_code == 400 and answer.json()["error"]["code"] == "invalid_json", answer.text
    assert "repeats the key" in answer.json()["error"]["message"]
    assert await checkouts(db) == 0
    finalize = await client.post("/v1/checkout-sessions/abcdefgh12345/finalize", content=b'{"ref":"a","ref":"b"}')
    assert finalize.status_code == 400 and finalize.json()["error"]["code"] == "invalid_json"


async def test_a_currency_code_must_be_ascii(api: tuple[httpx.AsyncClient, Backend]) -> None:
    client, db = api
    raw = '{"merchantReference":"a","chargeAmount":{"amount":"1","currencyCode":"uſd"},"paymentIntent":"Confirm"}'
    answer = await client.post("/v1/checkouts", content=raw.encode())  # "ſ".upper() == "S"
    assert answer.status_code == 400 and answer.json()["error"]["code"] == "invalid_amount", answer.text
    assert await checkouts(db) == 0
