"""Amounts in the exact format Amazon Pay expects per currency (JPY has no decimals)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from types import MappingProxyType

# Currencies Amazon Pay charges in (presentment and multi-currency); all use 2 decimals but JPY.
DECIMALS = {
    "JPY": 0, "USD": 2, "EUR": 2, "GBP": 2, "AUD": 2, "CHF": 2, "DKK": 2, "HKD": 2, "NOK": 2,
    "NZD": 2, "SEK": 2, "ZAR": 2, "CAD": 2,
}
MAX_INTEGER_DIGITS = 10


class AmountError(ValueError):
    pass


def normalize_amount(amount: object, currency: object) -> tuple[str, str]:
    """("14", "usd") → ("14.00", "USD"); AmountError says what is wrong in words a developer acts on."""
    if not isinstance(currency, str) or currency.upper() not in DECIMALS:
        raise AmountError(f"currencyCode must be one of {', '.join(sorted(DECIMALS))}")
    code = currency.upper()
    if isinstance(amount, bool) or not isinstance(amount, str | int | float):
        raise AmountError("amount must be a decimal string such as \"14.00\"")
    try:
        value = Decimal(str(amount).strip())
    except InvalidOperation:
        raise AmountError(f"amount {str(amount)[:20]!r} is not a decimal number") from None
    if not value.is_finite() or value <= 0:
        raise AmountError("amount must be greater than 0")
    places = DECIMALS[code]
    exponent = value.normalize().as_tuple().exponent
    assert isinstance(exponent, int)
    if -exponent > places:
        raise AmountError(f"{code} amounts have {places} decimal places at most" if places else
                          f"{code} amounts have no decimal places")
    quantized = value.quantize(Decimal(1).scaleb(-places))
    if len(str(int(quantized))) > MAX_INTEGER_DIGITS:
        raise AmountError("amount is too large")
    return f"{quantized:f}", code


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
