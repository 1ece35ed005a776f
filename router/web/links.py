"""URLs the pages build: absolute-URL checks, Chrome intents, the alternate associated host, same-site links. Pure."""

from __future__ import annotations

import functools
import re
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

from router.validators import ANDROID_PACKAGE, HOST_WITH_PORT

# Whitespace, controls and backslashes: browsers drop or reinterpret them, so a URL holding one
# may not mean to the buyer's browser what it means to urlsplit.
_UNSAFE_IN_URL = re.compile(r"[\x00-\x20\x7f\\]")
_LEADING_SLASHES = re.compile(r"^[/\\]+")
_PATH_SAFE = "/:@!$&'()*+,;=~%"  # RFC 3986 pchar, "/" and escapes: everything else is percent-encoded
_QUERY_SAFE = _PATH_SAFE + "?"
# Characters that parse_qsl decodes to themselves and urlencode leaves as they are (besides "&" and "=").
_PLAIN = re.compile(r"[A-Za-z0-9_.~-]*")
_PLAIN_QUERY = re.compile(r"[A-Za-z0-9_.~&=-]*")
_CACHED_PATH_MAX = 256  # longer paths are made safe each time rather than kept


def http_url(name: str, value: str) -> str:
    """``value`` if it is an absolute http(s) URL with a host; a clear ValueError otherwise."""
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{name} must be an absolute http(s) URL, got {value[:80]!r}")
    return value


def configured_link(name: str, value: str) -> str:
    """``value`` if a configured link target is plainly an absolute http(s) URL; ValueError otherwise.

    Checked again when a page is built (the config checks first), so no configured link can render
    as ``javascript:``, ``data:``, relative, or with characters a browser strips or reinterprets.
    """
    if _UNSAFE_IN_URL.search(value) or not value[:8].lower().startswith(("http://", "https://")):
        raise ValueError(f"{name} must be an absolute http(s) URL, got {value[:80]!r}")
    return http_url(name, value)


def site_path(path: str) -> str:
    """A request path made safe to link to on this site: one leading slash, unsafe characters encoded.

    ``//evil.example/x``, ``/\\evil.example/x`` (and ``/%2Fevil…`` once decoded) would otherwise be
    read by browsers as a link to another host.
    """
    return _cached_site_path(path) if len(path) <= _CACHED_PATH_MAX else _site_path(path)


def _site_path(path: str) -> str:
    return "/" + quote(_LEADING_SLASHES.sub("", path), safe=_PATH_SAFE)


_cached_site_path = functools.lru_cache(maxsize=256)(_site_path)  # a site's pages have few paths


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
    pairs = _plain_pairs(parts.query)
    if pairs is None:
        pairs = parse_qsl(parts.query, keep_blank_values=True)
    query = [(k, v) for k, v in pairs if k not in params]
    query.extend(params.items())
    return urlunsplit(("", "", site_path(parts.path), _encoded(query), ""))


def _plain_pairs(query: str) -> list[tuple[str, str]] | None:
    """parse_qsl's pairs for a query with nothing to decode (no %, +, ;…), else None: the common query."""
    if not _PLAIN_QUERY.fullmatch(query):
        return None
    return [(name, value) for name, _, value in (field.partition("=") for field in query.split("&") if field)]


def _encoded(pairs: list[tuple[str, str]]) -> str:
    """urlencode's text for ``pairs``, joined directly when no name or value has anything to escape."""
    if all(_PLAIN.fullmatch(k) and _PLAIN.fullmatch(v) for k, v in pairs):
        return "&".join(f"{k}={v}" for k, v in pairs)
    return urlencode(pairs)


def relative(url: str) -> str:
    """Same-origin relative URL (path + query) of ``url``."""
    parts = urlsplit(url)
    return urlunsplit(("", "", site_path(parts.path), quote(parts.query, safe=_QUERY_SAFE), ""))
