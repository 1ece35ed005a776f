"""URLs the pages build: absolute-URL checks, Chrome intents, the alternate associated host, same-site links. Pure."""

from __future__ import annotations

from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

from router.validators import ANDROID_PACKAGE, HOST_WITH_PORT


def http_url(name: str, value: str) -> str:
    """``value`` if it is an absolute http(s) URL with a host; a clear ValueError otherwise."""
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{name} must be an absolute http(s) URL, got {value[:80]!r}")
    return value


def intent_url(url: str, package: str, fallback_url: str) -> str:
    """Chrome's ``intent://`` form of an http(s) URL that opens ``package`` or, without it, the fallback.

    ``intent://HOST/PATH?QUERY#Intent;scheme=https;package=PKG;S.browser_fallback_url=ENC;end``
    """
    parts = urlsplit(http_url("url", url))
    if not ANDROID_PACKAGE.fullmatch(package):
        raise ValueError(f"not an Android package name: {package[:80]!r}")
    http_url("fallback_url", fallback_url)
    host = parts.netloc.rpartition("@")[2]  # never carry user:password into an intent
    target = urlunsplit(("", host, parts.path or "/", parts.query, ""))
    fallback = quote(fallback_url, safe="")
    extras = f"scheme={parts.scheme};package={package};S.browser_fallback_url={fallback}"
    return f"intent:{target}#Intent;{extras};end"


def alternate_host_url(url: str, host: str) -> str:
    """The same URL on another host, e.g. the associated subdomain an iOS "Open in app" tap must use."""
    if not HOST_WITH_PORT.fullmatch(host):
        raise ValueError(f"not a host name: {host[:80]!r}")
    parts = urlsplit(http_url("url", url))
    return urlunsplit((parts.scheme, host, parts.path, parts.query, ""))


def with_query(url: str, **params: str) -> str:
    """Same-origin relative URL (path + query) of ``url`` with ``params`` set."""
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k not in params]
    query.extend(params.items())
    return urlunsplit(("", "", parts.path or "/", urlencode(query), ""))


def relative(url: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(("", "", parts.path or "/", parts.query, ""))
