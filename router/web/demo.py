"""The built-in demo: any Host, embedded SQLite, the Amazon Pay emulator in-process, a landing page.

The landing page runs each scenario through the real path: it registers a checkout with the
orchestrator, creates a session in the emulator like the Amazon Pay button would, and redirects the
browser to the return URL the way Amazon does.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

import httpx
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from router.checkout.model import NewCheckout
from router.checkout.service import CheckoutService
from router.config import AndroidSettings, IosSettings, MerchantSettings, Settings, StorageSettings
from router.web.api import BodyTooLarge, read_body, return_urls
from router.web.branding import Logo, PagesSettings
from router.web.demo_page import MAX_DEMO_FORM_BYTES, DemoView, demo_response, parse_demo_form
from router.web.routing import Flow, RouteTable
from router.web.routing import Route as ReturnRoute

MAX_CHECKOUTS = 1000  # a demo left running on a public address keeps this many; the oldest go first

# Scenario name on the landing page → (emulator scenario, fault options, where Amazon sends the buyer)
SCENARIOS: dict[str, tuple[str, dict[str, Any], Flow]] = {
    "completed": ("completed", {}, Flow.SUCCESS),
    "pending-then-authorized": ("pending-then-authorized", {}, Flow.SUCCESS),
    "pending-then-declined": ("pending-then-declined", {}, Flow.SUCCESS),
    "declined": ("declined", {}, Flow.SUCCESS),
    "expired": ("expired", {}, Flow.SUCCESS),
    "buyer-canceled": ("buyer-canceled", {}, Flow.CANCEL),
    "amazon-error": ("completed", {}, Flow.ERROR),  # Amazon gives up and sends the buyer to the error URL
}
# The demo shop's wordmark: served from memory like a merchant's logo_file.
DEMO_LOGO = Logo(
    b'<svg xmlns="http://www.w3.org/2000/svg" width="160" height="40" viewBox="0 0 160 40">'
    b'<rect x="2" y="8" width="24" height="24" rx="6" fill="#b4451f"/>'
    b'<path d="M9 17h10l-1 9h-8z" fill="#fff"/>'
    b'<text x="34" y="27" font-family="DejaVu Sans, sans-serif" font-size="18" font-weight="700" fill="#b4451f">'
    b"Demo Shop</text></svg>",
    "image/svg+xml",
)


DEMO_BRANDING = PagesSettings(logo=DEMO_LOGO, accent_color="#b4451f", support_email="support@demo-shop.example")


def demo_settings(db_path: str) -> Settings:
    return Settings(
        routes=(
            ReturnRoute("*", "/amazon-pay/result", Flow.SUCCESS),
            ReturnRoute("*", "/amazon-pay/cancel", Flow.CANCEL),
            ReturnRoute("*", "/amazon-pay/error", Flow.ERROR),
        ),
        ios=IosSettings(app_ids=("ABCDE12345.com.example.shop",), app_store_id="1234567890",
                        open_in_app_host="open.demo-shop.example"),
        android=AndroidSettings(
            package="com.example.shop",
            sha256_cert_fingerprints=(
                "14:6D:E9:83:C5:73:06:50:D8:EE:B9:95:2F:34:FC:64:16:A0:83:42:E6:1D:BE:A8:8A:04:96:B2:3F:CF:44:E5",
            ),
        ),
        # The shop is the landing page; the flows move it onto whatever host the demo is reached at.
        merchant=MerchantSettings(name="Demo Shop", shop_url="http://localhost/"),
        pages=DEMO_BRANDING,
        storage=StorageSettings(url=f"sqlite:///{db_path}"),
        source="<built-in demo>",
        demo=True,
    )


class Demo:
    def __init__(self, service: CheckoutService, table: RouteTable, emulator: Starlette) -> None:
        self.service = service
        self.table = table
        self.emulator = httpx.AsyncClient(transport=httpx.ASGITransport(app=emulator),
                                          base_url="http://amazon-pay-emulator.invalid")

    def routes(self) -> list[Route]:
        return [Route("/", self.landing, methods=["GET", "HEAD"]),
                Route("/demo/start", self.start, methods=["POST"])]

    async def landing(self, request: Request) -> Response:
        return demo_response(DemoView(), request, DEMO_BRANDING)

    async def start(self, request: Request) -> Response:
        try:
            form = await read_body(request, MAX_DEMO_FORM_BYTES)
        except BodyTooLarge as exc:  # the form is a few fields: nothing longer is read
            return Response("The demo form is too large.\n", status_code=413, media_type="text/plain",
                            headers={"connection": "close"} if exc.unread else None)
        except ClientDisconnect:  # gone, or cut off by [server] body_timeout_seconds: nobody reads an answer
            return Response(status_code=400)
        try:
            choice = parse_demo_form(form)
        except ValueError:
            return RedirectResponse("/", status_code=303)
        emulator_scenario, faults, flow = SCENARIOS[choice.scenario]
        pending = choice.scenario.startswith("pending")
        checkout = await self.service.register(NewCheckout(
            merchant_reference=f"demo-{choice.scenario}", amount=choice.amount, currency=choice.currency,
            payment_intent="AuthorizeWithCapture", can_handle_pending=pending))
        await self.service.store.drop_oldest_checkouts(MAX_CHECKOUTS)
        # The session carries the result URL registering gave out, as the app's signed button payload does
        # (only a session naming the order's ref may decline or cancel it).
        result_url = return_urls(self.table, checkout.ref, request.url.netloc, request.url.scheme)
        body = {"chargeAmount": {"amount": checkout.amount, "currencyCode": checkout.currency},
                "paymentIntent": checkout.payment_intent, "scenario": emulator_scenario, **faults,
                "webCheckoutDetails": {"checkoutResultReturnUrl": result_url["checkoutResultReturnUrl"]}}
        answer = await self.emulator.post("/_emulator/checkout-sessions", json=body)
        answer.raise_for_status()
        session_id = answer.json()["checkoutSessionId"]
        route = self.table.first(flow)
        assert route is not None
        query = {"ref": checkout.ref, "amazonCheckoutSessionId": session_id}
        if choice.locale:
            query["lang"] = choice.locale
        return RedirectResponse(f"{route.path}?{urlencode(query)}", status_code=303)
