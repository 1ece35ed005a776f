"""The served /v1/openapi.json describes every field the API really answers, and nothing it does not.

Clients are generated from the document (docs/backend.md): a field the API returns but the schema
lacks is invisible to them, and one the schema lists but the API never sends is a lie. So real answers
from the app (over a socket, against the emulator) are compared with the schemas, key for key.
"""

from __future__ import annotations

from typing import Any

import httpx
import jsonschema_rs

from tests.support.config import AUTH
from tests.support.emulator import Emulator
from tests.support.routers import Router

DRAFT = "https://json-schema.org/draft/2020-12/schema"


def _served(router: Router) -> dict[str, Any]:
    answer = httpx.get(f"{router.url}/v1/openapi.json")
    assert answer.status_code == 200
    return dict(answer.json())


def _check(document: dict[str, Any], schema_name: str, body: dict[str, Any]) -> None:
    schema = document["components"]["schemas"][schema_name]
    assert set(body) == set(schema["properties"]), (schema_name, set(body) ^ set(schema["properties"]))
    assert set(schema["required"]) == set(schema["properties"])  # the API always sends every one
    wrapper = {"$schema": DRAFT, "$ref": f"#/components/schemas/{schema_name}", "components": document["components"]}
    jsonschema_rs.validator_for(wrapper).validate(body)


def _response_schema(document: dict[str, Any], path: str, method: str, status: str) -> dict[str, Any]:
    schema: dict[str, Any] = document["paths"][path][method]["responses"][status]["content"]["application/json"][
        "schema"]
    return schema


def test_the_checkout_schemas_list_exactly_the_fields_the_api_answers(router: Router, emulator: Emulator) -> None:
    document = _served(router)
    registered = router.register(totalOrderAmount={"amount": "20", "currencyCode": "usd"})
    _check(document, "Checkout", registered["checkout"])
    assert registered["checkout"]["totalOrderAmount"] == {"amount": "20.00", "currencyCode": "USD"}
    created = _response_schema(document, "/v1/checkouts", "post", "201")["properties"]
    assert set(registered) == set(created) - {"button"}  # button: only with [amazon_pay] store_id
    ref = registered["ref"]

    without_total = router.register()["checkout"]
    _check(document, "Checkout", without_total)
    assert without_total["totalOrderAmount"] is None

    session_id = emulator.create_session()
    finalized = httpx.post(f"{router.url}/v1/checkout-sessions/{session_id}/finalize", json={"ref": ref}, timeout=60)
    assert finalized.status_code == 200, finalized.text
    assert _response_schema(document, "/v1/checkout-sessions/{checkoutSessionId}/finalize", "post", "200") == {
        "$ref": "#/components/schemas/AppCheckout"}
    _check(document, "AppCheckout", finalized.json())
    read = httpx.get(f"{router.url}/v1/checkout-sessions/{session_id}", params={"ref": ref}, timeout=60)
    assert read.status_code == 200, read.text
    _check(document, "AppCheckout", read.json())

    merchant = httpx.get(f"{router.url}/v1/checkouts/{ref}", headers=AUTH)
    assert merchant.status_code == 200, merchant.text
    assert _response_schema(document, "/v1/checkouts/{ref}", "get", "200") == {"$ref": "#/components/schemas/Checkout"}
    _check(document, "Checkout", merchant.json())
    assert set(merchant.json()) > set(read.json())  # the merchant's own fields on top of the app's


def test_error_answers_are_the_error_only(router: Router, emulator: Emulator) -> None:
    """docs/ios.md and the Error schema: no checkout in an error body; 404 codes as documented."""
    document = _served(router)
    error_schema = document["components"]["schemas"]["Error"]
    ref = router.register()["ref"]
    session_id = emulator.create_session(scenario="declined", ref=ref)
    declined = httpx.post(f"{router.url}/v1/checkout-sessions/{session_id}/finalize", json={"ref": ref}, timeout=60)
    assert declined.status_code == 402
    assert set(declined.json()) == set(error_schema["properties"]) == {"error"}
    assert set(declined.json()["error"]) == {"code", "message"}

    session = "/v1/checkout-sessions/{checkoutSessionId}"
    described = document["paths"][session]["get"]["responses"]["404"]["description"]
    for params in ({}, {"ref": "x" * 32}, {"ref": router.register()["ref"]}):  # missing, unknown, not bound to it
        answer = httpx.get(f"{router.url}/v1/checkout-sessions/{session_id}", params=params)
        assert answer.status_code == 404, (params, answer.text)
        code = answer.json()["error"]["code"]
        assert code == "unknown_checkout" and code in described
