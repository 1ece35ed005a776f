"""router.outbound._httpx_url against httpx.URL: the same URL for every input, parsed in part or in whole."""

from __future__ import annotations

import httpx
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from router.outbound import _PLAIN_URL, _httpx_url

AMAZON = "https://pay-api.amazon.com/live/v2/checkoutSessions/bd504926-f659-4ad7-a1a9-9a747aaf5275/finalize"

# Pieces that a plain URL is made of, and pieces that make httpx change a path (or refuse the URL).
HOSTS = st.sampled_from(["pay-api.amazon.com", "PAY-API.Amazon.COM", "127.0.0.1", "localhost", "a..b", "h-", "x"])
PORTS = st.sampled_from(["", ":80", ":443", ":8080", ":0", ":65535", ":99999"])
SEGMENT = st.text(alphabet="abcAZ09._~-%/?#: @!$&'()*+,;=é", max_size=8)


def _same(url: str) -> None:
    try:
        expected = httpx.URL(url)
    except httpx.InvalidURL as exc:
        with pytest.raises(httpx.InvalidURL) as raised:
            _httpx_url(url)
        assert str(raised.value) == str(exc)
        return
    got = _httpx_url(url)
    assert got._uri_reference == expected._uri_reference
    assert (str(got), got.raw_path, got.netloc, got.port, got.host, got.scheme) == (
        str(expected), expected.raw_path, expected.netloc, expected.port, expected.host, expected.scheme)
    assert got == expected and hash(got) == hash(expected)


@given(scheme=st.sampled_from(["http", "https", "HTTPS", "ftp"]), host=HOSTS, port=PORTS,
       segments=st.lists(SEGMENT, max_size=5), slash=st.booleans())
@example(scheme="https", host="pay-api.amazon.com", port="", segments=["live", "v2", "..", "x"], slash=False)
@example(scheme="https", host="pay-api.amazon.com", port="", segments=["a.b", ".c", "d~"], slash=True)
def test_every_url_comes_out_as_httpx_parses_it(scheme: str, host: str, port: str, segments: list[str],
                                                  slash: bool) -> None:
    _same(f"{scheme}://{host}{port}" + "".join("/" + s for s in segments) + ("/" if slash else ""))


def test_amazon_urls_take_the_short_way_and_odd_ones_httpx_parse() -> None:
    assert _PLAIN_URL.fullmatch(AMAZON)
    _same(AMAZON)
    for odd in ("https://h/a/../b", "https://h/%41", "https://h/a?b=1", "https://h/a#f", "https://[::1]/a",
                "https://h", "https://h/", "https://h//a", "https://h/./a"):
        assert not _PLAIN_URL.fullmatch(odd)
        _same(odd)
    _same("https://h/" + "a" * 70_000)  # over the short way's limit: httpx's own length check
