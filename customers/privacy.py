"""What an erased customer leaves behind, and the helpers that make sure it is nothing personal.

- `address_hash(email)`: a keyed hash of an address (HMAC-SHA256 under a key derived from SECRET_KEY),
  kept instead of the address where a fact about it must outlive its erasure: the erased list
  (`ErasedAddress`: an import of the address is refused) and a suppression (a bounce or complaint
  still holds if the person comes back). Without the key a hash cannot be tested against a guessed
  address; the same address hashes alike in every tenant, so a tenant's export imported elsewhere
  keeps its erased list. Rotating SECRET_KEY forgets the hashes (the address could be imported again).
- `redact(text, *values)`: a text (an SMTP reply, an import error, an admin log line) with the given
  values and every email address in it replaced.
"""

import hashlib
import hmac
import re

from django.conf import settings

_KEY_SALT = b"customers.privacy.address_hash"
REDACTED = "[erased]"
# Wide on purpose: whatever looks like local@domain in a server's reply or a log line goes.
_ADDRESS_IN_TEXT = re.compile(r"[^\s<>()\[\]{}'\",;:=]+@[^\s<>()\[\]{}'\",;:=]+")


def address_hasher():
    """`email -> hex digest`, with the key derived once (an import hashes every row)."""
    key = hashlib.sha256(_KEY_SALT + settings.SECRET_KEY.encode()).digest()
    base = hmac.new(key, digestmod=hashlib.sha256)

    def address_hash(email):
        digest = base.copy()
        digest.update((email or "").strip().lower().encode("utf-8"))
        return digest.hexdigest()

    return address_hash


def address_hash(email):
    return address_hasher()(email)


def redact(text, *values):
    """`text` without the given values (any case) and without any email address."""
    if not text:
        return text
    for value in values:
        if value:
            text = re.sub(re.escape(value), REDACTED, text, flags=re.IGNORECASE)
    return _ADDRESS_IN_TEXT.sub(REDACTED, text)


def redact_data(value, *values):
    """JSON-like data with `redact` applied to every string in it (keys included)."""
    if isinstance(value, str):
        return redact(value, *values)
    if isinstance(value, list):
        return [redact_data(item, *values) for item in value]
    if isinstance(value, dict):
        return {redact(str(key), *values): redact_data(item, *values) for key, item in value.items()}
    return value
