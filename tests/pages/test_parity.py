"""The pages' bytes do not change: every case of tests/pages/parity.py against the golden file written by the
code before it was optimised, in any order (no cache may carry one request's page into another's), in-process
and over a real socket."""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from router.web.pages import PAGE_KINDS
from router.web.render import page_response
from tests.pages.parity import BRANDINGS, LINKS, Case, cases, expected, outcome, render_all
from tests.support import serve_app

CASES = {case.name: case for case in cases()}


def _mismatches(actual: dict[str, dict[str, Any]], golden: dict[str, dict[str, Any]]) -> list[str]:
    problems = []
    for name, result in actual.items():
        want = golden[name]
        for key in ("status", "headers", "length", "sha256"):
            if result[key] != want[key]:
                problems.append(f"{name}: {key} is {result[key]!r}, expected {want[key]!r}")
    return problems


def test_golden_file_names_every_case() -> None:
    assert sorted(expected()) == sorted(CASES)


def test_golden_file_covers_kinds_locales_branding_and_app_links() -> None:
    golden = expected()
    languages = {(name.split("|")[0], next(h for h in r["headers"] if h.startswith("content-language")))
                 for name, r in golden.items()}
    assert {(kind, f"content-language: {lang}") for kind in PAGE_KINDS for lang in ("en", "ja")} <= languages
    used = {(case.branding, case.links, case.test_mode) for case in CASES.values()}
    assert {b for b, _, _ in used} == set(BRANDINGS) and {link for _, link, _ in used} == set(LINKS)
    assert {t for _, _, t in used} == {False, True}


def test_every_case_renders_as_before() -> None:
    problems = _mismatches(render_all(), expected())
    assert not problems, f"{len(problems)} differences:\n" + "\n".join(problems[:20])


@pytest.mark.parametrize("seed", [1, 2])
def test_order_and_repetition_change_nothing(seed: int) -> None:
    """Shuffled and each rendered twice: a warm cache gives the same bytes as a cold one, and nothing of one
    buyer's page reaches the next."""
    order = list(CASES.values()) * 2
    random.Random(seed).shuffle(order)
    golden = expected()
    problems = [problem for case in order for problem in _mismatches({case.name: outcome(case.response())}, golden)]
    assert not problems, f"{len(problems)} differences:\n" + "\n".join(problems[:20])


def test_a_changed_byte_is_seen() -> None:
    """The comparison itself can fail: one changed letter in the merchant's name is another page."""
    case = CASES["accept_language=ja"]
    assert case.view is not None
    other = replace(case, view=replace(case.view, merchant_name="Examp1e Shop"))
    assert _mismatches({case.name: outcome(other.response())}, expected())


# ---------------------------------------------------------------- over a real socket


async def _serve_case(request: Request) -> Response:
    """The named case rendered for the real request (its headers and URL came over the socket)."""
    case = CASES[request.headers["x-case"]]
    assert case.view is not None
    return page_response(case.view, request, LINKS[case.links], current_url=case.current_url,
                         branding=BRANDINGS[case.branding], test_mode=case.test_mode)


@pytest.fixture(scope="module")
def parity_server() -> Iterator[str]:
    app = Starlette(routes=[Route("/{path:path}", _serve_case)])
    with serve_app(app) as base_url:
        yield base_url


def _socket_cases() -> list[Case]:
    return [case for case in CASES.values()
            if case.view is not None and case.user_agent and case.path.isascii() and case.user_agent.isascii()]


def test_socket_cases_cover_most_cases() -> None:
    assert len(_socket_cases()) > len(CASES) * 3 // 4


def test_over_a_real_socket(parity_server: str) -> None:
    golden = expected()
    problems: list[str] = []
    with httpx.Client(base_url=parity_server, timeout=10) as client:
        for case in _socket_cases():
            headers = {"host": "pay.example.com:8443", "user-agent": case.user_agent or "", "x-case": case.name}
            if case.accept_language is not None:
                headers["accept-language"] = case.accept_language
            response = client.get(f"{case.path}?{case.query}", headers=headers)
            sent = [f"{k.decode('latin-1')}: {v.decode('latin-1')}" for k, v in response.headers.raw
                    if k.lower() not in (b"date", b"server")]
            result = {"status": response.status_code, "headers": sent, "length": len(response.content),
                      "sha256": outcome(Response(response.content))["sha256"]}
            problems.extend(_mismatches({case.name: result}, golden))
    assert not problems, f"{len(problems)} differences:\n" + "\n".join(problems[:20])
