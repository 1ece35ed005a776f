"""Baseline for the flows benchmark: a bare Starlette route rendering the same page template."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from router.web.pages import PageView
from router.web.platform import detect_platform
from router.web.render import render_page

VIEW = PageView(kind="canceled", merchant_name="Example Shop", merchant_reference="order-1", amount="14.00",
                currency="USD", return_url="https://shop.example.com/cart")


async def page(request: Request) -> Response:
    html = render_page(VIEW, "en", detect_platform(request.headers.get("user-agent")), str(request.url))
    return HTMLResponse(html)


app = Starlette(routes=[Route("/{path:path}", page)])
