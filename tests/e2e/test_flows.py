"""Buyers returning through a browser: routing, finalize exactly once, the page that tells the truth."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlencode

import httpx
import pytest

from router.app import create_app
from router.checkout.probes import LOOK_INTERVAL
from router.config import Settings, load
from tests.support import serve_app
from tests.support.config import HOST, TOKEN, router_config
from tests.support.emulator import Emulator
from tests.support.processes import page_kind
from tests.support.routers import Router

SUCCESS = "/amazon-pay/result"
IPHONE = ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
          "Version/17.5 Mobile/15E148 Safari/604.1")


def result_url(ref: str, session_id: str, name: str = "amazonCheckoutSessionId", **extra: str) -> str:
    return f"{SUCCESS}?{urlencode({'ref': ref, name: session_id, **extra})}"


@pytest.mark.parametrize("name", ["amazonCheckoutSessionId", "CheckoutSessionId", "checkoutSessionId"])
def test_success_page_with_either_parameter_name(jp_router: Router, emulator: Emulator, name: str) -> None:
    router = jp_router
    ref = router.register(amount="1000", currency="JPY")["ref"]
    session_id = emulator.create_session(amount="1000", currency="JPY")
    page = router.get(result_url(ref, session_id, name))
    assert page.status_code == 200
    assert "Thank you, " in page.text
    assert "¥1,000" in page.text and "order-1" in page.text
    visible = re.sub(r"<[^>]*>", " ", page.text)  # links carry it (open in app, language); text never
    assert session_id not in visible
    assert page.headers["referrer-policy"] == "no-referrer" and page.headers["cache-control"] == "no-store"
    assert page.headers["x-robots-tag"] == "noindex"
    assert len(emulator.requests("finalizeCheckoutSession")) == 1


def test_japanese_page(router: Router, emulator: Emulator) -> None:
    ref = router.register()["ref"]
    session_id = emulator.create_session()
    page = router.get(result_url(ref, session_id), **{"accept-language": "ja-JP,ja;q=0.9"})
    assert page.status_code == 200 and 'lang="ja"' in page.text
    english = router.get(result_url(ref, session_id, lang="en"), **{"accept-language": "ja-JP"})
    assert "Thank you, " in english.text


def test_refresh_renders_from_the_store(router: Router, emulator: Emulator) -> None:
    ref = router.register()["ref"]
    session_id = emulator.create_session()
    pages = [router.get(result_url(ref, session_id)) for _ in range(3)]
    assert all("Thank you, " in p.text for p in pages)
    assert len(emulator.requests("finalizeCheckoutSession")) == 1


@pytest.mark.parametrize(("scenario", "title"), [
    ("declined", "Payment not completed"),
    ("expired", "This checkout has expired"),
    ("buyer-canceled", "Payment canceled"),
])
def test_unpaid_scenarios_say_so(router: Router, emulator: Emulator, scenario: str, title: str) -> None:
    ref = router.register()["ref"]
    page = router.get(result_url(ref, emulator.create_session(scenario=scenario, ref=ref)))
    assert page.status_code == 200 and title in page.text
    assert "Thank you, " not in page.text


def test_pending_page_refreshes_itself_until_final(router: Router, emulator: Emulator) -> None:
    ref = router.register(pending=True)["ref"]
    session_id = emulator.create_session(scenario="pending-then-declined", ref=ref)
    first = router.get(result_url(ref, session_id))
    assert "Confirming your payment" in first.text
    assert 'http-equiv="refresh"' in first.text and "<script" not in first.text
    time.sleep(LOOK_INTERVAL)  # the page refreshes after 5 s; a reload sooner gets the stored state
    later = router.get(result_url(ref, session_id))
    assert "Payment not completed" in later.text and 'http-equiv="refresh"' not in later.text


def test_amazon_unreachable_then_recovered(router: Router, emulator: Emulator) -> None:
    ref = router.register()["ref"]
    session_id = emulator.create_session(fail_first_n=4, fail_status=500)
    first = router.get(result_url(ref, session_id))
    assert first.status_code == 503 and "confirm your payment yet" in first.text
    assert "Traceback" not in first.text
    second = router.get(result_url(ref, session_id))
    assert second.status_code == 200 and "Thank you, " in second.text


def test_cancel_records_and_a_later_payment_still_wins(router: Router, emulator: Emulator) -> None:
    body = router.register()
    ref = body["ref"]
    cancel = router.get(f"/amazon-pay/cancel?ref={ref}")
    assert cancel.status_code == 200 and "Payment canceled" in cancel.text
    assert "https://shop.example.com/cart" in cancel.text
    state = httpx.get(f"{router.url}/v1/checkouts/{ref}", headers={"authorization": f"Bearer {TOKEN}"})
    assert state.json()["state"] == "canceled" and state.json()["reasonCode"] == "BuyerCanceled"
    # The buyer tried again in the app and paid: the payment is finalized, not refused.
    paid = router.get(result_url(ref, emulator.create_session()))
    assert "Thank you, " in paid.text
    late_cancel = router.get(f"/amazon-pay/cancel?ref={ref}").text  # a stale cancel tab tells the truth
    assert "Thank you for your order" in late_cancel and "Payment canceled" not in late_cancel


def merchant_view(router: Router, ref: str) -> dict[str, object]:
    answer = httpx.get(f"{router.url}/v1/checkouts/{ref}", headers={"authorization": f"Bearer {TOKEN}"}, timeout=30)
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


def test_head_on_the_cancel_url_changes_nothing(router: Router, emulator: Emulator) -> None:
    """A link checker's or a preview's HEAD: GET's status and headers, no cancel, no event."""
    ref = router.register()["ref"]
    url = f"{router.url}/amazon-pay/cancel?ref={ref}"
    head = httpx.head(url, headers={"host": HOST}, timeout=30)
    assert head.status_code == 200 and head.content == b""
    assert merchant_view(router, ref)["state"] == "created"
    get = httpx.get(url, headers={"host": HOST}, timeout=30)
    assert page_kind(get) == "canceled" and int(head.headers["content-length"]) == len(get.content)
    assert merchant_view(router, ref)["state"] == "canceled"


