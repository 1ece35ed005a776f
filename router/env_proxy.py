"""The egress proxy the environment names (HTTP_PROXY, HTTPS_PROXY, NO_PROXY), read once per client.

Both outbound clients use it, the webhook worker's and the Amazon Pay client's, so that one variable sends
all of a merchant's traffic through its egress proxy (an https target is reached through a CONNECT tunnel,
so the request and its signature are the same bytes as when sent direct).

aiohttp's `trust_env` reads these variables again for every request, and ~/.netrc too, in two hops to the
default thread pool: at the webhook worker's 100 in flight that was most of the gap between the worker and
plain POSTs (tests/bench/webhooks). A process's environment does not change under it, so the outbound
transport reads it once, when it is built, and hands aiohttp the proxy for each request.

The rules are aiohttp's (which are urllib's): the lower-case variable wins, NO_PROXY is matched against the
host, only http:// proxies are used (aiohttp ignores https:// ones, and so does this, with a warning).
Proxy credentials come from the proxy URL (`http://user:password@proxy:3128`): aiohttp sends them to the
proxy as Proxy-Authorization.
~/.netrc is not read: aiohttp would send its entry for the target host as Basic auth to that host (the
merchant's webhook URL), which nobody configuring a proxy asks for.
"""

from __future__ import annotations

import logging
import urllib.request

import yarl

log = logging.getLogger("router.env_proxy")
SCHEMES = ("http", "https")  # the URL schemes a proxy variable can name a proxy for
_HOSTS_KEPT = 256  # per-host choices remembered: the webhook worker posts to one host


def _proxy(scheme: str, value: str) -> yarl.URL | None:
    url = yarl.URL(value)
    if url.scheme != "http":
        log.warning("the %s proxy from the environment is not an http:// URL; it is not used", scheme)
        return None
    return url


class EnvProxies:
    """The proxy for each request's URL, from the environment as it was when this was made."""

    def __init__(self) -> None:
        self._env = urllib.request.getproxies_environment()  # {"http": …, "https": …, "no": …}
        self._by_scheme = {scheme: _proxy(scheme, value) for scheme, value in self._env.items()
                           if scheme in SCHEMES}
        self._chosen: dict[tuple[str, str], yarl.URL | None] = {}

    def __bool__(self) -> bool:
        return any(self._by_scheme.values())

    def for_url(self, url: yarl.URL) -> yarl.URL | None:
        key = (url.scheme, url.host or "")
        if key in self._chosen:
            return self._chosen[key]
        proxy = self._by_scheme.get(url.scheme)
        # NO_PROXY's rule, given the variables read at start (typeshed lacks this public-but-unlisted name)
        if proxy is not None and url.host and urllib.request.proxy_bypass_environment(  # type: ignore[attr-defined]
                url.host, self._env):
            proxy = None
        if len(self._chosen) < _HOSTS_KEPT:
            self._chosen[key] = proxy
        return proxy

    def describe(self) -> dict[str, str]:
        """What the start summary says: each scheme's proxy without its credentials, and NO_PROXY."""
        found = {scheme: str(proxy.with_user(None)) for scheme, proxy in self._by_scheme.items() if proxy}
        if found and self._env.get("no"):
            found["no_proxy"] = self._env["no"]
        return found
