"""The /v1 JSON endpoints: the merchant API (bearer token) and the app API (ref + session id)."""

from __future__ import annotations

import hmac
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from router import logs
from router.checkout.button import ButtonSigner
from router.checkout.model import (
    PAYMENT_INTENTS,
    Busy,
    Checkout,
    InvalidSessionId,
    NewCheckout,
    Outcome,
    OutcomeError,
    SessionConflict,
    SessionOfAnotherOrder,
    State,
    UnknownRef,
    is_session_id,
)
from router.checkout.money import REGION_CURRENCIES, AmountError, normalize_amount, region_accepts
from router.checkout.service import CheckoutService
from router.logs import clean
from router.redact import mask
from router.web.jsonbody import MAX_DEPTH, DuplicateKey, is_json, loads, nesting_depth
from router.web.openapi import OPENAPI
from router.web.routing import Flow, RouteTable, normalize_host

MAX_BODY = 16 * 1024
MONEY_KEYS = frozenset({"amount", "currencyCode"})
RETURN_URL_KEYS = {Flow.SUCCESS: "checkoutResultReturnUrl", Flow.CANCEL: "checkoutCancelUrl",
                   Flow.ERROR: "checkoutErrorUrl"}
# App API: the HTTP status and error code for a checkout that did not end in a payment.
UNPAID = {
    State.DECLINED: (402, "payment_declined", "Amazon Pay declined the payment."),
    State.CANCELED: (409, "checkout_canceled", "The buyer canceled the checkout."),
    State.EXPIRED: (410, "checkout_expired", "The checkout expired before it was completed."),
    State.FAILED: (422, "finalize_failed", "Amazon Pay refused to complete the checkout."),
}


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.headers = status, code, message, dict(headers or {})


def error_response(status: int, code: str, message: str, headers: Mapping[str, str] | None = None,
                   **extra: Any) -> JSONResponse:
    body = {"error": {"code": code, "message": message}, **extra}
    return JSONResponse(body, status_code=status, headers={"cache-control": "no-store", **(headers or {})})


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def checkout_json(c: Checkout, *, merchant: bool) -> dict[str, Any]:
    """The checkout as the merchant backend (everything) or the app (what the buyer needs) sees it."""
    body: dict[str, Any] = {
        "ref": c.ref,
        "merchantReference": c.merchant_reference,
        "state": c.state,
        "chargeAmount": {"amount": c.amount, "currencyCode": c.currency},
        "checkoutSessionId": c.checkout_session_id,
        "chargeId": c.charge_id,
        "chargePermissionId": c.charge_permission_id,
        "reasonCode": c.reason_code,
        "buyer": dict(c.result) if c.result else None,
        "expiresAt": iso(c.expires_at),
    }
    if merchant:
        body |= {
            "paymentIntent": c.payment_intent,
            "canHandlePendingAuthorization": c.can_handle_pending,
            "totalOrderAmount": ({"amount": c.total_order_amount, "currencyCode": c.currency}
                                 if c.total_order_amount else None),
            "createdAt": iso(c.created_at),
            "updatedAt": iso(c.updated_at),
        }
    return body


def return_urls(table: RouteTable, ref: str, request_host: str, scheme: str) -> dict[str, str]:
    """The three return URLs for the app's Amazon Pay button: first route of each flow, `ref` added.

    A config file whose first route of a flow has a wildcard host does not load (it has no host to
    give Amazon). Only the built-in demo has one ("*", loopback only): its URLs take the request's host.
    """
    urls = {}
    for flow, key in RETURN_URL_KEYS.items():
        route = table.first(flow)
        assert route is not None  # config guarantees one route per flow
        host = (request_host or "localhost") if route.host.startswith("*") else route.host
        urls[key] = f"{scheme}://{host}{route.path}?{urlencode({'ref': ref})}"
    return urls