def test_error_url_and_unknown_paths(router: Router) -> None:
    error = router.get("/amazon-pay/error?ref=x")
    assert error.status_code == 200 and "ran into a problem" in error.text and "no payment was made" in error.text
    unknown = router.get("/amazon-pay/other")
    assert unknown.status_code == 404 and "Page not found" in unknown.text
    other_host = router.get(SUCCESS, host="evil.example.net")
    assert other_host.status_code == 404


def test_the_error_url_of_a_paid_order_says_it_is_paid(router: Router, emulator: Emulator) -> None:
    """Anyone with the ref can load the error URL: for a paid order it must not say "no payment was made"."""
    ref = router.register()["ref"]
    unpaid = router.get(f"/amazon-pay/error?ref={ref}")
    assert "no payment was made" in unpaid.text
    assert "Thank you, " in router.get(result_url(ref, emulator.create_session())).text
    paid = router.get(f"/amazon-pay/error?ref={ref}")
    assert paid.status_code == 200 and page_kind(paid) == "success" and "no payment was made" not in paid.text
    assert len(emulator.requests("finalizeCheckoutSession")) == 1  # reading it calls nobody


@pytest.mark.parametrize("path", ["/amazon-pay/error", "/amazon-pay/cancel"])
def test_a_url_with_only_the_ref_shows_nothing_of_the_buyer(router: Router, emulator: Emulator, path: str) -> None:
    """The result URL carries the session id; the error and cancel URLs only the ref (in a shared link, a
    log, a screenshot's address bar). Theirs say the order is paid, not who paid or with what card."""
    ref = router.register()["ref"]
    session = emulator.create_session(buyer={"name": "Hanako Yamada", "email": "hanako@example.jp"})
    own = router.get(result_url(ref, session))
    assert "Hanako Yamada" in own.text and "@example.jp" in own.text
    other = router.get(f"{path}?ref={ref}")
    assert (other.status_code, page_kind(other)) == (200, "success")
    assert "Hanako" not in other.text and "example.jp" not in other.text and "Visa" not in other.text
    assert "Thank you for your order" in other.text


