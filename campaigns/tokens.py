"""Signed tokens for the links in our emails (open pixel, click, unsubscribe, preferences).

Each token is signed with SECRET_KEY and a salt that includes the tenant's schema, so a token of
tenant A is invalid on tenant B's host, and it names exactly what it stands for (a recipient, a
link of that recipient's campaign, a customer). Tokens never expire: an old email keeps working.
"""

from django.conf import settings
from django.core import signing
from django.db import connection

KINDS = {"o", "c", "u", "p"}  # open, click, unsubscribe, preferences


def _signer(kind, schema=None):
    return signing.Signer(salt=f"crm.tracking.{kind}.{schema or connection.schema_name}", algorithm="sha256")


def _b62(number):
    alphabet = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
    if number == 0:
        return "0"
    out = []
    while number:
        number, rest = divmod(number, 62)
        out.append(alphabet[rest])
    return "".join(reversed(out))


def _unb62(text):
    alphabet = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
    number = 0
    for char in text:
        number = number * 62 + alphabet.index(char)
    return number


def make_token(kind, *ids, schema=None):
    """`make_token("c", recipient_id, link_id)` -> a URL-safe signed token."""
    assert kind in KINDS
    value = ".".join(_b62(int(i)) for i in ids)
    return _signer(kind, schema).sign(value).replace(":", "~")


def read_token(kind, token, *, schema=None):
    """The ids a token names, as a tuple of ints, or None when it is not valid for this tenant."""
    if kind not in KINDS or not isinstance(token, str) or len(token) > 200:
        return None
    try:
        value = _signer(kind, schema).unsign(token.replace("~", ":"))
        return tuple(_unb62(part) for part in value.split("."))
    except (signing.BadSignature, ValueError):
        return None


def tenant_base_url(tenant=None):
    """Links use the tenant's primary domain with the scheme and port of APP_URL."""
    from tenancy.services import tenant_base_url as base

    return base(tenant or connection.tenant)


def open_url(base_url, recipient_id):
    return f"{base_url}/t/o/{make_token('o', recipient_id)}"


def click_url(base_url, recipient_id, link_id):
    return f"{base_url}/t/c/{make_token('c', recipient_id, link_id)}"


def unsubscribe_url(base_url, recipient_id):
    return f"{base_url}/u/{make_token('u', recipient_id)}"


def preferences_url(base_url, customer_id):
    return f"{base_url}/p/{make_token('p', customer_id)}"


def secret_is_default():
    return settings.SECRET_KEY.startswith("dev-insecure")
