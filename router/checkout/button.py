"""The signed Amazon Pay button payload for a registered checkout (Amazon's generateButtonSignature).

The app hands `payloadJSON` and `signature` to the Amazon Pay button as they are: the signature
covers these exact bytes, so nobody re-serializes them.
"""

from __future__ import annotations

import json
from typing import Any

from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey

from router.amazon_pay.signing import sign_payload
from router.checkout.model import Checkout


class ButtonSigner:
    def __init__(self, store_id: str, public_key_id: str, private_key: RSAPrivateKey, algorithm: str) -> None:
        self.store_id = store_id
        self.public_key_id = public_key_id
        self._private_key = private_key
        self.algorithm = algorithm

    def __repr__(self) -> str:
        return f"ButtonSigner(store_id={self.store_id!r}, public_key_id={self.public_key_id!r})"

    def payload(self, checkout: Checkout, urls: dict[str, str]) -> dict[str, Any]:
        details: dict[str, Any] = {
            "paymentIntent": checkout.payment_intent,
            "canHandlePendingAuthorization": checkout.can_handle_pending,
            "chargeAmount": {"amount": checkout.amount, "currencyCode": checkout.currency},
        }
        if checkout.total_order_amount is not None:
            details["totalOrderAmount"] = {"amount": checkout.total_order_amount, "currencyCode": checkout.currency}
        payload: dict[str, Any] = {
            "webCheckoutDetails": {
                "checkoutMode": "ProcessOrder",
                "checkoutResultReturnUrl": urls["checkoutResultReturnUrl"],
                "checkoutCancelUrl": urls["checkoutCancelUrl"],
                # The Mobile SDK's third link (its "Prerequisites" page): signed with the other two.
                "checkoutErrorUrl": urls["checkoutErrorUrl"],
            },
            "storeId": self.store_id,
            "chargePermissionType": "OneTime",
            "paymentDetails": details,
            "merchantMetadata": {"merchantReferenceId": checkout.merchant_reference[:256]},
        }
        if checkout.supplementary_data is not None:  # the finalize repeats it: the session must carry it
            payload["supplementaryData"] = checkout.supplementary_data
        return payload

    def sign(self, checkout: Checkout, urls: dict[str, str]) -> dict[str, str]:
        payload_json = json.dumps(self.payload(checkout, urls), separators=(",", ":"), ensure_ascii=False)
        signature = sign_payload(self._private_key, self.algorithm, payload_json)
        return {"payloadJSON": payload_json, "signature": signature, "publicKeyId": self.public_key_id,
                "algorithm": self.algorithm}
