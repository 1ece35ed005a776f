"""A burst of buyers above Amazon's finalize quota, against an emulator that throttles like Amazon.

A real router process with the Sandbox quotas (finalize: burst 2, 1 per second), the emulator with the
same buckets answering 429 TooManyRequests beyond them, and abandoned checkouts that the reconciler
resumes at the same time. No buyer gets a 5xx other than 503 (the unavailable page, or the API's 503
with Retry-After); whoever waited or was told to retry gets the success page on reload; every session
is finalized exactly once, the background resumes included.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from router.amazon_pay import create_emulator_app
from router.amazon_pay.keys import load_public_key
from tests.support import serve_app, wait_until
from tests.support.concurrency import storm
from tests.support.config import HOST, KEY_ID
from tests.support.emulator import Emulator
from tests.support.processes import Launcher, page_kind, return_path
from tests.support.stores import stored_checkout, with_store

BUYERS = 8
ABANDONED = 3


@pytest.fixture
def throttling(key_files: tuple[Path, Path]) -> Iterator[Emulator]:
    app = create_emulator_app({KEY_ID: load_public_key(key_files[1].read_bytes())}, throttle=True)
    with serve_app(app) as url:
        yield Emulator(url, app.state.emulator)


def answer_ok(answer: httpx.Response) -> bool:
    if answer.request.method == "GET":
        if answer.status_code == 503:
            return page_kind(answer) == "unavailable" and "retry-after" in answer.headers
        return answer.status_code == 200 and page_kind(answer) == "success"
    if answer.status_code == 503:
        return answer.json()["error"]["code"] == "amazon_unavailable" and "retry-after" in answer.headers
    return answer.status_code == 200 and answer.json()["state"] == "completed"


def test_a_burst_above_the_finalize_quota_gets_no_5xx(
    tmp_path: Path, throttling: Emulator, key_files: tuple[Path, Path], sqlite_url: str
) -> None:
    launch = Launcher(tmp_path, throttling, key_files[0])
    try:
        router = launch(sqlite_url, resume_after=1.0)
        abandoned = [(router.register(reference=f"abandoned-{i}"), throttling.create_session())
                     for i in range(ABANDONED)]
        buyers = [(router.register(reference=f"buyer-{i}"), throttling.create_session()) for i in range(BUYERS)]
        for ref, session_id in abandoned:  # bound, holder gone: due for a background resume during the burst
            with_store(sqlite_url, lambda store, r=ref, s=session_id: store.bind_session(r, s, time.time()))
        requests: list[tuple[str, str, dict[str, Any]]] = []
        for i, (ref, session_id) in enumerate(buyers):
            if i % 2 == 0:
                requests.append(("GET", router.url + return_path(ref, session_id), {"headers": {"host": HOST}}))
            else:
                requests.append(("POST", f"{router.url}/v1/checkout-sessions/{session_id}/finalize",
                                 {"json": {"ref": ref}}))
        answers = storm(requests)
        assert all(answer_ok(a) for a in answers), [(a.status_code, page_kind(a) or a.text[:80]) for a in answers]
        assert sum(a.status_code == 200 for a in answers) >= 2  # Amazon's burst, at least
        for (ref, session_id), answer in zip(buyers, answers, strict=True):
            if answer.status_code == 503:  # told to come back: the reload is paid
                wait_until(lambda r=ref, s=session_id: router.buyer_return(r, s).status_code == 200,
                           "the reload to succeed", timeout=60, step=1.0)
        for ref, _ in abandoned:
            wait_until(lambda r=ref: stored_checkout(sqlite_url, r).state == "completed",
                       "the background resume", timeout=60, step=0.5)
    finally:
        launch.close()
    for ref, session_id in buyers + abandoned:
        done = [e for e in throttling.requests("finalizeCheckoutSession", session_id) if e["status"] == 200]
        assert len(done) == 1, throttling.requests("finalizeCheckoutSession", session_id)
        assert stored_checkout(sqlite_url, ref).state == "completed"
