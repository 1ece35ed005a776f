"""The OpenAPI's amounts say what router/checkout/money.py does: MoneyInput takes every amount and currency
code POST /v1/checkouts takes, and refuses the ones it refuses but for what only its description can say
(the per-charge maximum, and the decimals of a JSON number); every normalized amount the API answers is a
valid Money."""

from __future__ import annotations

import json
from typing import Any

import jsonschema_rs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from router.checkout.money import DECIMALS, MAX_AMOUNT, AmountError, normalize_amount
from router.web.openapi import OPENAPI

COMPONENTS = OPENAPI["components"]
DRAFT = "https://json-schema.org/draft/2020-12/schema"


def _validator(name: str) -> Any:
    return jsonschema_rs.validator_for({"$schema": DRAFT, "$ref": f"#/components/schemas/{name}",
                                        "components": COMPONENTS})


SENT, ANSWERED = _validator("MoneyInput"), _validator("Money")


def _service(amount: Any, currency: Any) -> tuple[str, str] | None:
    try:
        return normalize_amount(amount, currency)
    except AmountError:
        return None


def _left_to_words(amount: Any, currency: Any) -> bool:
    """What the description says but no schema keyword can: the per-charge maximum of a string, and the
    decimals of a JSON number (multipleOf 0.01 on doubles refuses 14.1 in common validators, so it is not
    used; a number of more decimals than the currency has is refused by the service only)."""
    code = str(currency).upper()
    if code not in DECIMALS:
        return False
    if isinstance(amount, float) and not amount.is_integer():
        return True
    try:
        return float(amount) > MAX_AMOUNT[code]
    except (ValueError, TypeError, OverflowError):
        return False


def _agree(amount: Any, currency: Any) -> None:
    # The body as the service reads it: json.loads of what a client sent (14.0 stays a float, 14 an int).
    money = json.loads(json.dumps({"amount": amount, "currencyCode": currency}))
    normalized = _service(money["amount"], money["currencyCode"])
    valid = SENT.is_valid(money)
    if normalized is None and valid:
        assert _left_to_words(money["amount"], money["currencyCode"]), money
    else:
        assert valid == (normalized is not None), (money, normalized)
    if normalized is not None:
        assert ANSWERED.is_valid({"amount": normalized[0], "currencyCode": normalized[1]}), normalized


@pytest.mark.parametrize(("amount", "currency"), [
    ("14.00", "USD"), ("14", "USD"), ("14.000", "USD"), ("014.00", "USD"), ("14.000000000000", "usd"),
    (14.0, "USD"), (14.1, "USD"), (14, "Usd"), (0.01, "EUR"), ("1000", "JPY"), ("1000.00", "jpy"), (1000.0, "JPY"),
    ("14.001", "USD"), (14.001, "USD"), (0.1 + 0.2, "USD"), ("10.5", "JPY"), (10.5, "JPY"), ("0", "USD"),
    ("0.00", "USD"), (0, "USD"), (-1, "USD"), ("-1", "USD"), ("1e3", "USD"), (1e-7, "USD"), (" 14", "USD"),
    ("+14", "USD"), ("14.", "USD"), (".5", "USD"), ("1_000", "USD"), ("١٢", "USD"), (True, "USD"), (None, "USD"),
    ("14.0000000000000", "USD"), ("1234567890123", "USD"), ("1", "XXX"), ("1", "CAD"), ("1", "uſd"), ("1", None),
    ("1", 840),
])
def test_examples(amount: Any, currency: Any) -> None:
    _agree(amount, currency)


def test_the_examples_cover_both_answers() -> None:
    assert normalize_amount("014.000", "usd") == ("14.00", "USD")
    assert normalize_amount(14.1, "USD") == ("14.10", "USD")
    for refused in (("14.001", "USD"), (0.1 + 0.2, "USD"), ("1", "XXX")):
        with pytest.raises(AmountError):
            normalize_amount(*refused)


_CURRENCIES = st.sampled_from(sorted(DECIMALS)).flatmap(
    lambda code: st.sampled_from([code, code.lower(), code.title()])) | st.text(max_size=4)
_AMOUNTS = (st.from_regex(r"[0-9]{1,13}(\.[0-9]{0,13})?", fullmatch=True)
            | st.decimals(min_value=0, max_value=2_000_000, places=3).map(str)
            | st.floats(allow_nan=False, allow_infinity=False) | st.integers() | st.text(max_size=8))


@settings(max_examples=400, deadline=None, derandomize=True, database=None)
@given(amount=_AMOUNTS, currency=_CURRENCIES)
def test_the_schema_and_the_code_agree(amount: Any, currency: Any) -> None:
    _agree(amount, currency)
