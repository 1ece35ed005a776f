"""Baselines for the page benchmarks: a bare Starlette route rendering the same page template.

`app` is what the issue names: a route that builds the page's context and has Jinja2 render page.html for
every request. `shaped_app` renders through the service's own renderer (router.web.render.render_page, one
Jinja2 rendering per page shape), so the service's pages can also be set beside a bare route that is as
fast at rendering as they are.
"""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from router.web.pages import PageView
from router.web.platform import detect_platform
from router.web.render import build_context, render_full, render_page

VIEW = PageView(kind="canceled", merchant_name="Example Shop", merchant_reference="order-1", amount="14.00",
                currency="USD", return_url="https://shop.example.com/cart")


async def jinja_page(request: Request) -> Response:
    context = build_context(VIEW, "en", detect_platform(request.headers.get("user-agent")), str(request.url))
    return HTMLResponse(render_full("page.html", context))


async def shaped_page(request: Request) -> Response:
    html = render_page(VIEW, "en", detect_platform(request.headers.get("user-agent")), str(request.url))
    return HTMLResponse(html)


app = Starlette(routes=[Route("/{path:path}", jinja_page)])
shaped_app = Starlette(routes=[Route("/{path:path}", shaped_page)])