@pytest.mark.parametrize("path", ["/amazon-pay/error", "/amazon-pay/cancel"])
def test_an_oddly_written_query_never_calls_a_paid_order_unpaid(router: Router, emulator: Emulator,
                                                                path: str) -> None:
    """The ref repeated, or past the length or field bounds: the page said "no payment was made" (the
    error URL) or "You canceled the payment" (the cancel URL) for a paid order."""
    ref = router.register()["ref"]
    assert page_kind(router.get(result_url(ref, emulator.create_session()))) == "success"
    repeated = router.get(f"{path}?ref={ref}&ref={ref}")  # one order, named twice
    assert (repeated.status_code, page_kind(repeated)) == (200, "success")
    for query in (f"x={'a' * 2100}&ref={ref}", f"ref={ref}&" + "&".join(f"f{i}=1" for i in range(60)),
                  f"ref={ref}&ref={'B' * 32}"):
        odd = router.get(f"{path}?{query}")
        assert (odd.status_code, page_kind(odd)) == (400, "bad_request"), (query[:40], odd.text[-300:])
        assert "no payment was made" not in odd.text.lower()


async def test_the_error_url_during_a_finalize_in_flight_says_it_is_being_confirmed(
    router: Router, emulator: Emulator
) -> None:
    ref = router.register()["ref"]
    session_id = emulator.create_session(latency_ms=1500)
    async with httpx.AsyncClient(timeout=60, headers={"host": HOST}) as client:
        paying = asyncio.create_task(client.get(router.url + result_url(ref, session_id)))
        while emulator.calls(session_id) < 1:  # the return is at Amazon now
            await asyncio.sleep(0.02)
        during = await client.get(f"{router.url}/amazon-pay/error?ref={ref}")
        paid = await paying
        after = await client.get(f"{router.url}/amazon-pay/error?ref={ref}")
    assert (during.status_code, page_kind(during)) == (200, "pending"), during.text[-300:]
    assert "no payment was made" not in during.text and 'http-equiv="refresh"' in during.text
    assert page_kind(paid) == "success" and page_kind(after) == "success"


def test_unknown_ref_and_conflict(router: Router, emulator: Emulator) -> None:
    assert router.get(result_url("A" * 32, emulator.create_session())).status_code == 404
    ref = router.register()["ref"]
    assert router.get(result_url(ref, emulator.create_session())).status_code == 200
    conflict = router.get(result_url(ref, emulator.create_session()))
    assert conflict.status_code == 409 and "This checkout cannot continue" in conflict.text


@pytest.mark.parametrize("query", [
    "",
    "ref=abc",
    "amazonCheckoutSessionId=abcdefgh-1234",
    "ref=abcdefghabcdefghabcdefgh&amazonCheckoutSessionId=a&amazonCheckoutSessionId=b",
    "ref=a&ref=b&amazonCheckoutSessionId=abcdefgh-1234",
    "ref=abcdefghabcdefghabcdefgh&amazonCheckoutSessionId=%3Cscript%3Ealert(1)%3C%2Fscript%3E",
    "ref=abcdefghabcdefghabcdefgh&amazonCheckoutSessionId=" + "x" * 5000,
    "ref=abcdefghabcdefghabcdefgh&amazonCheckoutSessionId=%FF%FE%00",
])
def test_hostile_queries_get_a_clear_4xx(router: Router, query: str) -> None:
    page = router.get(f"{SUCCESS}?{query}")
    assert 400 <= page.status_code < 500, page.status_code
    assert "<script>alert" not in page.text and "Traceback" not in page.text
    assert page.headers["content-type"].startswith("text/html")


def test_hostile_host_header_and_path(router: Router) -> None:
    for host in ("<script>.example", "a" * 300, "pay.example.com:99999", ""):
        answer = router.get(SUCCESS, host=host)
        assert answer.status_code in (400, 404) and "<script>." not in answer.text
    assert router.get("/%2e%2e/%2e%2e/etc/passwd").status_code == 404


def test_ios_page_offers_the_smart_banner_and_no_same_host_button(router: Router, emulator: Emulator) -> None:
    ref = router.register()["ref"]
    page = router.get(result_url(ref, emulator.create_session()), **{"user-agent": IPHONE})
    assert 'name="apple-itunes-app"' in page.text and "app-id=1234567890" in page.text


