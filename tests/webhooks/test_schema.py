"""The `webhooks` section of /v1/openapi.json: one entry per event type, each body's schema, real examples."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import httpx
import jsonschema
import pytest

from router.app import create_app
from router.checkout.events import EVENT_TYPES, event_for, superseded_type
from router.checkout.model import Checkout, State
from router.config import load
from router.web.openapi import OPENAPI
from tests.support import serve_app, webhook_schema_errors
from tests.support.config import BASE_CONFIG
from tests.webhooks.outbox import START

EXAMPLES = {t: OPENAPI["webhooks"][t]["post"]["requestBody"]["content"]["application/json"]["example"]
            for t in OPENAPI["webhooks"]}


def test_one_entry_per_event_type_and_served(tmp_path: Path) -> None:
    assert set(OPENAPI["webhooks"]) == set(EVENT_TYPES.values())
    config = tmp_path / "router.toml"
    config.write_text(BASE_CONFIG + f'\n[storage]\nurl = "sqlite:///{tmp_path}/rr.db"\n')
    settings = load(config, env={})
    with serve_app(create_app(settings, background=False)) as url:
        served = httpx.get(url + "/v1/openapi.json").json()
    assert served["openapi"].startswith("3.1") and served["webhooks"] == json.loads(json.dumps(OPENAPI["webhooks"]))


def test_every_schema_is_valid_json_schema() -> None:
    for schema in OPENAPI["components"]["schemas"].values():
        jsonschema.Draft202012Validator.check_schema(schema)  # raises SchemaError on a malformed schema


@pytest.mark.parametrize("event_type", sorted(EVENT_TYPES.values()))
def test_each_example_validates(event_type: str) -> None:
    example = EXAMPLES[event_type]
    assert example["type"] == event_type
    assert webhook_schema_errors(json.dumps(example).encode(), event_type) == []


@pytest.mark.parametrize("state", sorted(EVENT_TYPES))
def test_a_fresh_event_validates(state: str) -> None:
    """Not only the examples: event_for's output for every state, nulls where nothing happened yet."""
    checkout = Checkout(ref="r" * 32, merchant_reference="o-1", amount="1000", currency="JPY",
                        payment_intent="Authorize", can_handle_pending=False, created_at=START, expires_at=START + 60)
    event = event_for(replace(checkout, state=state), START)
    assert event is not None
    assert webhook_schema_errors(event.body, event.type) == []
    assert json.loads(event.body)["data"]["paymentIntent"] == "Authorize"  # what "completed" means depends on it


def _mutated(event_type: str, change: Callable[[dict], None]) -> bytes:
    body = json.loads(json.dumps(EXAMPLES[event_type]))
    change(body)
    return json.dumps(body).encode()


@pytest.mark.parametrize(("change", "fragment"), [
    (lambda b: b["data"].pop("ref"), "'ref' is a required property"),
    (lambda b: b["data"].pop("paymentIntent"), "'paymentIntent' is a required property"),
    (lambda b: b["data"].update(paymentIntent="Capture"), "is not one of"),
    (lambda b: b["data"].update(state="declined"), "'completed' was expected"),
    (lambda b: b["data"]["amount"].update(amount=14), "14 is not of type 'string'"),
    (lambda b: b.update(extra=1), "Additional properties are not allowed"),
    (lambda b: b.update(id="evt_short"), "does not match"),
    (lambda b: b.update(created="yesterday"), "'yesterday' is not of type 'integer'"),
    (lambda b: b.update(supersedes="checkout.expired"), "'checkout.canceled' was expected"),
])
def test_a_wrong_body_fails(change: Callable[[dict], None], fragment: str) -> None:
    errors = webhook_schema_errors(_mutated("checkout.completed", change), "checkout.completed")
    assert any(fragment in e for e in errors), errors


@pytest.mark.parametrize("state", sorted(set(EVENT_TYPES) - {State.CANCELED}))
def test_every_event_after_a_cancel_says_it_supersedes_it_and_validates(state: State) -> None:
    """event_for marks every event after a cancel (superseded_type), a decline too: the schema used to allow
    `supersedes` only on the payment events, so a validator built from it refused real deliveries."""
    checkout = Checkout(ref="r" * 32, merchant_reference="o-1", amount="1000", currency="JPY",
                        payment_intent="Authorize", can_handle_pending=False, created_at=START, expires_at=START + 60)
    superseded = superseded_type(state)
    assert superseded == "checkout.canceled"
    event = event_for(replace(checkout, state=state), START, supersedes=superseded)
    assert event is not None and json.loads(event.body)["supersedes"] == "checkout.canceled"
    assert webhook_schema_errors(event.body, event.type) == []


def test_no_supersedes_on_a_cancel() -> None:
    on_cancel = _mutated("checkout.canceled", lambda b: b.update(supersedes="checkout.canceled"))
    assert webhook_schema_errors(on_cancel, "checkout.canceled") != []


def test_header_and_body_must_agree() -> None:
    body = json.dumps(EXAMPLES["checkout.completed"]).encode()
    assert webhook_schema_errors(body, "checkout.declined") != []
    assert webhook_schema_errors(body, "checkout.refunded") == ["no webhooks entry for the event type header "
                                                                "'checkout.refunded'"]
