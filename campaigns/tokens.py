"""Signed tokens for the links in our emails (open pixel, click, unsubscribe, preferences, web version).

Each token is signed with SECRET_KEY and a salt that includes the tenant's schema, so a token of
tenant A is invalid on tenant B's host, and it names exactly what it stands for (a recipient, a
link of that recipient's campaign, a customer). Tokens never expire: an old email keeps working.
"""

import base64
import hashlib
import hmac

from django.conf import settings
from django.core import signing
from django.db import connection, models

from tenancy import services as tenancy_services


class TokenKind(models.TextChoices):
    """What a signed link stands for. The letter is part of the token's salt and of its URL path: an
    email already sent keeps working only while these letters stay as they are."""

    OPEN = "o", "Open pixel"
    CLICK = "c", "Click"
    UNSUBSCRIBE = "u", "Unsubscribe"
    PREFERENCES = "p", "Preferences"
    WEB_VERSION = "v", "Web version"


KINDS = set(TokenKind.values)


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
    """`make_token(TokenKind.CLICK, recipient_id, link_id)` -> a URL-safe signed token."""
    assert kind in KINDS
    value = ".".join(_b62(int(i)) for i in ids)
    return f"{value}~{_signature(kind, schema or connection.schema_name, value)}"


_HMACS = {}


def _signature(kind, schema, value):
    """Exactly `Signer(salt=..., algorithm="sha256").signature(value)`, with the derived key's HMAC
    kept per (kind, schema, secret): the sender signs ~6 tokens per message and Signer derives the
    key afresh each time. Only the key material is cached, never tenant data."""
    cache_key = (kind, schema, settings.SECRET_KEY)
    prototype = _HMACS.get(cache_key)
    if prototype is None:
        salt = f"crm.tracking.{kind}.{schema}signer"
        key = hashlib.sha256((salt + settings.SECRET_KEY).encode()).digest()
        prototype = hmac.new(key, digestmod=hashlib.sha256)
        if len(_HMACS) > 10_000:
            _HMACS.clear()
        _HMACS[cache_key] = prototype
    mac = prototype.copy()
    mac.update(value.encode())
    return base64.urlsafe_b64encode(mac.digest()).strip(b"=").decode()


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
    return tenancy_services.tenant_base_url(tenant or connection.tenant)


def open_url(base_url, recipient_id):
    return f"{base_url}/t/o/{make_token(TokenKind.OPEN, recipient_id)}"


def click_url(base_url, recipient_id, link_id):
    return f"{base_url}/t/c/{make_token(TokenKind.CLICK, recipient_id, link_id)}"


def unsubscribe_url(base_url, recipient_id):
    return f"{base_url}/u/{make_token(TokenKind.UNSUBSCRIBE, recipient_id)}"


def web_version_url(base_url, recipient_id, schema=None):
    return f"{base_url}/v/{make_token(TokenKind.WEB_VERSION, recipient_id, schema=schema)}"


def preferences_url(base_url, customer_id):
    return f"{base_url}/p/{make_token(TokenKind.PREFERENCES, customer_id)}"


def secret_is_default():
    return settings.SECRET_KEY.startswith("dev-insecure")
