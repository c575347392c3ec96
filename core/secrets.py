"""Secrets kept in the database (a tenant's OIDC client secrets), encrypted at rest with Fernet.

FIELD_ENCRYPTION_KEYS lists Fernet keys, newest first: the first encrypts, all decrypt, so a key is
rotated by putting a new one in front. Without it a key is derived from SECRET_KEY.
"""

import base64
import hashlib

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings


class SecretUnreadable(Exception):
    """The stored secret was encrypted with a key that is no longer configured."""


def _fernet():
    keys = list(settings.FIELD_ENCRYPTION_KEYS) or [
        base64.urlsafe_b64encode(
            hashlib.sha256(b"field-encryption\0" + settings.SECRET_KEY.encode()).digest()
        )
    ]
    return MultiFernet([Fernet(key) for key in keys])


def encrypt(plain):
    """The ciphertext of `plain` (text), or "" for an empty secret."""
    return _fernet().encrypt(plain.encode()).decode() if plain else ""


def decrypt(token):
    """The text behind `token`, "" for none; SecretUnreadable when no configured key opens it."""
    if not token:
        return ""
    try:
        return _fernet().decrypt(token.encode()).decode()
    except InvalidToken as error:
        raise SecretUnreadable("the secret was encrypted with a key that is not configured") from error
