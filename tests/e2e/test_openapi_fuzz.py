"""Schemathesis over the served /v1/openapi.json: no 5xx, and every answer is one the document describes."""

from __future__ import annotations

import jsonschema_rs
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from router.checkout.model import REF_RE, SESSION_ID_RE
from router.web.openapi import OPENAPI, anchored
from tests.support.config import TOKEN
from tests.support.routers import Router

MAX_EXAMPLES = 60  # bounded: about 15 requests per operation, a few seconds
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


def test_the_api_answers_as_documented(router: Router) -> None:
    """Every documented operation, a bounded number of generated requests each (schemathesis's pytest
    plugin does not load under this pytest, so the operations' hypothesis strategies are driven here)."""
    schema = schemathesis.openapi.from_url(router.url + "/v1/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) == len([m for path in OPENAPI["paths"].values() for m in path])
    statuses: set[int] = set()

    @settings(max_examples=MAX_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck),
              derandomize=True, database=None)
    @given(data=st.data())
    def run(data: st.DataObject) -> None:
        operation = data.draw(st.sampled_from(operations))
        case = data.draw(operation.as_strategy())
        response = case.call_and_validate(base_url=router.url, headers={"authorization": f"Bearer {TOKEN}"},
                                          checks=CHECKS)
        statuses.add(response.status_code)

    run()
    assert statuses and max(statuses) < 500, statuses


def test_the_document_uses_the_code_s_patterns() -> None:
    finalize = OPENAPI["paths"]["/v1/checkout-sessions/{checkoutSessionId}/finalize"]["post"]
    assert finalize["parameters"][0]["schema"]["pattern"] == anchored(SESSION_ID_RE)
    assert OPENAPI["components"]["schemas"]["Checkout"]["properties"]["ref"]["pattern"] == anchored(REF_RE)
    assert "415" in finalize["responses"]
    session = OPENAPI["paths"]["/v1/checkout-sessions/{checkoutSessionId}"]["get"]
    assert "400" in session["responses"]
    assert OPENAPI["components"]["schemas"]["Money"]["additionalProperties"] is False


@pytest.mark.parametrize("value", ["x" * 7, "a" * 100 + "\n", "-abcdefgh", "abcdefgh/x", "ok-session.id_1", "a" * 100])
def test_anchored_patterns_mean_what_the_code_means(value: str) -> None:
    validator = jsonschema_rs.validator_for({"type": "string", "pattern": anchored(SESSION_ID_RE)})
    assert validator.is_valid(value) == (SESSION_ID_RE.fullmatch(value) is not None)
