"""Exactly once across instances: 50 concurrent returns for one session reach Amazon once."""

from __future__ import annotations

from typing import Any

import httpx

from tests.support.concurrency import storm
from tests.support.config import HOST
from tests.support.emulator import Emulator
from tests.support.processes import Launcher, RouterProcess, page_kind, return_path
from tests.support.stores import stored_checkout

Request = tuple[str, str, dict[str, Any]]

CALLERS = 50


def returns_for(routers: list[RouterProcess], ref: str, session_id: str) -> list[Request]:
    """50 requests spread over the routers, alternating the browser return and the app API finalize."""
    requests: list[Request] = []
    for i in range(CALLERS):
        router = routers[i % len(routers)]
        if (i // len(routers)) % 2 == 0:
            requests.append(("GET", router.url + return_path(ref, session_id), {"headers": {"host": HOST}}))
        else:
            url = f"{router.url}/v1/checkout-sessions/{session_id}/finalize"
            requests.append(("POST", url, {"json": {"ref": ref}}))
    return requests


def assert_one_final_state(answers: list[httpx.Response]) -> None:
    pages = [a for a in answers if a.request.method == "GET"]
    api = [a for a in answers if a.request.method == "POST"]
    assert pages and api
    assert {(a.status_code, page_kind(a)) for a in pages} == {(200, "success")}, \
        {(a.status_code, page_kind(a)) for a in pages}
    assert {a.status_code for a in api} == {200}
    assert len({a.text for a in api}) == 1  # byte-identical answers: one stored result
    assert api[0].json()["state"] == "completed" and api[0].json()["chargeId"]


def assert_exactly_once(emulator: Emulator, session_id: str, db_url: str, ref: str) -> None:
    finalizes = emulator.requests("finalizeCheckoutSession", session_id)
    assert len(finalizes) == 1, finalizes
    assert len(emulator.charges(session_id)) == 1
    stored = stored_checkout(db_url, ref)
    assert stored.state == "completed" and stored.lease_owner is None
    assert stored.charge_id == emulator.charges(session_id)[0].charge_id


def test_two_instances_on_postgres(launch: Launcher, emulator: Emulator, pg_url: str) -> None:
    routers = [launch(pg_url, name="a"), launch(pg_url, name="b")]
    ref = routers[0].register()
    session_id = emulator.create_session(latency_ms=300)  # a slow Amazon keeps the race open longer
    answers = storm(returns_for(routers, ref, session_id))
    assert_one_final_state(answers)
    assert_exactly_once(emulator, session_id, pg_url, ref)
    assert routers[1].checkout(ref)["state"] == "completed"  # and both instances read the same row


def test_two_workers_on_one_sqlite_file(launch: Launcher, emulator: Emulator, sqlite_url: str) -> None:
    router = launch(sqlite_url, workers=2)
    ref = router.register()
    session_id = emulator.create_session(latency_ms=300)
    answers = storm(returns_for([router], ref, session_id))
    assert_one_final_state(answers)
    assert_exactly_once(emulator, session_id, sqlite_url, ref)
