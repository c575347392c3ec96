"""`{% load money %}`: amounts as a person reads them, in the tenant's currency unless told otherwise.

{{ customer.total_spent|money }}          125,000 HUF (the tenant's currency)
{{ order.total|money:order.currency }}    19.90 EUR (the order's own)
"""

from django import template

from core.money import money_format, money_places, tenant_currency

register = template.Library()


@register.filter
def money(amount, currency=None):
    if amount in (None, ""):
        return money_format(None, "")
    return money_format(amount, currency or tenant_currency())


@register.simple_tag(name="tenant_currency")
def tenant_currency_tag():
    """The tenant's ISO 4217 code, for pages that format money in the browser (data-currency)."""
    return tenant_currency()


@register.simple_tag
def currency_places(currency=None):
    """Decimal places of the currency as people write it (0 for HUF, 2 for EUR)."""
    return money_places(currency or tenant_currency())