async def test_fifty_concurrent_browser_returns_finalize_once(router: Router, emulator: Emulator) -> None:
    ref = router.register()["ref"]
    session_id = emulator.create_session(latency_ms=300)
    async with httpx.AsyncClient(timeout=60, headers={"host": HOST}) as client:
        pages = await asyncio.gather(*(client.get(router.url + result_url(ref, session_id)) for _ in range(50)))
    assert all(p.status_code == 200 and "Thank you, " in p.text for p in pages)
    assert len(emulator.requests("finalizeCheckoutSession")) == 1


def test_restart_renders_from_the_store(make_settings: Callable[..., Settings], emulator: Emulator) -> None:
    settings = make_settings()
    with serve_app(create_app(settings, background=False)) as url:
        router = Router(url)
        ref = router.register()["ref"]
        session_id = emulator.create_session()
        assert "Thank you, " in router.get(result_url(ref, session_id)).text
    with serve_app(create_app(settings, background=False)) as url:  # a new process-like instance, same file
        again = Router(url).get(result_url(ref, session_id))
        assert again.status_code == 200 and "Thank you, " in again.text
    assert len(emulator.requests("finalizeCheckoutSession")) == 1
    assert len(emulator.requests()) == 1  # not even a read: the stored result was enough


ANDROID = ("Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
           "Chrome/126.0.0.0 Mobile Safari/537.36")


def test_open_in_app_actions_per_platform(tmp_path: Path, emulator: Emulator, key_files: tuple[Path, Path]) -> None:
    text = router_config(emulator.url, key_files[0], f"sqlite:///{tmp_path}/o.db").replace(
        'app_store_id = "1234567890"', 'app_store_id = "1234567890"\nopen_in_app_host = "open.example.com"')
    (tmp_path / "o.toml").write_text(text)
    settings = load(tmp_path / "o.toml", env={"RR_TEST_TOKEN": TOKEN})
    with serve_app(create_app(settings, background=False)) as url:
        router = Router(url)
        ref = router.register()["ref"]
        path = result_url(ref, emulator.create_session())
        ios = router.get(path, **{"user-agent": IPHONE}).text
        assert f'href="https://open.example.com{path.replace("&", "&amp;")}' in ios
        android = router.get(path, **{"user-agent": ANDROID}).text
        assert "intent://pay.example.com/amazon-pay/result?" in android
        assert "package=com.example.shop" in android and "S.browser_fallback_url=" in android
        desktop = router.get(path, **{"user-agent": "Mozilla/5.0 (X11; Linux x86_64) Firefox/128.0"}).text
        assert "intent://" not in desktop and "apps.apple.com" not in desktop
        # Another session's return for this ref (409): the app may show the order; the page offers it too.
        other = result_url(ref, emulator.create_session())
        conflict = router.get(other, **{"user-agent": IPHONE})
        assert conflict.status_code == 409 and f'href="https://open.example.com{other.replace("&", "&amp;")}' \
            in conflict.text
        assert "open.example.com" not in router.get("/amazon-pay/other", **{"user-agent": IPHONE}).text  # 404
        # The open-in-app host itself serves the same return path and association file.
        assert router.get(path, host="open.example.com").status_code == 200
        assert router.get("/.well-known/apple-app-site-association", host="open.example.com").status_code == 200
    assert len(emulator.requests("finalizeCheckoutSession")) == 1


def test_a_session_with_supplementary_data_is_finalized_with_it(router: Router, emulator: Emulator) -> None:
    """The button signs it into the session; the finalize repeats it (reference §5.2); the emulator checks both."""
    ref = router.register(supplementaryData="gift:yes")["ref"]
    page = router.get(result_url(ref, emulator.create_session(supplementaryData="gift:yes")))
    assert "Thank you, " in page.text
    other = router.register(reference="order-2")["ref"]  # none registered, the session has one: Amazon refuses
    refused = router.get(result_url(other, emulator.create_session(supplementaryData="gift:yes")))
    assert "Thank you, " not in refused.text
