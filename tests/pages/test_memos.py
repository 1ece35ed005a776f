"""The pages' memos (Accept-Language, User-Agent, amounts, site paths) answer as the plain functions do and stay
bounded whatever a stranger sends; the plain-query shortcut of with_query re-encodes as parse_qsl/urlencode."""

from __future__ import annotations

import random
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import pytest

from router.checkout.money import format_amount
from router.web import i18n, links, pages, platform
from router.web.i18n import detect_locale
from router.web.links import site_path, with_query
from router.web.pages import display_amount
from router.web.platform import Platform, detect_platform
from tests.pages.samples import UA


def _reference_locale(accept_language: str | None) -> str:
    for tag in i18n._ranked_languages(accept_language or ""):
        if tag == "*":
            return "en"
        if tag in ("en", "ja"):
            return tag
    return "en"


def test_accept_language_memo_is_bounded_and_right() -> None:
    rng = random.Random(7)
    for i in range(3 * i18n._CACHED_HEADERS):
        header = f"x{i}, " + rng.choice(["ja;q=0.5", "en;q=0.4", "*;q=0.1", "fr"]) + ("," * rng.randrange(3))
        assert detect_locale(header, None) == _reference_locale(header)
    assert i18n._header_locale.cache_info().currsize <= i18n._CACHED_HEADERS


def test_accept_language_memo_keys_only_what_is_read() -> None:
    """A huge header is cut before it is remembered: the answer depends on its first part only."""
    base = "x" * 1000 + ",ja"
    assert detect_locale(base + "," + "y" * 50_000, None) == detect_locale(base, None) == "ja"
    assert detect_locale("x" * 1030 + ",ja", None) == "en"  # "ja" is past the part that is read
    assert detect_locale("fr", "ja") == "ja" and detect_locale("", None) == detect_locale(None, None) == "en"


def test_user_agent_memo_is_bounded_and_right() -> None:
    for i in range(3 * platform._CACHED_AGENTS):
        agent = f"{UA['iphone_safari']} n{i}" if i % 2 else f"{UA['facebook_android']} n{i}"
        expected = Platform("ios") if i % 2 else Platform("android", "facebook")
        assert detect_platform(agent) == expected
    assert platform._classify.cache_info().currsize <= platform._CACHED_AGENTS
    assert detect_platform(None) == detect_platform("") == Platform("other")
    late = "x" * 2100 + " iPhone Safari/604.1"
    assert detect_platform(late) == Platform("other")  # past the part that is read, as before


def test_amount_memo_matches_format_amount() -> None:
    cases = [("1000", "JPY"), ("14.00", "USD"), ("14", "CHF"), ("0.5", "EUR"), ("1" * 20 + ".5", "USD"),
             ("0" * 35 + "14.5", "USD")]  # the last one longer than what is remembered
    for amount, currency in cases:
        assert display_amount(amount, currency) == format_amount(amount, currency)
    with pytest.raises(ValueError):
        display_amount("abc", "USD")
    with pytest.raises(ValueError):
        display_amount("1", "usd")
    for i in range(600):
        display_amount(str(i), "JPY")
    assert pages._display_amount.cache_info().currsize <= 256


def _reference_with_query(url: str, **params: str) -> str:
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k not in params]
    query.extend(params.items())
    return urlunsplit(("", "", links._site_path(parts.path), urlencode(query), ""))


def test_with_query_is_parse_qsl_and_urlencode() -> None:
    rng = random.Random(13)
    alphabet = "aZ09_.-~&=&=%2F%41+ ;,?/#日é<>\"'"
    for _ in range(4000):
        query = "".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 24)))
        url = f"https://pay.example.com/amazon-pay/cancel?{query}"
        lang = rng.choice(["ja", "en", "x y", "%"])
        assert with_query(url, lang=lang) == _reference_with_query(url, lang=lang), query
    for query in ["", "ref=r1", "lang=en", "ref=a=b", "a&&b=", "=x", "ref=r1&lang=en&lang=ja", "a=%7E"]:
        url = f"https://pay.example.com/p?{query}"
        assert with_query(url, lang="ja") == _reference_with_query(url, lang="ja"), query


def test_site_path_memo_is_bounded_and_right() -> None:
    rng = random.Random(5)
    for i in range(1000):
        path = "/" * rng.randrange(3) + "".join(rng.choice("ab/\\%2F日 ") for _ in range(rng.randrange(12))) + str(i)
        assert site_path(path) == links._site_path(path)
    long = "/" + "a" * 5000
    assert site_path(long) == links._site_path(long)
    assert links._cached_site_path.cache_info().currsize <= 256
