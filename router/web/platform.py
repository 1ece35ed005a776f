"""Which platform and which (in-app) browser a request comes from, judged by its User-Agent only.

Pure: no I/O. The answer picks which "open in app" action a fallback page offers; a wrong guess
must degrade to a page that still works, so unknown agents get ``os="other"`` and no app buttons.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import Literal

OS = Literal["ios", "android", "desktop", "other"]

# Longer than any real User-Agent; anything beyond this is not worth scanning.
_MAX_UA_LENGTH = 2048
# Real traffic repeats a few hundred User-Agents; any stranger can send endless ones, so the memo is bounded.
_CACHED_AGENTS = 256

# (name, pattern) in priority order: Instagram and Messenger UAs also carry Facebook tokens, so the
# more specific apps come first.
_IN_APP_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("instagram", re.compile(r"\bInstagram\b")),
    ("facebook", re.compile(r"\bFBAN/|\bFBAV/|\bFB_IAB/|\bFBIOS\b|\[FB")),
    ("line", re.compile(r"\bLine/\d")),
    ("twitter", re.compile(r"Twitter")),
    # GSA is the Google app's web view; Gmail on iOS opens links in it. Android Gmail says "Gmail".
    ("gmail", re.compile(r"\bGSA/|\bGmail\b")),
    ("linkedin", re.compile(r"\bLinkedInApp\b")),
    ("wechat", re.compile(r"\bMicroMessenger/")),
)

_IOS = re.compile(r"\b(iPhone|iPad|iPod)\b")
_ANDROID = re.compile(r"\bAndroid\b")
_DESKTOP = re.compile(r"\b(Windows NT|Macintosh|X11|CrOS|Linux x86_64)\b")
# Android System WebView marks itself with "; wv)" in the platform part of the UA.
_ANDROID_WEBVIEW = re.compile(r";\s*wv\)")
# Every real iOS browser (Safari, Chrome, Firefox, Edge) keeps a "Safari/" token; bare WKWebViews don't.
_IOS_SAFARI_TOKEN = re.compile(r"\bSafari/")


@dataclass(frozen=True, slots=True)
class Platform:
    """Operating system family plus the in-app browser's name (``None`` for a real browser)."""

    os: OS
    in_app_browser: str | None = None

    @property
    def is_mobile(self) -> bool:
        return self.os in ("ios", "android")


def _detect_os(ua: str) -> OS:
    # iPadOS 13+ Safari asks for desktop sites and sends a Macintosh UA; without JavaScript it is
    # indistinguishable from a Mac, so it is treated as desktop (no store prompts).
    if _IOS.search(ua):
        return "ios"
    if _ANDROID.search(ua):
        return "android"
    if _DESKTOP.search(ua):
        return "desktop"
    return "other"


def _detect_in_app(ua: str, os: OS) -> str | None:
    for name, pattern in _IN_APP_PATTERNS:
        if pattern.search(ua):
            return name
    if os == "android" and _ANDROID_WEBVIEW.search(ua):
        return "webview"
    if os == "ios" and not _IOS_SAFARI_TOKEN.search(ua):
        return "webview"
    return None


_OTHER = Platform("other")


def detect_platform(user_agent: str | None) -> Platform:
    """Classify a User-Agent header; ``None``, empty or unknown agents give ``Platform("other")``."""
    if not user_agent:
        return _OTHER
    return _classify(user_agent[:_MAX_UA_LENGTH])  # only this much is read: the memo's key


@functools.lru_cache(maxsize=_CACHED_AGENTS)
def _classify(ua: str) -> Platform:
    os = _detect_os(ua)
    in_app = _detect_in_app(ua, os) if os in ("ios", "android") else None
    return Platform(os, in_app)
