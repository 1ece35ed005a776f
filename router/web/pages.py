"""The page model: which page kinds exist, what each one shows, and how a page opens the app. Pure."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Literal, get_args

from router.checkout.money import format_amount
from router.validators import ANDROID_PACKAGE, APP_STORE_ID
from router.web.links import configured_link, http_url

PageKind = Literal[
    "success", "pending", "declined", "canceled", "expired", "amazon_error",
    "error", "not_found", "conflict", "bad_request", "unavailable",
]  # fmt: skip
PAGE_KINDS: tuple[PageKind, ...] = get_args(PageKind)

# Outcomes the buyer reached through a claimed return path are normal pages (200); the rest say
# what went wrong. The flows may override any of these per view.
DEFAULT_STATUS: Mapping[PageKind, int] = MappingProxyType({
    "success": 200, "pending": 200, "declined": 200, "canceled": 200, "expired": 200, "amazon_error": 200,
    "error": 502, "not_found": 404, "conflict": 409, "bad_request": 400, "unavailable": 503,
})  # fmt: skip
DEFAULT_REFRESH_SECONDS = 5
_REFRESHING_KINDS = frozenset({"pending", "unavailable"})
# Nothing was charged and the buyer can simply pay again: "try again" is the primary action.
RETRY_KINDS = frozenset({"declined", "canceled", "expired", "amazon_error"})
TONES: Mapping[PageKind, str] = MappingProxyType({
    "success": "ok", "pending": "wait", "unavailable": "wait",
    "declined": "fail", "amazon_error": "fail", "error": "fail", "conflict": "fail", "bad_request": "fail",
    "canceled": "info", "expired": "info", "not_found": "info",
})  # fmt: skip
_CACHED_AMOUNT_MAX = 32  # characters; a real amount has at most 12 + 1 + 12


@functools.lru_cache(maxsize=256)
def _display_amount(amount: str, currency: str) -> str:
    return format_amount(amount, currency)


def display_amount(amount: str, currency: str) -> str:
    """``format_amount``, remembered for the few amounts and currencies a shop's pages show (bounded)."""
    if len(amount) > _CACHED_AMOUNT_MAX or len(currency) > 3:
        return format_amount(amount, currency)
    return _display_amount(amount, currency)


@dataclass(frozen=True, slots=True)
class AppLinks:
    """How a page can hand the buyer over to the merchant's app (all optional; none ⇒ no app section).

    ``ios_open_url`` is the current URL on the *alternate* associated host (see
    :func:`alternate_host_url`): Safari never opens the app for a tap on the page's own host.
    ``play_store_url`` defaults to the Play listing of ``android_package``.
    """

    app_store_id: str | None = None
    ios_open_url: str | None = None
    android_package: str | None = None
    play_store_url: str | None = None

    def __post_init__(self) -> None:
        if self.app_store_id is not None and not APP_STORE_ID.fullmatch(self.app_store_id):
            raise ValueError(f"app_store_id must be the numeric App Store id, got {self.app_store_id!r}")
        if self.android_package is not None and not ANDROID_PACKAGE.fullmatch(self.android_package):
            raise ValueError(f"android_package is not an Android package name: {self.android_package!r}")
        if self.ios_open_url is not None:
            http_url("ios_open_url", self.ios_open_url)
        if self.play_store_url is not None:
            configured_link("play_store_url", self.play_store_url)
        elif self.android_package is not None:
            derived = f"https://play.google.com/store/apps/details?id={self.android_package}"
            object.__setattr__(self, "play_store_url", derived)

    @property
    def app_store_url(self) -> str | None:
        return f"https://apps.apple.com/app/id{self.app_store_id}" if self.app_store_id else None


@dataclass(frozen=True, slots=True)
class PageView:
    """Everything a result page shows, already decided by the flow. Buyer data stays out of repr()."""

    kind: PageKind
    merchant_name: str
    status: int | None = None  # None ⇒ DEFAULT_STATUS[kind]
    merchant_reference: str | None = None
    amount: str | None = None  # decimal string as Amazon Pay sends it, e.g. "1000" or "14.00"
    currency: str | None = None  # ISO 4217, e.g. "JPY"
    buyer_name: str | None = field(default=None, repr=False)
    buyer_email: str | None = field(default=None, repr=False)  # full address; only its mask is shown
    payment_descriptor: str | None = field(default=None, repr=False)  # e.g. "Visa ****1234"
    return_url: str | None = None  # "back to shop" / "try again"
    refresh_seconds: int | None = None  # pending/unavailable only; None on pending ⇒ default
    reason_key: str | None = None  # why the page is shown: a key of the message catalogs, shown translated
    reference_code: str | None = None  # Amazon Pay's reason code, shown as it is for the buyer to quote
    app_links: AppLinks = AppLinks()

    def __post_init__(self) -> None:
        if self.kind not in PAGE_KINDS:
            raise ValueError(f"unknown page kind {self.kind!r}; expected one of {', '.join(PAGE_KINDS)}")
        if self.status is None:
            object.__setattr__(self, "status", DEFAULT_STATUS[self.kind])
        elif not (200 <= self.status <= 299 or 400 <= self.status <= 599):
            raise ValueError(f"status of a page must be 2xx, 4xx or 5xx, got {self.status}")
        if (self.amount is None) != (self.currency is None):
            raise ValueError("amount and currency must be given together")
        if self.amount is not None and self.currency is not None:
            display_amount(self.amount, self.currency)  # fail at construction, not at render time
        if self.return_url is not None:
            configured_link("return_url", self.return_url)
        self._check_refresh()

    def _check_refresh(self) -> None:
        if self.refresh_seconds is None:
            if self.kind == "pending":
                object.__setattr__(self, "refresh_seconds", DEFAULT_REFRESH_SECONDS)
            return
        if self.kind not in _REFRESHING_KINDS:
            raise ValueError(f"refresh_seconds only applies to pending/unavailable pages, not {self.kind}")
        if not 1 <= self.refresh_seconds <= 600:
            raise ValueError(f"refresh_seconds must be 1..600, got {self.refresh_seconds}")

    @property
    def http_status(self) -> int:
        return self.status if self.status is not None else DEFAULT_STATUS[self.kind]
