from __future__ import annotations

import pytest

from well_known import PathClaim
from well_known.claims import canonical, claim_components

RETURN_ITEMS = ("amazonCheckoutSessionId", "CheckoutSessionId", "checkoutSessionId")


def test_claim_is_frozen_hashable_and_accepts_a_list_of_items() -> None:
    claim = PathClaim("/amazon-pay/result", list(RETURN_ITEMS))  # type: ignore[arg-type]
    assert claim.query_items == RETURN_ITEMS
    assert hash(claim) == hash(PathClaim("/amazon-pay/result", RETURN_ITEMS))
    with pytest.raises(AttributeError):
        claim.path = "/x"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("path", "fragment"),
    [
        ("/buy/*", "wildcards"),
        ("/help/????", "wildcards"),
        ("buy", "start with '/'"),
        ("", "start with '/'"),
        ("/$(lang)/x", "variable"),
        ("/caf%C3%A9", "'%'"),
        ("/with space", "no spaces"),
        ("/a#b", "'#'"),
        ("/café", "non-ASCII"),
        ("/a/../b", "'..'"),
        ("/a/./b", "'.'"),
    ],
)
def test_bad_paths_are_refused_with_a_reason(path: str, fragment: str) -> None:
    with pytest.raises(ValueError, match="claim path") as info:
        PathClaim(path)
    assert fragment in str(info.value)


def test_non_string_path_is_refused() -> None:
    with pytest.raises(ValueError, match="must be a string"):
        PathClaim(42)  # type: ignore[arg-type]


@pytest.mark.parametrize("name", ["", "a b", "a=b", "a&b", "x*", "%41", "名前"])
def test_bad_query_item_names_are_refused(name: str) -> None:
    with pytest.raises(ValueError, match="query item name"):
        PathClaim("/r", (name,))


def test_duplicate_query_items_are_refused() -> None:
    with pytest.raises(ValueError, match="duplicate"):
        PathClaim("/r", ("a", "a"))


def test_literal_paths_with_sub_delimiters_are_fine() -> None:
    assert PathClaim("/a-b_c.d~e/!$&'()+,;=:@/").path.endswith("@/")


def test_canonical_sorts_dedupes_and_drops_subsumed_query_claims() -> None:
    claims = [
        PathClaim("/z", ("b", "a")),
        PathClaim("/a"),
        PathClaim("/a", ("x",)),  # /a is claimed with any query already
        PathClaim("/z", ("a",)),
        PathClaim("/a"),
    ]
    assert canonical(claims) == [("/a", None), ("/z", "a"), ("/z", "b")]
    assert canonical(reversed(claims)) == canonical(claims)


def test_claim_components_shape() -> None:
    assert claim_components([PathClaim("/r", ("id",)), PathClaim("/c")]) == [
        {"/": "/c"},
        {"/": "/r", "?": {"id": "?*"}},
    ]


def test_canonical_refuses_non_claims() -> None:
    with pytest.raises(ValueError, match="expected PathClaim"):
        canonical(["/a"])  # type: ignore[list-item]
