"""The front door answers the association paths exactly as the layers behind it do, or leaves them to those layers."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from router.app import create_app
from router.config import load
from router.ops.reload import ConfigHolder
from router.web.front import FrontDoor
from tests.support.config import BASE_CONFIG

AASA, ASSETLINKS = "/.well-known/apple-app-site-association", "/.well-known/assetlinks.json"
Headers = list[tuple[bytes, bytes]]


def call(app: Any, path: str, headers: Headers, method: str = "GET") -> tuple[int, Headers, bytes]:
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method, "scheme": "http",
             "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "", "headers": headers,
             "client": ("127.0.0.1", 5000), "server": ("127.0.0.1", 80), "state": {}}
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    return sent[0]["status"], list(sent[0]["headers"]), b"".join(m.get("body", b"") for m in sent[1:])


class Counting:
    def __init__(self, app: Any) -> None:
        self.app, self.calls = app, 0

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        self.calls += 1
        await self.app(scope, receive, send)


@pytest.fixture
def apps(write_config: Callable[[str], Path], tmp_path: Path) -> tuple[Any, FrontDoor, Counting, list[Any]]:
    path = write_config(BASE_CONFIG + f'\n[storage]\nurl = "sqlite:///{tmp_path}/rr.db"\n')
    layers = create_app(load(path, env={}), background=False)
    holder: ConfigHolder = layers.state.config
    behind = Counting(layers)
    notes: list[Any] = []
    front = FrontDoor(behind, lambda: holder.settings, lambda *args: notes.append(args))
    return layers, front, behind, notes


def without_request_id(headers: Headers) -> Headers:
    return [(k, v) for k, v in headers if k != b"x-request-id"]


HOST = (b"host", b"pay.example.com")
ANSWERED = [
    ("GET", AASA, [HOST]),
    ("HEAD", AASA, [HOST, (b"user-agent", b"AASA-Bot/1.0.0")]),
    ("GET", ASSETLINKS, [HOST]),
    ("GET", "/apple-app-site-association", [(b"host", b"PAY.EXAMPLE.COM")]),
    ("GET", AASA, [(b"host", b"Pay.Example.Com.:443")]),
    ("GET", AASA, [(b"host", b"other.example.com")]),  # 404
    ("GET", ASSETLINKS, []),  # no Host: 404
    ("POST", AASA, [HOST]),  # 405
    ("GET", AASA, [HOST, (b"if-none-match", b'W/"nope", *')]),  # 304
    ("GET", AASA, [HOST, (b"if-none-match", b'"nope"')]),
]


@pytest.mark.parametrize(("method", "path", "headers"), ANSWERED)
def test_the_same_answer_without_the_layers(apps: Any, method: str, path: str, headers: Headers) -> None:
    layers, front, behind, notes = apps
    expected = call(layers, path, headers, method)
    got = call(front, path, headers, method)
    assert behind.calls == 0, "the front door left it to the layers"
    assert got[0] == expected[0] and got[2] == expected[2]
    assert without_request_id(got[1]) == without_request_id(expected[1])
    assert [k for k, _ in got[1]][-1] == b"x-request-id"
    assert len(notes) == 1 and notes[0][1] == expected[0]  # the access log hears of it


def test_an_etag_revalidates(apps: Any) -> None:
    layers, front, _, _ = apps
    etag = dict(call(layers, AASA, [HOST])[1])[b"etag"]
    assert call(front, AASA, [HOST, (b"if-none-match", etag)])[0] == 304


def test_a_valid_incoming_request_id_is_kept_the_first_one(apps: Any) -> None:
    layers, front, _, _ = apps
    headers = [HOST, (b"x-request-id", b"edge-1"), (b"x-request-id", b"edge-2")]
    assert call(front, AASA, headers)[1] == call(layers, AASA, headers)[1]
    assert dict(call(front, AASA, [HOST, (b"x-request-id", b"bad id")])[1])[b"x-request-id"] != b"bad id"


REFUSED = [
    [HOST, HOST],
    [(b"host", b"pay.example.com:abc")],
    [HOST, *((b"x-%d" % i, b"v") for i in range(120))],
    [HOST, (b"x-big", b"a" * 20_000)],
]


@pytest.mark.parametrize("headers", REFUSED, ids=["two hosts", "bad host", "many headers", "big header"])
def test_what_the_guard_refuses_goes_to_the_layers(apps: Any, headers: Headers) -> None:
    layers, front, behind, notes = apps
    expected = call(layers, AASA, headers)
    got = call(front, AASA, headers)
    assert behind.calls == 1 and notes == []
    assert got[0] == expected[0] and got[0] in (400, 431)


@pytest.mark.parametrize("extra", [0, 1])
def test_the_head_size_limit_is_the_guards(apps: Any, extra: int) -> None:
    layers, front, _, _ = apps
    base = call(layers, AASA, [HOST, (b"x-pad", b"")])  # find the padding that lands exactly on the limit
    assert base[0] == 200
    size = len(AASA) + 1 + len(b"host") + len(b"pay.example.com") + 4 + len(b"x-pad") + 4
    pad = b"a" * (16 * 1024 - size + extra)
    headers = [HOST, (b"x-pad", pad)]
    assert call(front, AASA, headers)[0] == call(layers, AASA, headers)[0] == (200 if extra == 0 else 431)


def test_a_reload_reaches_the_front_door(apps: Any, write_config: Callable[[str], Path], tmp_path: Path) -> None:
    layers, front, _, _ = apps
    before = call(front, AASA, [HOST])[2]
    write_config(BASE_CONFIG.replace("ABCDE12345.com.example.shop", "ZYXWV54321.com.example.shop")
                 + f'\n[storage]\nurl = "sqlite:///{tmp_path}/rr.db"\n')
    assert layers.state.config.reload()
    after = call(front, AASA, [HOST])
    assert after[2] != before and b"ZYXWV54321" in after[2]
    assert after[2] == call(layers, AASA, [HOST])[2]


def test_a_remembered_answer_gets_its_own_request_id_and_still_revalidates(apps: Any) -> None:
    layers, front, behind, _ = apps
    first, second = call(front, AASA, [HOST]), call(front, AASA, [HOST])
    assert without_request_id(first[1]) == without_request_id(second[1]) == without_request_id(
        call(layers, AASA, [HOST])[1])
    assert dict(first[1])[b"x-request-id"] != dict(second[1])[b"x-request-id"]
    assert [k for k, _ in second[1]].count(b"x-request-id") == 1  # the remembered head was not appended to
    etag = dict(first[1])[b"etag"]
    assert call(front, AASA, [HOST, (b"if-none-match", etag)])[0] == 304
    assert call(front, AASA, [HOST])[0] == 200 and behind.calls == 0
