"""The syntax rules for what operators configure and what the pages build, in one place.

Each pattern is meant for `fullmatch`. The Android package rule is well_known's (the library that
writes assetlinks.json), so the config, the pages and the served files can never disagree.
"""

from __future__ import annotations

import re

from well_known.assetlinks import PACKAGE_RE as ANDROID_PACKAGE

__all__ = ["ANDROID_PACKAGE", "APP_STORE_ID", "DNS_NAME", "HOST_WITH_PORT", "is_http_url"]

APP_STORE_ID = re.compile(r"[0-9]{1,12}", re.ASCII)  # the numeric Apple ID of an app (9-10 digits today)
# A DNS name, lower case (callers normalise first): labels of 1-63 characters, 253 in all.
DNS_NAME = re.compile(r"(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*",
                      re.ASCII)
HOST_WITH_PORT = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?(?::[0-9]{1,5})?", re.ASCII)
_HTTP_URL = re.compile(r"https?://[^/\s]+", re.ASCII)


def is_http_url(value: str) -> bool:
    """An absolute http(s) URL with a host."""
    return _HTTP_URL.match(value) is not None
