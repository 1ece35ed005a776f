"""The integration guides and their Swift / Kotlin snippets say only what the code really does.

No Swift or Kotlin compiler is at hand, so the snippets are checked against the API's own sources:
every endpoint path, JSON key, query item, status and error code they use must exist in
router/web/openapi.py, router/web/api.py or router/checkout/model.py; every event body in docs/backend.md must validate
against the published webhook schema, and every `return-router …` command must parse.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import shlex
import time
import tomllib
from pathlib import Path
from typing import Any

import pytest

from router.checkout.events import EVENT_TYPES
from router.checkout.model import SESSION_ID_PARAMS, State
from router.cli import parser
from router.config.settings import AmazonPaySettings
from router.web import api
from router.web.openapi import OPENAPI
from router.webhooks.signature import EVENT_ID_HEADER, EVENT_TYPE_HEADER, SIGNATURE_HEADER, hmac_signature
from tests.router.test_readme import HOSTILE
from tests.support import webhook_schema_errors

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
GUIDES = {name: (DOCS / name).read_text(encoding="utf-8") for name in ("ios.md", "android.md", "backend.md")}
SWIFT = (DOCS / "snippets" / "ReturnLinkHandler.swift").read_text(encoding="utf-8")
KOTLIN = (DOCS / "snippets" / "ReturnLinkHandler.kt").read_text(encoding="utf-8")
SNIPPETS = {"swift": SWIFT, "kotlin": KOTLIN}
APP_OPERATIONS = ("/v1/checkout-sessions/{checkoutSessionId}/finalize", "/v1/checkout-sessions/{checkoutSessionId}")


def _normalize(path: str) -> str:
    """Swift "\\(id)", Kotlin "${id}" and OpenAPI "{id}" path parameters all become "{}"; no query."""
    path = path.split("?", 1)[0]
    return re.sub(r"\\\([^)]*\)|\$\{[^}]*\}|\{[^}]*\}", "{}", path).rstrip("/")


API_PATHS = {_normalize(p): p for p in OPENAPI["paths"]}
# What the running app really routes (the handlers are never called here).
ROUTED = {(_normalize(r.path), m) for r in api.Api(None, None, None, None).routes()  # type: ignore[arg-type]
          for m in r.methods or ()}


def _property_names(node: Any) -> set[str]:
    names: set[str] = set()
    if isinstance(node, dict):
        names.update(node.get("properties", {}) if isinstance(node.get("properties"), dict) else ())
        for value in node.values():
            names |= _property_names(value)
    elif isinstance(node, list):
        for value in node:
            names |= _property_names(value)
    return names


JSON_KEYS = _property_names(OPENAPI)
QUERY_ITEMS = {"ref", *SESSION_ID_PARAMS}  # ref: what api.return_urls adds; the session id: what Amazon adds


def _paths_in(text: str) -> set[str]:
    return {_normalize(m) for m in re.findall(r"(/v1/[A-Za-z0-9_\-/{}()\\$.]+)", text)}


@pytest.mark.parametrize("language", sorted(SNIPPETS))
def test_snippet_endpoints_exist(language: str) -> None:
    used = _paths_in(SNIPPETS[language])
    assert {_normalize(p) for p in APP_OPERATIONS} <= used  # both app operations are shown
    assert used <= set(API_PATHS), used - set(API_PATHS)
    assert used <= {path for path, _ in ROUTED}


def _json_keys(language: str) -> set[str]:
    if language == "swift":
        return set(re.findall(r'(?<!query)\["(\w+)"\]', SWIFT)) | set(re.findall(r'\[\s*"(\w+)"\s*:', SWIFT))
    return set(re.findall(r'(?:getString|optString|getJSONObject|optJSONObject|put)\("(\w+)"', KOTLIN))


def _query_items(language: str) -> set[str]:
    if language == "swift":
        return set(re.findall(r'query\["(\w+)"\]', SWIFT)) | set(re.findall(r'URLQueryItem\(name: "(\w+)"', SWIFT))
    return set(re.findall(r'(?:getQueryParameter|appendQueryParameter)\("(\w+)"', KOTLIN)) | set(
        re.findall(r"\?(\w+)=\$", KOTLIN))


@pytest.mark.parametrize("language", sorted(SNIPPETS))
def test_snippet_json_keys_and_query_items_are_the_apis(language: str) -> None:
    keys, items = _json_keys(language), _query_items(language)
    assert {"ref", "state", "payloadJSON", "signature", "publicKeyId", "error", "code"} <= keys
    assert keys <= JSON_KEYS, keys - JSON_KEYS
    assert {"ref", "amazonCheckoutSessionId"} <= items
    assert items <= QUERY_ITEMS, items - QUERY_ITEMS


def _status_codes(language: str) -> set[int]:
    text = SNIPPETS[language]
    found = re.findall(r"case ([\d, ]+)(?: where|:)", text) if language == "swift" else re.findall(
        r"^\s*([\d, ]+) ->|status == (\d{3})", text, re.M)
    flat = ",".join(x if isinstance(x, str) else ",".join(x) for x in found)
    return {int(c) for c in re.findall(r"\d{3}", flat)}


@pytest.mark.parametrize("language", sorted(SNIPPETS))
def test_snippet_status_and_error_codes_are_the_apis(language: str) -> None:
    documented = {int(code) for p in APP_OPERATIONS for code in OPENAPI["paths"][p][
        "post" if p.endswith("finalize") else "get"]["responses"]}
    used = _status_codes(language)
    assert {200, 202, 402, 409, 410, 422, 503} <= used
    assert used <= documented, used - documented
    api_source = Path(api.__file__).read_text(encoding="utf-8")
    for code in re.findall(r'"([a-z]+_[a-z_]+)"', SNIPPETS[language]):
        assert f'"{code}"' in api_source, code
    assert '"retry-after"' in api_source and "Retry-After" in SNIPPETS[language]


@pytest.mark.parametrize("language", sorted(SNIPPETS))
def test_snippet_return_paths_are_the_example_configs(language: str) -> None:
    example = tomllib.loads((ROOT / "router" / "example.toml").read_text(encoding="utf-8"))
    by_flow = {r["flow"]: r["path"] for r in example["routes"]}
    consts = dict(re.findall(r'(?:static let|const val) (\w+) = "(/[^"]+)"', SNIPPETS[language]))
    assert {k.lower(): v for k, v in consts.items()} == {"result": by_flow["success"], "cancel": by_flow["cancel"],
                                                          "error": by_flow["error"]}


def test_guides_name_only_real_endpoints() -> None:
    for name, text in GUIDES.items():
        for method, path in re.findall(r"\b(GET|POST) (/v1/[^\s`?)|]+)", text):
            assert (_normalize(path), method) in ROUTED, (name, method, path)


def test_guides_commands_parse() -> None:
    commands = []
    for text in GUIDES.values():
        for block in re.findall(r"```sh\n(.*?)```", text, re.S):
            commands += [line for line in block.splitlines() if line.startswith("return-router ")]
        commands += re.findall(r"`(return-router [^`]+)`", text)
    assert any(c.startswith("return-router app-config ios") for c in commands)
    assert any(c.startswith("return-router app-config android") for c in commands)
    for command in commands:
        words = [w for w in shlex.split(command.split(">")[0], comments=True)[1:] if w != "…"]
        parser().parse_args(words)  # SystemExit (a test error) when a command or option does not exist


def _json_blocks(text: str) -> list[Any]:
    return [json.loads(block) for block in re.findall(r"```json\n(.*?)```", text, re.S)]


def test_backend_guide_shows_every_event_type_and_each_validates() -> None:
    events = [b for b in _json_blocks(GUIDES["backend.md"]) if isinstance(b, dict) and "type" in b and "data" in b]
    assert {e["type"] for e in events} == set(EVENT_TYPES.values())
    for event in events:
        assert webhook_schema_errors(json.dumps(event).encode(), event["type"]) == []
    assert any(e.get("supersedes") == "checkout.canceled" and e["type"] == "checkout.completed" for e in events)
    for header in (SIGNATURE_HEADER, EVENT_ID_HEADER, EVENT_TYPE_HEADER):
        assert f"`{header}`" in GUIDES["backend.md"]


def test_backend_guide_verifier_accepts_real_signatures_only() -> None:
    (code,) = re.findall(r"```python\n(.*?)```", GUIDES["backend.md"], re.S)
    namespace: dict[str, Any] = {}
    exec(compile(code, "backend.md", "exec"), namespace)  # the guide's own code, as a merchant copies it
    verify = namespace["verify"]
    body, now = b'{"id":"evt_1"}', int(time.time())
    header = hmac_signature("whsec_guide", body, now)
    assert verify("whsec_guide", body, header)
    assert not verify("whsec_guide", body + b" ", header)
    assert not verify("whsec_other", body, header)
    assert not verify("whsec_guide", body, hmac_signature("whsec_guide", body, now - 600))  # replayed
    good = hmac.new(b"whsec_guide", f"{now}.".encode() + body, hashlib.sha256).hexdigest()
    rotated = f"t={now},v1={'0' * 64},v1={good}"  # an old secret's signature beside the new one
    assert verify("whsec_guide", body, rotated)
    for hostile in HOSTILE:
        assert not verify("whsec_guide", body, hostile)  # false, never an exception (a 500 at the merchant's)


def test_readme_links_the_guides() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for name in GUIDES:
        assert f"(docs/{name})" in readme
    for name, text in GUIDES.items():  # relative links inside the guides resolve
        for target in re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", text):
            assert (DOCS / target).exists(), (name, target)


def test_ios_guide_names_every_app_error_code_and_the_error_only_body() -> None:
    """Each 4xx/5xx code the app API answers is in the guide's table (404 unknown_checkout included), and the
    guide's error body is api.error_response's: the error only, no checkout (api.outcome_response says why)."""
    source = Path(api.__file__).read_text(encoding="utf-8")
    app_source = source[source.index("def outcome_response"):source.index("\nclass Api:")] + source[
        source.index("async def finalize"):source.index("async def openapi")]
    codes = set(re.findall(r'(?:ApiError|error_response)\((\d{3}), "(\w+)"', app_source))
    codes |= {(str(status), code) for status, code, _ in api.UNPAID.values()}
    assert ("404", "unknown_checkout") in codes and ("404", "unknown_session") in codes
    rows = [line for line in GUIDES["ios.md"].splitlines() if line.startswith("| ")]
    for status, code in codes:
        assert any(line.startswith(f"| {status} ") and f"`{code}`" in line for line in rows), (status, code)
    body = api.error_response(404, "unknown_checkout", "m").body
    assert set(json.loads(body)) == {"error"}
    (sentence,) = re.findall(r"Error bodies [^.]*\.", GUIDES["ios.md"])
    assert '`{"error": {"code", "message"}}`' in sentence and "checkout" not in sentence.split("}}`")[0]


def test_snippets_wait_longer_than_the_deadline() -> None:
    """One finalize may wait for Amazon up to [amazon_pay] deadline: the apps' request timeout is above it
    (else they give up on calls that then succeed), and the guide says the figures the snippets use."""
    deadline = AmazonPaySettings("key-id", b"").deadline
    (swift,) = re.findall(r"static let requestTimeout: TimeInterval = (\d+)", SWIFT)
    (kotlin,) = re.findall(r"const val REQUEST_TIMEOUT_MS = ([\d_]+)", KOTLIN)
    assert int(swift) == int(kotlin.replace("_", "")) // 1000 > deadline
    assert "request.timeoutInterval = Self.requestTimeout" in SWIFT and "readTimeout = REQUEST_TIMEOUT_MS" in KOTLIN
    (window,) = re.findall(r"static let retryWindow: TimeInterval = (\d+)", SWIFT)
    assert f"RETRY_WINDOW_MS = {window}_000L" in KOTLIN
    ios = GUIDES["ios.md"]
    assert f"({deadline:g} s by default)" in ios and f"use {swift} s" in ios and f"later than {window} s" in ios


def test_snippets_wait_on_a_proxys_5xx_as_on_a_503() -> None:
    """While return-router is down or restarting the proxy in front answers (the shipped ones 503 `unavailable`,
    others 502, 504 or a 5xx page that is not JSON): each snippet's `send` turns a 502, a 504 and any 5xx without
    the API's error JSON into the 503 that finalize and poll wait on and repeat, never into "open in browser"
    (where the same error shows, and the session id never reaches return-router)."""
    swift_send = SWIFT[SWIFT.index("private func send"):SWIFT.index("private func pause")]
    assert "let fromProxy = (502...504).contains(http.statusCode) || (http.statusCode >= 500 && " \
        'json["error"] == nil)' in swift_send
    assert "return (fromProxy ? 503 : http.statusCode, json, retryAfter)" in swift_send
    kotlin_send = KOTLIN[KOTLIN.index("private suspend fun send"):KOTLIN.index("class CheckoutReturnActivity")]
    assert 'val fromProxy = status in 502..504 || (status >= 500 && json?.has("error") != true)' in kotlin_send
    assert "if (fromProxy) Answer(503, JSONObject(), retryAfter)" in kotlin_send
    # and a 503 is waited on and repeated in both finalize and poll
    assert "case 503: try? await pause(retryAfter)" in SWIFT and "case 202, 503: continue" in SWIFT
    assert "503 -> delay(answer.retryAfter * 1_000)" in KOTLIN and "202, 503 -> Unit" in KOTLIN
    for guide in ("ios.md", "android.md"):
        assert "502, 504 or" in GUIDES[guide] and "5xx that is not" in GUIDES[guide], guide


def test_snippets_call_an_order_paid_only_when_the_api_says_so() -> None:
    """A 200 is paid only with `state` completed or authorized in the API's JSON: a 200 that is not the API's
    answer (a captive portal's page, a proxy's) used to default to "completed" and show the buyer "paid"."""
    for text in SNIPPETS.values():
        assert '"completed")' not in text.replace('== "completed"', "")  # no default to a paid state
    assert SWIFT.count("case 200: return paidOrOutcome(status, json, sessionId: sessionId, ref: ref)") == 2
    assert 'if let state = json["state"] as? String, state == "completed" || state == "authorized"' in SWIFT
    assert KOTLIN.count("200 -> return paidOrOutcome(answer, sessionId, ref)") == 2
    assert 'if (state == "completed" || state == "authorized") CheckoutResult.Paid(state)' in KOTLIN
    states = set(re.findall(r'"(completed|authorized)"', SWIFT + KOTLIN))
    assert states == {State.COMPLETED.value, State.AUTHORIZED.value}  # the two states outcome_response answers 200


@pytest.mark.parametrize("language", sorted(SNIPPETS))
def test_snippets_read_every_session_id_name_the_association_files_claim(language: str) -> None:
    """The served files claim the result path with any of SESSION_ID_PARAMS: a link with one the app does not
    read opened the app, which then sent the buyer to the browser."""
    for name in SESSION_ID_PARAMS:
        assert f'query["{name}"]' in SNIPPETS[language] or f'getQueryParameter("{name}")' in SNIPPETS[language], name
