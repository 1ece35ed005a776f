"""Amounts in the exact format Amazon Pay expects per currency (JPY has no decimals)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from types import MappingProxyType

# Currencies Amazon Pay charges in (presentment and multi-currency); all use 2 decimals but JPY.
DECIMALS = {
    "JPY": 0, "USD": 2, "EUR": 2, "GBP": 2, "AUD": 2, "CHF": 2, "DKK": 2, "HKD": 2, "NOK": 2,
    "NZD": 2, "SEK": 2, "ZAR": 2,
}
# Which of them a merchant of each region (as normalize_region spells it) may charge in. Sources:
# - Amazon Pay, "Multi-currency integration" (developer.amazon.com/docs/amazon-pay-checkout/
#   multi-currency-integration.html): by default a merchant charges only in its ledger (payout)
#   currency; the multi-currency feature, which lists the twelve codes above, is for merchants
#   registered in the EU or UK only. The same twelve: "Introduction to Amazon Pay multi-currency"
#   (pay.amazon.co.uk/help/5BDCWHCUC27485L).
# - An Amazon maintainer in amzn/amazon-pay-sdk-java issue 29 ("Not supported for All currency code"):
#   the US region takes USD only, JP JPY only, EU and UK their ledger currency plus the multi-currency
#   ones when the feature is on. (CAD is in neither list, so no region takes it.)
# For eu we cannot know the ledger currency or whether multi-currency is enabled, so all twelve pass:
# refusing a currency Amazon accepts would block payments, and Amazon refuses the rest itself.
REGION_CURRENCIES: Mapping[str, frozenset[str]] = MappingProxyType({
    "na": frozenset({"USD"}), "jp": frozenset({"JPY"}), "eu": frozenset(DECIMALS),
})
# The largest single charge we register, in whole units. JPY's 10,000,000 is Amazon Pay Japan's
# published per-charge maximum. For the others Amazon publishes no per-charge figure we could find;
# its published charge-limit tables group them as here (the krone, HKD and ZAR at ten times the
# others), so we cap them at 150,000 and 1,500,000: far above a buyer's order, far below overflow.
MAX_AMOUNT = {
    "JPY": 10_000_000, "USD": 150_000, "EUR": 150_000, "GBP": 150_000, "AUD": 150_000, "CHF": 150_000,
    "NZD": 150_000, "DKK": 1_500_000, "HKD": 1_500_000, "NOK": 1_500_000,
    "SEK": 1_500_000, "ZAR": 1_500_000,
}
# ASCII digits only ("١٢٣", "1_000", "1e3", " 14" and "+14" are refused), at most 12 before the point.
AMOUNT_RE = re.compile(r"([0-9]{1,12})(?:\.([0-9]{1,12}))?", re.ASCII)  # plain groups: also valid ECMA-262


class AmountError(ValueError):
    pass


def region_accepts(region: str | None, currency: str) -> bool:
    """Whether a merchant of `region` may charge in `currency`; None (the built-in emulator) takes all."""
    return region is None or currency in REGION_CURRENCIES.get(region, DECIMALS)


def normalize_amount(amount: object, currency: object) -> tuple[str, str]:
    """("14", "usd") → ("14.00", "USD"); AmountError says what is wrong in words a developer acts on."""
    # ASCII first: str.upper() maps some other letters onto ASCII ones ("uſd" would read as USD).
    if not isinstance(currency, str) or not currency.isascii() or currency.upper() not in DECIMALS:
        raise AmountError(f"currencyCode must be one of {', '.join(sorted(DECIMALS))}")
    code = currency.upper()
    if isinstance(amount, bool) or not isinstance(amount, str | int | float):
        raise AmountError("amount must be a decimal string such as \"14.00\"")
    text = str(amount)
    match = AMOUNT_RE.fullmatch(text)
    if match is None:
        raise AmountError(f"amount {text[:20]!r} is not a plain decimal number such as \"14.00\"")
    places = DECIMALS[code]
    whole, fraction = match[1], (match[2] or "").rstrip("0")
    if len(fraction) > places:
        raise AmountError(f"{code} amounts have {places} decimal places at most" if places else
                          f"{code} amounts have no decimal places")
    value = Decimal(f"{whole}.{fraction or '0'}")
    if value <= 0:
        raise AmountError("amount must be greater than 0")
    if value > MAX_AMOUNT[code]:
        raise AmountError(f"amount must be at most {MAX_AMOUNT[code]:,} {code} (Amazon Pay's limit per charge)")
    return f"{value.quantize(Decimal(1).scaleb(-places)):f}", code


_CURRENCY = re.compile(r"[A-Z]{3}", re.ASCII)
_CURRENCY_SYMBOLS: Mapping[str, str] = MappingProxyType({"JPY": "¥", "USD": "$", "EUR": "€", "GBP": "£"})


def format_amount(amount: str, currency: str) -> str:
    """Display an amount string in its currency: ``¥1,000``, ``$14.00``, ``€14.00``, ``14.00 CHF``."""
    if not _CURRENCY.fullmatch(currency):
        raise ValueError(f"currency must be a three-letter ISO 4217 code, got {currency[:10]!r}")
    try:
        value = Decimal(amount.strip())
    except InvalidOperation:
        raise ValueError(f"amount is not a decimal number: {amount[:40]!r}") from None
    if not value.is_finite():
        raise ValueError(f"amount is not a finite number: {amount[:40]!r}")
    places = DECIMALS.get(currency, 2)
    value = value.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)
    sign = "-" if value < 0 else ""
    digits = f"{abs(value):,.{places}f}"
    symbol = _CURRENCY_SYMBOLS.get(currency)
    return f"{sign}{symbol}{digits}" if symbol else f"{sign}{digits} {currency}"
