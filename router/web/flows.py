"""The success / cancel / error handlers for buyers who return through a browser."""

from __future__ import annotations

import functools
import logging
from dataclasses import replace
from typing import Any
from urllib.parse import parse_qs, quote_from_bytes, urlsplit, urlunsplit

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

import router.metrics as metrics
from router.checkout.model import (
    SESSION_ID_PARAMS,
    Busy,
    Checkout,
    InvalidSessionId,
    Outcome,
    OutcomeError,
    SessionConflict,
    SessionOfAnotherOrder,
    State,
    UnknownRef,
    is_session_id,
)
from router.checkout.service import CheckoutService, NotBound
from router.config import Settings
from router.redact import mask
from router.web.branding import LOGO_PATH
from router.web.guard import is_usable_host
from router.web.links import alternate_host_url, site_path
from router.web.pages import RETRY_KINDS, AppLinks, PageKind, PageView
from router.web.platform import detect_platform
from router.web.render import logo_response, page_response
from router.web.routing import Flow, Route, normalize_host, raw_path

log = logging.getLogger("router.web.flows")

MAX_QUERY = 2048
MAX_QUERY_FIELDS = 50
PAGE_OF_STATE: dict[str, PageKind] = {
    State.COMPLETED: "success", State.AUTHORIZED: "success", State.PENDING: "pending", State.DECLINED: "declined",
    State.CANCELED: "canceled", State.EXPIRED: "expired", State.FAILED: "error", State.CREATED: "error",
}
PAID_OR_PENDING = frozenset({State.COMPLETED, State.AUTHORIZED, State.PENDING})  # never "no payment was made"
APP_KINDS: frozenset[PageKind] = frozenset({"conflict", "unavailable"})  # error pages that offer "Open in app"


class BadReturn(Exception):
    """The return URL is malformed; the message is a key of the pages' catalogs (it never echoes input)."""

    @property
    def reason_key(self) -> str:
        return str(self.args[0])


def session_and_ref(query: str) -> tuple[str, str]:
    """Extract (session id, ref) from a return URL's query; BadReturn when missing, repeated or malformed."""
    if len(query) > MAX_QUERY:
        raise BadReturn("reason.too_long")
    params = query_params(query)
    found = [value for name in SESSION_ID_PARAMS for value in params.get(name, [])]
    refs = params.get("ref", [])
    if len(set(found)) > 1 or len(refs) > 1:
        raise BadReturn("reason.two_checkouts")
    if not found or not found[0]:
        raise BadReturn("reason.no_session")
    if not refs or not refs[0]:
        raise BadReturn("reason.no_ref")
    if not is_session_id(found[0]):
        raise BadReturn("reason.invalid_session")
    return found[0], refs[0]


def order_ref(query: str) -> str | None:
    """The one order a cancel or error URL names (None: none); BadReturn when the query is too long, has
    too many fields or names two orders: a page that could not read the order must not guess about it
    ("no payment was made" for a paid one)."""
    if len(query) > MAX_QUERY:
        raise BadReturn("reason.too_long")
    refs = set(query_params(query).get("ref", [])) - {""}
    if len(refs) > 1:
        raise BadReturn("reason.two_checkouts")
    return next(iter(refs), None)


def query_params(query: str) -> dict[str, list[str]]:
    """parse_qs with a bound on the number of fields; BadReturn beyond it."""
    try:
        return parse_qs(query, keep_blank_values=True, max_num_fields=MAX_QUERY_FIELDS)
    except ValueError:  # "Max number of fields exceeded"
        raise BadReturn("reason.too_many_fields") from None


