"""router.outbound.set_headers and header_values against httpx's own calls: the same list after, the same values."""

from __future__ import annotations

import httpx
from hypothesis import example, given, settings
from hypothesis import strategies as st

from router.outbound import header_values, set_headers

NAMES = st.sampled_from(["accept", "Accept", "ACCEPT", "content-type", "Content-Type", "x-amz-pay-date",
                         "X-Amz-Pay-Date", "x-amz-pay-host", "user-agent", "x-other"])
VALUES = st.sampled_from(["application/json", " text/plain ", "", "a, b", "stale", "é".encode()])  # UTF-8: httpx's way
LOWER = st.sampled_from(["accept", "content-type", "x-amz-pay-date", "x-amz-pay-host", "x-new"])
ASCII_VALUES = st.sampled_from(["application/json", "v1", "", " padded "])


def _by_httpx(headers: httpx.Headers, defaults: dict[str, str], replace: dict[str, str]) -> dict[str, str]:
    for name, value in defaults.items():
        headers.setdefault(name, value)
    for name, value in replace.items():
        headers[name] = value
    return dict(headers.items())


@given(start=st.lists(st.tuples(NAMES, VALUES), max_size=6), defaults=st.dictionaries(LOWER, ASCII_VALUES),
       replace=st.dictionaries(LOWER, ASCII_VALUES))
@example(start=[("Accept", "a"), ("x-amz-pay-date", "1"), ("X-Amz-Pay-Date", "2")], defaults={"accept": "j"},
         replace={"x-amz-pay-date": "3"})
@example(start=[("accept", "é".encode())], defaults={}, replace={"accept": "v1"})  # a plain set fixes no encoding
@settings(max_examples=500)
def test_the_same_list_and_values_as_httpx_calls(start: list[tuple[str, str | bytes]], defaults: dict[str, str],
                                                 replace: dict[str, str]) -> None:
    ours, theirs = httpx.Headers(start), httpx.Headers(start)
    set_headers(ours, defaults, replace)
    assert header_values(ours) == _by_httpx(theirs, defaults, replace)
    assert ours.raw == theirs.raw and ours.encoding == theirs.encoding
    assert list(ours.multi_items()) == list(theirs.multi_items())


def test_an_ascii_request_takes_the_one_pass() -> None:
    headers = httpx.Headers([("Accept", "text/plain"), ("x-rep", "1"), ("X-Rep", "2")])
    set_headers(headers, {"accept": "application/json", "content-type": "application/json"},
                {"x-rep": "3", "x-amz-pay-region": "us"})
    assert header_values(headers) == {"accept": "text/plain", "x-rep": "3", "content-type": "application/json",
                                      "x-amz-pay-region": "us"}
    assert headers.raw == [(b"Accept", b"text/plain"), (b"x-rep", b"3"), (b"content-type", b"application/json"),
                           (b"x-amz-pay-region", b"us")]
