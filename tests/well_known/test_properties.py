"""Generated files claim exactly the claimed URLs, on both platforms, and always validate.

The oracles below restate PathClaim's meaning independently of the matcher: Apple ignores
slashes at the ends of paths and needs every occurrence of the item non-empty; Android compares
the path exactly and reads the first occurrence of the item.
"""

from __future__ import annotations

import json
import string
from dataclasses import dataclass
from typing import Any

from hypothesis import assume, given
from hypothesis import strategies as st

from well_known import (
    HANDLE_ALL_URLS,
    PathClaim,
    aasa_opens,
    android_dynamic_match,
    build_aasa,
    build_assetlinks,
    dumps,
    validate_aasa,
    validate_assetlinks,
)

APP = "ABCDE12345.com.example.shop"
FINGERPRINT = ":".join(["5A"] * 32)
SEGMENT_CHARS = string.ascii_letters + string.digits + "-._~!$&'()+,;=:@"
SAFE = string.ascii_letters + string.digits + "-._~"
NAME_POOL = ["amazonCheckoutSessionId", "CheckoutSessionId", "checkoutSessionId", "ref", "a", "b"]

segments = st.text(SEGMENT_CHARS, min_size=1, max_size=6).filter(lambda s: s not in (".", ".."))
paths = st.builds(
    lambda parts, slash: "/" + "/".join(parts) + ("/" if slash else ""),
    st.lists(segments, min_size=0, max_size=4),
    st.booleans(),
).filter(lambda p: "$(" not in p)
names = st.one_of(st.sampled_from(NAME_POOL), st.text(SAFE, min_size=1, max_size=5))
claims_st = st.lists(
    st.builds(PathClaim, paths, st.lists(names, max_size=3, unique=True).map(tuple)),
    min_size=1,
    max_size=6,
)
values = st.text(SAFE, max_size=5)
# (name, value); value None renders as a bare `name` without `=`.
items_st = st.lists(st.tuples(names, st.one_of(st.none(), values)), max_size=5)
fragments = st.one_of(st.none(), st.text(SAFE + "?&=/", max_size=8))


@dataclass(frozen=True)
class Url:
    path: str
    items: list[tuple[str, str | None]] | None
    fragment: str | None

    def render(self) -> str:
        url = "https://pay.example.com" + self.path
        if self.items is not None:
            url += "?" + "&".join(n if v is None else f"{n}={v}" for n, v in self.items)
        if self.fragment is not None:
            url += "#" + self.fragment
        return url

    def values(self, name: str) -> list[str]:
        return [v or "" for n, v in self.items or [] if n == name]


def apple_claimed(claims: list[PathClaim], url: Url) -> bool:
    def item_ok(name: str) -> bool:
        found = url.values(name)
        return bool(found) and all(found)

    return any(
        c.path.strip("/") == url.path.strip("/") and (not c.query_items or any(map(item_ok, c.query_items)))
        for c in claims
    )


def android_claimed(claims: list[PathClaim], url: Url) -> bool:
    def item_ok(name: str) -> bool:
        found = url.values(name)
        return bool(found) and found[0] != ""

    return any(c.path == url.path and (not c.query_items or any(map(item_ok, c.query_items))) for c in claims)


def documents(claims: list[PathClaim]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Both files, round-tripped through their served bytes."""
    aasa = json.loads(dumps(build_aasa([APP], claims)))
    links = json.loads(dumps(build_assetlinks("com.example.shop", [FINGERPRINT], claims)))
    return aasa, links[0]["relation_extensions"][HANDLE_ALL_URLS]["dynamic_app_link_components"]


@given(claims_st)
def test_generated_documents_always_validate_cleanly(claims: list[PathClaim]) -> None:
    assert validate_aasa(dumps(build_aasa([APP], claims))) == []
    assert validate_assetlinks(dumps(build_assetlinks("com.example.shop", [FINGERPRINT], claims))) == []


@given(claims_st, st.data(), items_st, fragments)
def test_every_claimed_url_opens(
    claims: list[PathClaim], data: st.DataObject, extra: list[tuple[str, str | None]], fragment: str | None
) -> None:
    claim = data.draw(st.sampled_from(claims))
    items = list(extra)
    if claim.query_items:
        required = data.draw(st.sampled_from(claim.query_items))
        items = [(n, v) for n, v in extra if n != required]
        position = data.draw(st.integers(0, len(items)))
        items.insert(position, (required, data.draw(st.text(SAFE, min_size=1, max_size=5))))
    url = Url(claim.path, items if items or data.draw(st.booleans()) else None, fragment)
    aasa, rules = documents(claims)
    assert aasa_opens(aasa, url.render(), APP), url.render()
    assert android_dynamic_match(rules, url.render()), url.render()


@given(claims_st, paths, items_st, fragments)
def test_other_paths_never_open(
    claims: list[PathClaim], path: str, items: list[tuple[str, str | None]], fragment: str | None
) -> None:
    assume(all(c.path.strip("/") != path.strip("/") for c in claims))
    url = Url(path, items, fragment).render()
    aasa, rules = documents(claims)
    assert not aasa_opens(aasa, url)
    assert not android_dynamic_match(rules, url)


@given(claims_st, st.data(), items_st, fragments)
def test_claimed_path_without_its_query_item_does_not_open(
    claims: list[PathClaim], data: st.DataObject, extra: list[tuple[str, str | None]], fragment: str | None
) -> None:
    claim = data.draw(st.sampled_from(claims))
    same_path = [c for c in claims if c.path.strip("/") == claim.path.strip("/")]
    assume(all(c.query_items for c in same_path))
    required = {name for c in same_path for name in c.query_items}
    # the required items are absent, or present only with empty values
    items = [(n, v) for n, v in extra if n not in required]
    for name in required:
        if data.draw(st.booleans()):
            items.append((name, data.draw(st.sampled_from(["", None]))))
    url = Url(claim.path, items, fragment).render()
    aasa, rules = documents(claims)
    assert not aasa_opens(aasa, url), url
    assert not android_dynamic_match(rules, url), url


@given(claims_st, st.data(), items_st, fragments, st.booleans())
def test_matchers_agree_with_the_claim_semantics(
    claims: list[PathClaim],
    data: st.DataObject,
    items: list[tuple[str, str | None]],
    fragment: str | None,
    with_query: bool,
) -> None:
    base = data.draw(st.one_of(st.sampled_from([c.path for c in claims]), paths))
    path = data.draw(st.sampled_from([base, base.rstrip("/") or "/", base + "/"]))
    names_in_claims = sorted({n for c in claims for n in c.query_items})
    if names_in_claims:
        items = items + data.draw(
            st.lists(st.tuples(st.sampled_from(names_in_claims), st.one_of(st.none(), values)), max_size=3)
        )
    url = Url(path, items if with_query else None, fragment)
    aasa, rules = documents(claims)
    assert aasa_opens(aasa, url.render()) is apple_claimed(claims, url), url.render()
    assert android_dynamic_match(rules, url.render()) is android_claimed(claims, url), url.render()
