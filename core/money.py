"""Money as a person reads it: the currency and thousands separators of the active locale."""

from decimal import Decimal, InvalidOperation

from django.utils.formats import number_format

# ISO 4217 currencies written without minor units in everyday use.
WHOLE_CURRENCIES = frozenset({"HUF", "JPY", "KRW", "ISK", "CLP", "VND"})


def money_format(amount, currency):
    """125000 HUF -> "125,000 HUF"; 19.9 EUR -> "19.90 EUR"; None -> "—"."""
    if amount is None:
        return "—"
    currency = (currency or "").upper()
    places = 0 if currency in WHOLE_CURRENCIES else 2
    text = number_format(Decimal(amount), decimal_pos=places, use_l10n=True, force_grouping=True)
    return f"{text} {currency}".strip()


def amount_parse(text):
    """An amount typed by a person ("20000", "20 000", "20,000.50") -> Decimal, or None if it is not one."""
    cleaned = (text or "").strip().replace("\u00a0", "").replace(" ", "").replace(",", "")
    if not cleaned:
        return None
    try:
        value = Decimal(cleaned)
    except InvalidOperation:
        return None
    return value if value.is_finite() else None