class Flows:
    def __init__(self, service: CheckoutService, settings: Settings) -> None:
        self.service = service
        self.settings = settings
        self.table = settings.route_table
        self.scheme = "https"
        self.shop_url = settings.merchant.shop_url
        self.branding = settings.pages

    def return_url(self, kind: PageKind) -> str | None:
        """Where the page's main link goes: shopping on after a payment, trying again after a failed one."""
        if kind == "success":
            return self.branding.continue_shopping_url or self.shop_url
        if kind in RETRY_KINDS:
            return self.branding.retry_url or self.shop_url
        return self.shop_url

    async def dispatch(self, request: Request) -> Response:
        path, host = raw_path(request.scope), request.headers.get("host", "")
        if path == LOGO_PATH and self.branding.logo is not None:
            return logo_response(self.branding.logo, request)
        route = self.table.match(host, path)
        if route is None:
            route_path = self.table.without_slash(host, path)
            if route_path is not None:
                return to_route(route_path, request.scope.get("query_string", b""))
            return self.error_page(request, "not_found")
        response = await self.serve_route(request, route)
        self._count(request, route)
        return response

    def unavailable(self, request: Request, failure: Exception | None = None) -> Response:
        """The store could not answer (the app's handler of StoreUnavailable): the "briefly unavailable"
        page, counted like the other pages when the request was a return. A return whose session could not
        be bound is told so: nothing keeps checking it but the page's own refresh."""
        reason = "reason.not_bound" if isinstance(failure, NotBound) else None
        response = self.error_page(request, "unavailable", reason_key=reason)
        route = self.table.match(request.headers.get("host", ""), raw_path(request.scope))
        if route is not None:
            self._count(request, route)
        return response

    def _count(self, request: Request, route: Route) -> None:
        platform = detect_platform(request.headers.get("user-agent"))  # labels: route.host is a configured host
        metrics.returned(route.host, route.flow.value, getattr(request.state, "page", "unknown"), platform.os,
                         platform.in_app_browser)

    async def serve_route(self, request: Request, route: Route) -> Response:
        if route.flow is Flow.SUCCESS:
            return await self.success(request)
        if route.flow is Flow.CANCEL:
            return await self.cancel(request)
        return await self.amazon_error(request)

    async def amazon_error(self, request: Request) -> Response:
        """Amazon sent the buyer to the error URL: nothing was charged; a plain, honest page, and one
        line naming the order (the service notes its merchant_reference) when the ref is known. An
        order already paid (or pending) is shown as it is: anyone with the ref can load this URL, and
        "no payment was made" would invite a second payment. So with a ref and the store unreachable,
        StoreUnavailable goes on to the "briefly unavailable" page, which refreshes itself."""
        try:
            ref = order_ref(request.url.query)
        except BadReturn as exc:
            return self.error_page(request, "bad_request", reason_key=exc.reason_key)
        checkout = await self.service.get(ref) if ref else None
        if checkout is not None:
            log.info("buyer sent to the error URL by Amazon Pay for %s", mask(checkout.ref))
        if checkout is not None and checkout.state in PAID_OR_PENDING:
            return self.page(request, self.result_view(Outcome(checkout), buyer=False))
        if checkout is not None and checkout.state == State.CREATED and checkout.checkout_session_id:
            # A return is finalizing it (or it is being resumed): not known unpaid; the page refreshes.
            return self.being_confirmed(request)
        return self.page(request, PageView(kind="amazon_error", merchant_name=self.settings.merchant.name,
                                           return_url=self.return_url("amazon_error")))

    async def success(self, request: Request) -> Response:
        try:
            session_id, ref = session_and_ref(request.url.query)
        except BadReturn as exc:
            return self.error_page(request, "bad_request", reason_key=exc.reason_key)
        try:
            outcome = await self.service.finalize(ref, session_id)
        except InvalidSessionId:
            return self.error_page(request, "bad_request", reason_key="reason.invalid_session")
        except UnknownRef:
            return self.error_page(request, "not_found")
        except SessionOfAnotherOrder:
            log.warning("return for %s with %s, another order's session", mask(ref), mask(session_id))
            return self.error_page(request, "conflict")
        except SessionConflict:
            log.warning("return for %s with another session %s", mask(ref), mask(session_id))
            return self.error_page(request, "conflict")
        except Busy:
            return self.being_confirmed(request)
        if outcome.checkout.state == State.PENDING:
            outcome = Outcome(await self.service.look_pending(outcome.checkout))
        return self.page(request, self.result_view(outcome))

    async def cancel(self, request: Request) -> Response:
        try:
            ref = order_ref(request.url.query)
        except BadReturn as exc:
            return self.error_page(request, "bad_request", reason_key=exc.reason_key)
        try:
            outcome = await self._cancel_or_look(request, ref)
        except Busy:
            return self.being_confirmed(request)
        # The buyer returned from Amazon (or paid meanwhile): say what is true, not "canceled".
        if outcome is not None and (outcome.error is not None or outcome.checkout.state != State.CANCELED):
            return self.page(request, self.result_view(outcome, buyer=False))
        checkout = outcome.checkout if outcome is not None else None
        return self.page(request, PageView(kind="canceled", merchant_name=self.settings.merchant.name,
                                           return_url=self.return_url("canceled"), **_order(checkout)))

    async def _cancel_or_look(self, request: Request, ref: str | None) -> Outcome | None:
        """GET cancels; HEAD (a link checker, a preview's probe) changes nothing and gets the headers GET
        would: an order still open shows as canceled, one bound to a session as "being confirmed"."""
        if not ref:
            return None
        if request.method != "HEAD":
            return await self.service.cancel(ref)
        checkout = await self.service.get(ref)
        if checkout is None or checkout.state != State.CREATED:
            return Outcome(checkout) if checkout is not None else None
        if checkout.checkout_session_id is not None:
            raise Busy(ref)
        return Outcome(replace(checkout, state=State.CANCELED))

    def result_view(self, outcome: Outcome, *, buyer: bool = True) -> PageView:
        """The page of an outcome. `buyer`: show who paid and with what (the result URL, which carries the
        session id); the error and cancel URLs carry only the ref, which is not the buyer's to keep."""
        checkout = outcome.checkout
        name = self.settings.merchant.name
        if outcome.error == OutcomeError.UNKNOWN_SESSION:
            return PageView(kind="bad_request", merchant_name=name, return_url=self.shop_url,
                            reason_key="reason.unknown_session")
        if outcome.error is not None:
            return PageView(kind="unavailable", merchant_name=name, refresh_seconds=10, **_order(checkout))
        kind = PAGE_OF_STATE[checkout.state]
        shown = (checkout.result or {}) if buyer and kind == "success" else {}
        return PageView(
            kind=kind,
            merchant_name=name,
            buyer_name=shown.get("buyerName"),
            buyer_email=shown.get("maskedEmail"),
            payment_descriptor=shown.get("paymentDescriptor"),
            return_url=self.return_url(kind),
            reference_code=checkout.reason_code if kind == "error" else None,
            **_order(checkout),
        )

    def being_confirmed(self, request: Request) -> Response:
        """The refreshing "we're confirming your payment" page: a finalize of this order is under way."""
        return self.page(request, PageView(kind="pending", merchant_name=self.settings.merchant.name,
                                           refresh_seconds=3))

    def page(self, request: Request, view: PageView) -> Response:
        request.state.page = view.kind  # for the returns metric
        current = self.current_url(request)
        view = self.demo_links(view, current)
        return page_response(view, request, self.app_links(current), current_url=current, branding=self.branding,
                             test_mode=self.settings.test_mode)

    def demo_links(self, view: PageView, current_url: str) -> PageView:
        """The demo answers on any host: its shop (the landing page) lives on the host the buyer used."""
        if not self.settings.demo or view.return_url is None:
            return view
        here, there = urlsplit(current_url), urlsplit(view.return_url)
        return replace(view, return_url=urlunsplit((here.scheme, here.netloc, there.path, there.query, "")))

    def error_page(self, request: Request, kind: PageKind, *, status: int | None = None,
                   reason_key: str | None = None) -> Response:
        unavailable = kind == "unavailable"
        view = PageView(kind=kind, merchant_name=self.settings.merchant.name, status=status, reason_key=reason_key,
                        # as the page for Amazon unreachable: no "back to the shop" that invites paying again
                        return_url=None if unavailable else self.return_url(kind),
                        refresh_seconds=10 if unavailable else None)
        request.state.page = kind  # for the returns metric
        current = self.current_url(request)
        # A return's own URL that could not be answered now (the store) or here (another session's ref): the
        # app may do better with it. Never for a URL that is not a valid return (not found, malformed).
        offer_app = kind in APP_KINDS and self.table.match(request.headers.get("host", ""), raw_path(request.scope))
        return page_response(self.demo_links(view, current), request, self.app_links(current) if offer_app else None,
                             current_url=current, branding=self.branding, test_mode=self.settings.test_mode)

    def current_url(self, request: Request) -> str:
        """The public URL of this page (https; the demo keeps the scheme it was reached with)."""
        scheme = request.url.scheme if self.settings.demo else self.scheme
        raw_host = request.headers.get("host", "")
        # A refused request's page is built here too: never on a Host that no URL can carry.
        host = (normalize_host(raw_host) if is_usable_host(raw_host) else "") or "localhost"
        if self.settings.demo and request.url.port:
            host = f"{host}:{request.url.port}"
        return urlunsplit((scheme, host, site_path(request.url.path), request.url.query[:MAX_QUERY], ""))

    def app_links(self, current_url: str) -> AppLinks:
        ios = self.settings.ios
        open_host = ios.open_in_app_host if ios else None
        if not open_host:  # nothing of the request in them: the same links for every page
            return self._fixed_links
        here = urlsplit(current_url).hostname
        return replace(self._fixed_links,
                       ios_open_url=alternate_host_url(current_url, open_host) if open_host != here else None)

    @functools.cached_property
    def _fixed_links(self) -> AppLinks:
        ios, android = self.settings.ios, self.settings.android
        return AppLinks(app_store_id=ios.app_store_id if ios else None,
                        android_package=android.package if android else None,
                        play_store_url=android.play_store_url if android else None)


def to_route(path: str, query: bytes) -> Response:
    """A redirect to the route's own path on this site (a path-only Location), the query kept byte for byte."""
    target = path + ("?" + quote_from_bytes(query, safe="/?:@!$&'()*+,;=%-._~") if query else "")
    return RedirectResponse(target, status_code=308, headers={"cache-control": "no-store",
                                                              "referrer-policy": "no-referrer"})


def _order(checkout: Checkout | None) -> dict[str, Any]:
    """The order lines a page shows (reference and amount), when the checkout is known."""
    if checkout is None:
        return {}
    return {"merchant_reference": checkout.merchant_reference, "amount": checkout.amount,
            "currency": checkout.currency}
