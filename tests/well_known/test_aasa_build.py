from __future__ import annotations

import json

import pytest

from well_known import PathClaim, aasa_opens, build_aasa, dumps, validate_aasa

APP = "ABCDE12345.com.example.shop"
RETURN_ITEMS = ("amazonCheckoutSessionId", "CheckoutSessionId", "checkoutSessionId")
CLAIMS = [
    PathClaim("/amazon-pay/result", RETURN_ITEMS),
    PathClaim("/amazon-pay/cancel"),
    PathClaim("/amazon-pay/error"),
]


def test_builds_one_component_per_claim_and_query_item() -> None:
    doc = build_aasa([APP], CLAIMS)
    assert doc == {
        "applinks": {
            "details": [
                {
                    "appIDs": [APP],
                    "components": [
                        {"/": "/amazon-pay/cancel"},
                        {"/": "/amazon-pay/error"},
                        {"/": "/amazon-pay/result", "?": {"CheckoutSessionId": "?*"}},
                        {"/": "/amazon-pay/result", "?": {"amazonCheckoutSessionId": "?*"}},
                        {"/": "/amazon-pay/result", "?": {"checkoutSessionId": "?*"}},
                    ],
                }
            ]
        }
    }
    assert validate_aasa(dumps(doc)) == []


def test_claims_exactly_the_return_urls() -> None:
    doc = build_aasa([APP], CLAIMS)
    assert aasa_opens(doc, "https://pay.example.com/amazon-pay/result?ref=1&amazonCheckoutSessionId=abc")
    assert aasa_opens(doc, "https://pay.example.com/amazon-pay/result?CheckoutSessionId=abc#x")
    assert aasa_opens(doc, "https://pay.example.com/amazon-pay/cancel")
    assert aasa_opens(doc, "https://pay.example.com/amazon-pay/error?reason=x")
    assert not aasa_opens(doc, "https://pay.example.com/amazon-pay/result?ref=1")
    assert not aasa_opens(doc, "https://pay.example.com/amazon-pay/result?amazonCheckoutSessionId=")
    assert not aasa_opens(doc, "https://pay.example.com/amazon-pay/results?amazonCheckoutSessionId=a")
    assert not aasa_opens(doc, "https://pay.example.com/")
    assert not aasa_opens(doc, "https://pay.example.com/.well-known/apple-app-site-association")


def test_output_is_deterministic_whatever_the_input_order() -> None:
    a = dumps(build_aasa([APP, "ABCDE12345.com.example.b"], CLAIMS))
    b = dumps(build_aasa([APP, "ABCDE12345.com.example.b", APP], list(reversed(CLAIMS))))
    assert a == b
    assert not a.startswith(b"\xef\xbb\xbf") and not a.endswith(b"\n")
    assert b" " not in a  # compact
    assert json.loads(a)["applinks"]["details"][0]["appIDs"] == [APP, "ABCDE12345.com.example.b"]


def test_optional_services() -> None:
    doc = build_aasa(
        [APP], CLAIMS, webcredentials_apps=[APP], appclips_apps=["ABCDE12345.com.example.shop.Clip"]
    )
    assert doc["webcredentials"] == {"apps": [APP]}
    assert doc["appclips"] == {"apps": ["ABCDE12345.com.example.shop.Clip"]}
    assert list(doc) == ["applinks", "webcredentials", "appclips"]
    assert validate_aasa(doc) == []


def test_no_claims_builds_a_valid_file_that_opens_nothing() -> None:
    doc = build_aasa([APP], [])
    assert [p.severity for p in validate_aasa(doc)] == ["warning"]
    assert not aasa_opens(doc, "https://h/")


@pytest.mark.parametrize(
    ("app_ids", "message"),
    [
        ([], "at least one"),
        (["com.example.app"], "not an app ID"),
        (["ABCDE1234.com.example.app"], "not an app ID"),
        ("ABCDE12345.com.example.app", "not a single string"),
    ],
)
def test_bad_app_ids(app_ids: list[str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build_aasa(app_ids, CLAIMS)


def test_bad_service_app_ids() -> None:
    with pytest.raises(ValueError, match="webcredentials_apps"):
        build_aasa([APP], CLAIMS, webcredentials_apps=["nope"])
    with pytest.raises(ValueError, match="appclips_apps"):
        build_aasa([APP], CLAIMS, appclips_apps=["nope"])


def test_dumps_refuses_non_json() -> None:
    with pytest.raises(ValueError):
        dumps({"x": float("nan")})
    assert dumps({"k": "é"}) == '{"k":"é"}'.encode()
