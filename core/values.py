"""How the service reads a yes/no and an email address from outside input: one word list and one email
rule for the API, query strings, the admin, CSV imports and the environment."""

import re
import zoneinfo

from django.core.exceptions import ValidationError
from django.core.validators import EmailValidator

TRUE_WORDS = frozenset({"true", "1", "yes", "y", "on"})
FALSE_WORDS = frozenset({"false", "0", "no", "n", "off"})
EMAIL_MAX_LENGTH = 254

# Django's EmailValidator decides what an address is (international domains included). It costs
# ~15 µs a call, too much for a million-row import, so the common shape (a dot-atom local part and
# ASCII domain labels: a strict subset of what Django accepts) is matched first at ~1 µs.
_COMMON_EMAIL = re.compile(
    r"[a-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[a-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
    r"@(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}"
)
_django_email = EmailValidator()


def parse_bool(text):
    """True or False for a yes/no word (any case, surrounding spaces ignored); None for an empty value;
    ValueError for anything else."""
    word = str(text if text is not None else "").strip().lower()
    if not word:
        return None
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise ValueError(f"'{text}' is not true or false.")


def email_is_valid(email):
    """Whether an already trimmed, lower-case address is one the service accepts."""
    if len(email) > EMAIL_MAX_LENGTH:
        return False
    if _COMMON_EMAIL.fullmatch(email):
        return True
    try:
        _django_email(email)
    except ValidationError:
        return False
    return True


def email_normalize(value):
    """The address trimmed and lower-cased, or ValueError saying what is wrong with it."""
    email = (value or "").strip().lower()
    if not email:
        raise ValueError("An email address is required.")
    if len(email) > EMAIL_MAX_LENGTH:
        raise ValueError(f"An email address has at most {EMAIL_MAX_LENGTH} characters.")
    if not email_is_valid(email):
        raise ValueError(f"'{value}' is not a valid email address.")
    return email


def validate_time_zone(name):
    """An IANA time zone name (Europe/Budapest, UTC), as the tenant's clock and the admin's dates use."""
    if name not in available_time_zones():
        raise ValidationError(f"'{name}' is not a time zone (e.g. Europe/Budapest or UTC).")


def available_time_zones():
    return _TIME_ZONES


_TIME_ZONES = frozenset(zoneinfo.available_timezones()) | {"UTC"}
