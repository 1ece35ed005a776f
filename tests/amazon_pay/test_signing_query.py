"""A signed query reaches the emulator, over a real socket, as the bytes it was signed over: RFC 3986 encoding
on both sides (space %20, '+' %2B, '*' %2A, '~' kept, UTF-8), where httpx alone would send a space as '+'."""

from __future__ import annotations

import httpx
import pytest

from router.amazon_pay.signing import AmazonPayAuth
from router.outbound import async_client
from tests.amazon_pay.helpers import SANDBOX_KEY_ID, KeyPair, create_session, received

# q = "a b+c~d*e", 名 = "値ü", as RFC 3986 writes them (worked out by hand, not by the code under test)
SENT = "q=a%20b%2Bc~d%2Ae&%E5%90%8D=%E5%80%A4%C3%BC"


@pytest.mark.parametrize("how", ["params", "in the url"])
async def test_a_query_is_sent_as_it_is_signed(keys: KeyPair, emulator_url: str, how: str) -> None:
    session_id = create_session(emulator_url)
    url = f"{emulator_url}/v2/checkoutSessions/{session_id}"
    auth = AmazonPayAuth(SANDBOX_KEY_ID, keys.private_key, "us")
    async with async_client(max_connections=1, timeout=httpx.Timeout(5)) as http:
        if how == "params":  # httpx's own encoding would put "a+b%2Bc~d%2Ae" on the wire
            response = await http.get(url, params={"q": "a b+c~d*e", "名": "値ü"}, auth=auth)
        else:  # as a form writes it: '+' a space, '*' and '~' bare
            response = await http.get(f"{url}?q=a+b%2Bc~d*e&%E5%90%8D=%E5%80%A4%C3%BC", auth=auth)
    assert response.status_code == 200, response.text  # the emulator verified the signature
    [entry] = received(emulator_url, session_id)
    assert (entry["query"], entry["publicKeyId"], entry["status"]) == (SENT, SANDBOX_KEY_ID, 200)