class BodyTooLarge(Exception):
    """A request body longer than its reader takes. `unread`: refused on its Content-Length, before any of
    it was read: the answer closes the connection (what the client sends next would be read as that body)."""

    def __init__(self, unread: bool) -> None:
        super().__init__("request body too large")
        self.unread = unread


_CONTENT_LENGTH = re.compile(r"[0-9]{1,19}", re.ASCII)  # llhttp has refused a longer or malformed one


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, at most `limit` bytes: BodyTooLarge beyond, with the rest unread; ClientDisconnect
    passes. A Content-Length beyond the limit is refused before the first read: at that read uvicorn would
    answer `Expect: 100-continue` with `100 Continue`, inviting the whole body."""
    declared = request.headers.get("content-length")
    if declared is not None and _CONTENT_LENGTH.fullmatch(declared) and int(declared) > limit:
        raise BodyTooLarge(unread=True)
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge(unread=False)
        chunks.append(chunk)
    return b"".join(chunks)


async def read_json(request: Request) -> dict[str, Any]:
    if not is_json(request.headers.get("content-type")):
        raise ApiError(415, "unsupported_media_type", "send Content-Type: application/json")
    try:
        raw = await read_body(request, MAX_BODY)
    except BodyTooLarge as exc:
        raise ApiError(413, "body_too_large", f"the body must be at most {MAX_BODY} bytes",
                       {"connection": "close"} if exc.unread else None) from None
    except ClientDisconnect:  # the client's fault, not ours: a 4xx nobody reads, not an ERROR and a 500
        raise ApiError(400, "incomplete_body", "the client went away before the body ended") from None
    if nesting_depth(raw) > MAX_DEPTH:
        raise ApiError(400, "invalid_json", f"the body nests deeper than {MAX_DEPTH} levels")
    try:
        data = loads(raw)
    except DuplicateKey as exc:
        raise ApiError(400, "invalid_json", f"the body repeats the key \"{clean(exc.key, 64)}\"") from None
    except (ValueError, UnicodeDecodeError):
        raise ApiError(400, "invalid_json", "the body is not valid JSON") from None
    if not isinstance(data, dict):
        raise ApiError(400, "invalid_json", "the body must be a JSON object")
    return data


def parse_new_checkout(data: Mapping[str, Any], region: str | None = None) -> NewCheckout:
    """The order in a POST /v1/checkouts body; `region`: the merchant's Amazon Pay region (None: the emulator)."""
    allowed = {"merchantReference", "chargeAmount", "paymentIntent", "canHandlePendingAuthorization",
               "totalOrderAmount", "supplementaryData"}
    unknown = sorted(set(data) - allowed)
    if unknown:  # clean(): a key may hold a lone surrogate, which no JSON answer could encode
        raise ApiError(400, "unknown_field", f"unknown field(s): {clean(', '.join(unknown), 200)}")
    reference = data.get("merchantReference")
    # An order id, in logs and Amazon's merchantReferenceId: isprintable() refuses every control
    # (NUL, the rest of C0, C1) and lone surrogates.
    if not isinstance(reference, str) or not 1 <= len(reference) <= 128 or not reference.isprintable():
        raise ApiError(400, "invalid_merchant_reference", "merchantReference must be 1-128 printable characters")
    amount, currency = _money(data.get("chargeAmount"), "chargeAmount")
    if not region_accepts(region, currency):
        accepted = ", ".join(sorted(REGION_CURRENCIES[str(region)]))
        raise ApiError(400, "currency_not_supported",
                       f"Amazon Pay region {region} does not charge in {currency}; it takes {accepted}")
    intent = data.get("paymentIntent")
    if intent not in PAYMENT_INTENTS:
        raise ApiError(400, "invalid_payment_intent", f"paymentIntent must be one of {', '.join(PAYMENT_INTENTS)}")
    pending = data.get("canHandlePendingAuthorization", False)
    if not isinstance(pending, bool):
        raise ApiError(400, "invalid_field", "canHandlePendingAuthorization must be true or false")
    total = None
    if data.get("totalOrderAmount") is not None:
        total, total_currency = _money(data["totalOrderAmount"], "totalOrderAmount")
        if total_currency != currency:
            raise ApiError(400, "currency_mismatch", "totalOrderAmount must use the chargeAmount currency")
    supplementary = data.get("supplementaryData")
    if supplementary is not None and (not isinstance(supplementary, str) or len(supplementary) > 2048
                                      or not is_storable_text(supplementary)):
        raise ApiError(400, "invalid_field", "supplementaryData must be a string of at most 2048 characters, "
                                             "without NUL or lone surrogates")
    return NewCheckout(reference, amount, currency, str(intent), pending, total, supplementary)


