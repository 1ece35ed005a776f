"""The syntax rules for what operators configure and what the pages build, in one place.

Each pattern is meant for `fullmatch`. The Android package rule is well_known's (the library that
writes assetlinks.json), so the config, the pages and the served files can never disagree.
"""

from __future__ import annotations

import ipaddress
import re
from urllib.parse import urlsplit

from well_known.assetlinks import PACKAGE_RE as ANDROID_PACKAGE

__all__ = ["ANDROID_PACKAGE", "APP_STORE_ID", "DNS_NAME", "HOST_WITH_PORT", "is_http_url", "is_ip_literal",
           "is_loopback", "url_problem"]

APP_STORE_ID = re.compile(r"[0-9]{1,12}", re.ASCII)  # the numeric Apple ID of an app (9-10 digits today)
# A DNS name, lower case (callers normalise first): labels of 1-63 characters, 253 in all.
DNS_NAME = re.compile(r"(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*",
                      re.ASCII)
HOST_WITH_PORT = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?(?::[0-9]{1,5})?", re.ASCII)
_HTTP_URL = re.compile(r"https?://[^/\s]+", re.ASCII)


def is_http_url(value: str) -> bool:
    """An absolute http(s) URL with a host."""
    return _HTTP_URL.match(value) is not None


def is_ip_literal(host: str) -> bool:
    """An IPv4/IPv6 address, including the shorthands browsers accept ("127.1", "0x7f.1"): a DNS
    name's last label is never all digits or hex."""
    bare = host.strip("[]").rstrip(".")
    try:
        ipaddress.ip_address(bare)
        return True
    except ValueError:
        last = bare.rsplit(".", 1)[-1].lower()
        return bool(last) and (last.isdigit() or bool(re.fullmatch(r"0x[0-9a-f]*", last)))


def is_loopback(host: str) -> bool:
    """localhost or a loopback address: where an http:// URL never leaves the machine."""
    bare = host.strip("[]").rstrip(".").lower()
    if bare == "localhost" or bare.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(bare).is_loopback
    except ValueError:
        return False


def url_problem(value: str, *, allow_http: bool = False, allow_http_loopback: bool = False) -> str | None:
    """Why `value` is not an absolute https URL with a host (None when it is).

    `javascript:`, `data:` and relative URLs are always refused; http only when `allow_http`, or
    for a loopback host when `allow_http_loopback` (a local emulator or receiver).
    """
    schemes = "http:// or https://" if allow_http else "https://"
    if any(c.isspace() or ord(c) < 32 or ord(c) == 127 or c == "\\" for c in value):
        return "must not contain spaces, control characters or backslashes"
    try:
        parts = urlsplit(value)
        port_ok = parts.port is None or parts.port > 0
    except ValueError:
        return f"must be an absolute {schemes} URL"
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        what = f"{scheme}: URLs are refused" if scheme else "a relative URL is refused"
        return f"must be an absolute {schemes} URL ({what})"
    host = parts.hostname or ""
    http_ok = allow_http or (allow_http_loopback and is_loopback(host))
    if scheme == "http" and not http_ok:
        local = " (http:// only on a loopback host)" if allow_http_loopback else ""
        return f"must be an absolute {schemes} URL{local}"
    if not host or not port_ok:
        return "must name a host (scheme://host/...)"
    if parts.username is not None or parts.password is not None:
        return "must not carry a user name or password"
    return None
