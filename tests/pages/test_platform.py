"""detect_platform against real User-Agent strings."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from router.web.platform import Platform, detect_platform
from tests.pages.samples import UA


@pytest.mark.parametrize(
    ("ua_name", "expected"),
    [
        ("iphone_safari", Platform("ios", None)),
        ("ipad_safari_legacy", Platform("ios", None)),
        ("iphone_chrome", Platform("ios", None)),
        ("android_chrome", Platform("android", None)),
        ("android_samsung", Platform("android", None)),
        ("facebook_ios", Platform("ios", "facebook")),
        ("facebook_android", Platform("android", "facebook")),
        ("instagram_ios", Platform("ios", "instagram")),
        ("instagram_android", Platform("android", "instagram")),
        ("line_ios", Platform("ios", "line")),
        ("line_android", Platform("android", "line")),
        ("gmail_ios", Platform("ios", "gmail")),
        ("twitter_android", Platform("android", "twitter")),
        ("twitter_ios", Platform("ios", "twitter")),
        ("linkedin_ios", Platform("ios", "linkedin")),
        ("wechat_ios", Platform("ios", "wechat")),
        ("android_webview", Platform("android", "webview")),
        ("desktop_chrome", Platform("desktop", None)),
        ("desktop_firefox", Platform("desktop", None)),
        ("desktop_safari", Platform("desktop", None)),
        ("curl", Platform("other", None)),
        ("googlebot", Platform("other", None)),
    ],
)
def test_real_user_agents(ua_name: str, expected: Platform) -> None:
    assert detect_platform(UA[ua_name]) == expected


@pytest.mark.parametrize("ua", [None, "", "   "])
def test_missing_user_agent_is_other(ua: str | None) -> None:
    assert detect_platform(ua) == Platform("other", None)


def test_bare_ios_webview_without_safari_token_is_in_app() -> None:
    ua = (
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 "
        "(KHTML, like Gecko) Mobile/15E148"
    )
    assert detect_platform(ua) == Platform("ios", "webview")


def test_linux_desktop_is_not_mistaken_for_line() -> None:
    # "Linux" must not trigger the LINE pattern, and desktop agents never report an in-app browser.
    assert detect_platform(UA["desktop_firefox"]).in_app_browser is None


def test_is_mobile() -> None:
    assert detect_platform(UA["iphone_safari"]).is_mobile
    assert detect_platform(UA["android_chrome"]).is_mobile
    assert not detect_platform(UA["desktop_chrome"]).is_mobile


def test_huge_user_agent_is_cut_not_scanned_whole() -> None:
    ua = UA["desktop_chrome"] + " " + "x" * 100_000 + " Instagram"
    assert detect_platform(ua) == Platform("desktop", None)


@given(st.text(max_size=300))
def test_any_text_gives_a_platform(ua: str) -> None:
    platform = detect_platform(ua)
    assert platform.os in ("ios", "android", "desktop", "other")
    if platform.os in ("desktop", "other"):
        assert platform.in_app_browser is None
