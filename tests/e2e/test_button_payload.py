"""The signed button payload against the shape Amazon Pay documents for the Mobile SDK.

Sources (Amazon Pay developer docs):
- mobile-app-onetime-eoc/prerequisites ("Prerequisites"): the Mobile SDK needs three Universal
  Links / App Links, checkoutResultReturnUrl, checkoutCancelUrl and checkoutErrorUrl;
- mobile-app-onetime-eoc/add-the-amazon-pay-button and amazon-pay-apb-checkout/add-the-amazon-pay-button
  ("Generate the Create Checkout Session payload"): the payload has the shape of Create Checkout
  Session's body, webCheckoutDetails.checkoutMode = ProcessOrder, the return URLs in
  webCheckoutDetails, storeId, chargePermissionType, paymentDetails (paymentIntent,
  canHandlePendingAuthorization, chargeAmount) and merchantMetadata.merchantReferenceId;
- mobile-app-onetime-eoc/call-finalize-checkoutsession-api: the app tells the three links apart by URL.
The three URLs therefore travel together in webCheckoutDetails, signed.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from urllib.parse import parse_qs, urlsplit

import jsonschema

from router.app import create_app
from router.config import Settings
from tests.support import serve_app
from tests.support.routers import Router

STORE_ID = "amzn1.application-oa2-client.0123456789abcdef"
_URL = {"type": "string", "pattern": "^https://"}
_MONEY = {"type": "object", "required": ["amount", "currencyCode"], "additionalProperties": False,
          "properties": {"amount": {"type": "string"}, "currencyCode": {"type": "string", "pattern": "^[A-Z]{3}$"}}}
DOCUMENTED_PAYLOAD = {
    "type": "object",
    "required": ["webCheckoutDetails", "storeId", "chargePermissionType", "paymentDetails", "merchantMetadata"],
    "additionalProperties": False,
    "properties": {
        "webCheckoutDetails": {
            "type": "object",
            "required": ["checkoutMode", "checkoutResultReturnUrl", "checkoutCancelUrl", "checkoutErrorUrl"],
            "additionalProperties": False,
            "properties": {"checkoutMode": {"const": "ProcessOrder"}, "checkoutResultReturnUrl": _URL,
                           "checkoutCancelUrl": _URL, "checkoutErrorUrl": _URL},
        },
        "storeId": {"type": "string", "pattern": "^amzn1\\.application-oa2-client\\."},
        "chargePermissionType": {"const": "OneTime"},
        "paymentDetails": {
            "type": "object", "required": ["paymentIntent", "canHandlePendingAuthorization", "chargeAmount"],
            "additionalProperties": False,
            "properties": {"paymentIntent": {"enum": ["Confirm", "Authorize", "AuthorizeWithCapture"]},
                           "canHandlePendingAuthorization": {"type": "boolean"}, "chargeAmount": _MONEY,
                           "totalOrderAmount": _MONEY},
        },
        "merchantMetadata": {"type": "object", "required": ["merchantReferenceId"],
                             "properties": {"merchantReferenceId": {"type": "string", "maxLength": 256}}},
        # a Checkout Session field (reference §5.3) that the finalize must repeat (§5.2): set with the rest
        "supplementaryData": {"type": "string"},
    },
}


def test_payload_has_the_documented_shape_with_all_three_urls_signed(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings(f'store_id = "{STORE_ID}"\n')
    with serve_app(create_app(settings, background=False)) as url:
        body = Router(url).register(reference="order-42")
    payload = json.loads(body["button"]["payloadJSON"])  # the exact bytes the signature covers
    jsonschema.validate(payload, DOCUMENTED_PAYLOAD)
    details = payload["webCheckoutDetails"]
    urls = body["returnUrls"]
    for key in ("checkoutResultReturnUrl", "checkoutCancelUrl", "checkoutErrorUrl"):
        assert details[key] == urls[key]
        assert parse_qs(urlsplit(details[key]).query)["ref"] == [body["ref"]]
    assert urlsplit(details["checkoutErrorUrl"]).path == "/amazon-pay/error"
    assert payload["merchantMetadata"]["merchantReferenceId"] == "order-42"


def test_the_documented_shape_rejects_a_payload_without_the_error_url() -> None:
    payload = {"webCheckoutDetails": {"checkoutMode": "ProcessOrder", "checkoutResultReturnUrl": "https://a/r",
                                      "checkoutCancelUrl": "https://a/c"},
               "storeId": STORE_ID, "chargePermissionType": "OneTime",
               "paymentDetails": {"paymentIntent": "Authorize", "canHandlePendingAuthorization": False,
                                  "chargeAmount": {"amount": "1.00", "currencyCode": "USD"}},
               "merchantMetadata": {"merchantReferenceId": "o"}}
    validator = jsonschema.Draft202012Validator(DOCUMENTED_PAYLOAD)
    assert [e.message for e in validator.iter_errors(payload)] == ["'checkoutErrorUrl' is a required property"]


def test_supplementary_data_is_signed_into_the_button_as_the_finalize_repeats_it(
        make_settings: Callable[..., Settings]) -> None:
    settings = make_settings(f'store_id = "{STORE_ID}"\n')
    with serve_app(create_app(settings, background=False)) as url:
        body = Router(url).register(reference="order-43", supplementaryData='{"k":"v"}')
    payload = json.loads(body["button"]["payloadJSON"])
    jsonschema.validate(payload, DOCUMENTED_PAYLOAD)
    assert payload["supplementaryData"] == '{"k":"v"}'