def is_storable_text(text: str) -> bool:
    """No NUL (a PostgreSQL text cannot hold one) and no lone surrogate (UTF-8 has no encoding for it).

    For free text only: supplementaryData is opaque merchant data (often JSON) that Amazon gets
    verbatim, so tabs, line breaks and other controls stay allowed; the signed payload escapes them.
    """
    if "\x00" in text:
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _money(value: Any, field: str) -> tuple[str, str]:
    if not isinstance(value, dict) or not set(value) <= MONEY_KEYS:
        raise ApiError(400, "invalid_amount", f"{field} must be {{\"amount\": \"14.00\", \"currencyCode\": \"USD\"}}")
    try:
        return normalize_amount(value.get("amount"), value.get("currencyCode"))
    except AmountError as exc:
        raise ApiError(400, "invalid_amount", f"{field}: {exc}") from None


IN_PROGRESS = "the payment is still being confirmed; retry shortly"  # 503 in_progress, either cause


def outcome_response(outcome: Outcome) -> JSONResponse:
    """The app API's answer for a finalize attempt or a state read.

    Error answers carry the error only: whoever sends a ref with a made-up session id learns nothing
    about the order (reference, amount, state) from them.
    """
    c = outcome.checkout
    body = checkout_json(c, merchant=False)
    if outcome.error == OutcomeError.UNKNOWN_SESSION:
        return error_response(404, "unknown_session",
                              "Amazon Pay does not know this checkout session, or it is another order's.")
    if outcome.error is not None:
        return error_response(503, "amazon_unavailable", "Amazon Pay could not be reached; try again shortly.",
                              {"retry-after": "5"})
    if c.state in (State.COMPLETED, State.AUTHORIZED):
        return JSONResponse(body, headers={"cache-control": "no-store"})
    if c.state == State.PENDING:
        return JSONResponse(body, status_code=202, headers={"cache-control": "no-store", "retry-after": "5"})
    if c.state == State.CREATED:  # bound, Amazon's answer not stored yet (the reconciler resumes it): not paid
        return error_response(503, "in_progress", IN_PROGRESS, {"retry-after": "5"})
    status, code, message = UNPAID[c.state]
    return error_response(status, code, message)


