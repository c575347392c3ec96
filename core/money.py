"""Money as a person reads it: the currency and thousands separators of the active locale."""

from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import connection
from django.utils.formats import number_format

# The ISO 4217 codes of currencies in circulation (funds, metals and test codes left out): what a
# tenant may keep its accounts in.
CURRENCIES = frozenset(
    """
    AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BHD BIF BMD BND BOB BRL BSD BTN BWP BYN BZD
    CAD CDF CHF CLP CNY COP CRC CUP CVE CZK DJF DKK DOP DZD EGP ERN ETB EUR FJD FKP GBP GEL GHS GIP GMD
    GNF GTQ GYD HKD HNL HTG HUF IDR ILS INR IQD IRR ISK JMD JOD JPY KES KGS KHR KMF KPW KRW KWD KYD KZT
    LAK LBP LKR LRD LSL LYD MAD MDL MGA MKD MMK MNT MOP MRU MUR MVR MWK MXN MYR MZN NAD NGN NIO NOK NPR
    NZD OMR PAB PEN PGK PHP PKR PLN PYG QAR RON RSD RUB RWF SAR SBD SCR SDG SEK SGD SHP SLE SOS SRD SSP
    STN SVC SYP SZL THB TJS TMT TND TOP TRY TTD TWD TZS UAH UGX USD UYU UZS VES VND VUV WST XAF XCD XOF
    XPF YER ZAR ZMW ZWG
    """.split()
)

# ISO 4217 currencies written without minor units in everyday use.
WHOLE_CURRENCIES = frozenset({"HUF", "JPY", "KRW", "ISK", "CLP", "VND"})


def money_places(currency):
    """How many decimals people write amounts of `currency` with."""
    return 0 if (currency or "").upper() in WHOLE_CURRENCIES else 2


def money_format(amount, currency):
    """125000 HUF -> "125,000 HUF"; 19.9 EUR -> "19.90 EUR"; None -> "—"."""
    if amount is None:
        return "—"
    currency = (currency or "").upper()
    places = money_places(currency)
    # Half up, as a till rounds (1,234.50 HUF reads 1,235 HUF), not the banker's half even.
    rounded = Decimal(amount).quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)
    text = number_format(rounded, decimal_pos=places, use_l10n=True, force_grouping=True)
    return f"{text} {currency}".strip()


def tenant_currency():
    """The currency of the tenant of this request or task (its settings), else the operator's default."""
    tenant = getattr(connection, "tenant", None)
    return getattr(tenant, "currency", "") or settings.TENANT_DEFAULT_CURRENCY


def validate_currency(code):
    """An ISO 4217 code of a currency in circulation, upper case (EUR, HUF, USD)."""
    if code not in CURRENCIES:
        raise ValidationError(f"'{code}' is not an ISO 4217 currency code (e.g. EUR, HUF or USD).")


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