class Api:
    def __init__(self, service: CheckoutService, table: RouteTable, api_token: str | None,
                 button: ButtonSigner | None, https_only: bool = True, region: str | None = None) -> None:
        self.region = region  # the merchant's Amazon Pay region; None: the emulator, any currency
        self.service = service
        self.table = table
        self.api_token = api_token
        self.button = button
        self.https_only = https_only

    def routes(self) -> list[Route]:
        return [
            Route("/v1/checkouts", self.guard(self.create_checkout), methods=["POST"]),
            Route("/v1/checkouts/{ref}", self.guard(self.read_checkout), methods=["GET"]),
            Route("/v1/checkout-sessions/{session_id}/finalize", self.guard(self.finalize), methods=["POST"]),
            Route("/v1/checkout-sessions/{session_id}", self.guard(self.read_session), methods=["GET"]),
            Route("/v1/openapi.json", self.openapi, methods=["GET"]),
        ]

    def guard(self, handler: Any) -> Any:
        async def endpoint(request: Request) -> Response:
            try:
                response: Response = await handler(request)
                return response
            except ApiError as exc:
                return error_response(exc.status, exc.code, exc.message, exc.headers)
        return endpoint

    def authorize(self, request: Request) -> None:
        if self.api_token is None:
            raise ApiError(401, "unauthorized", "the merchant API is disabled: set [merchant] api_token_env")
        given = request.headers.getlist("authorization")
        if len(given) > 1:  # which one counts would be up to each proxy on the way: none does
            raise ApiError(401, "unauthorized", "send one Authorization header, not several",
                           {"www-authenticate": "Bearer"})
        scheme, _, token = (given[0] if given else "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(), self.api_token.encode()):
            raise ApiError(401, "unauthorized", "missing or wrong bearer token", {"www-authenticate": "Bearer"})

    async def create_checkout(self, request: Request) -> Response:
        self.authorize(request)
        new = parse_new_checkout(await read_json(request), self.region)
        checkout = await self.service.register(new)
        scheme = "https" if self.https_only else request.url.scheme
        host = normalize_host(request.headers.get("host", ""))
        urls = return_urls(self.table, checkout.ref, host, scheme)
        body: dict[str, Any] = {"ref": checkout.ref, "returnUrls": urls, "expiresAt": iso(checkout.expires_at),
                                "checkout": checkout_json(checkout, merchant=True)}
        if self.button is not None:
            body["button"] = self.button.sign(checkout, urls)
        return JSONResponse(body, status_code=201, headers={"cache-control": "no-store"})

    async def read_checkout(self, request: Request) -> Response:
        self.authorize(request)
        checkout = await self.service.get(request.path_params["ref"])
        if checkout is None:
            raise ApiError(404, "unknown_ref", "no checkout with this ref")
        return JSONResponse(checkout_json(checkout, merchant=True), headers={"cache-control": "no-store"})

    async def finalize(self, request: Request) -> Response:
        session_id = self.session_id(request)
        ref = (await read_json(request)).get("ref")
        if not isinstance(ref, str):
            raise ApiError(400, "missing_ref", "the body must be {\"ref\": \"…\"}")
        logs.identified(ref=mask(ref), session_id=mask(session_id))  # as a return's lines carry them
        try:
            outcome = await self.service.finalize(ref, session_id)
        except InvalidSessionId:
            raise ApiError(400, "invalid_session_id", "the checkout session id is malformed") from None
        except UnknownRef:
            raise ApiError(404, "unknown_ref", "no checkout with this ref") from None
        except SessionOfAnotherOrder:  # this order is untouched: its own session still pays it
            raise ApiError(409, "session_conflict", "this checkout session belongs to another order") from None
        except SessionConflict:
            raise ApiError(409, "session_conflict", "this order was settled with another checkout session") from None
        except Busy:
            raise ApiError(503, "in_progress", IN_PROGRESS, {"retry-after": "2"}) from None
        return outcome_response(outcome)

    async def read_session(self, request: Request) -> Response:
        session_id = self.session_id(request)
        refs = request.query_params.getlist("ref")
        if len(refs) > 1:  # which one counts would be up to each layer on the way, as on the pages: none
            raise ApiError(400, "repeated_ref", "send ref once in the query, not several times")
        ref = refs[0] if refs else ""
        checkout = await self.service.get(ref)
        if checkout is None or checkout.checkout_session_id != session_id:
            raise ApiError(404, "unknown_checkout", "no checkout with this ref and session id")
        checkout = await self.service.look_pending(checkout)
        return outcome_response(Outcome(checkout))

    @staticmethod
    def session_id(request: Request) -> str:
        session_id = str(request.path_params["session_id"])
        if not is_session_id(session_id):
            raise ApiError(400, "invalid_session_id", "the checkout session id is malformed")
        return session_id

    async def openapi(self, request: Request) -> Response:
        return JSONResponse(OPENAPI)
