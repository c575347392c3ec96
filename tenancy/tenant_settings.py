"""A tenant's own settings, as its admins edit them on the tenant's host (sending and tracking).

The Tenant row lives in the public schema; a tenant's admin may change only these fields of only
its own row. Writes go through `tenant_settings_update`, the one way to change them.
"""

from django.core.exceptions import ValidationError
from django.db import transaction
from django_tenants.utils import schema_context

from .models import Tenant, webshop_secret_new

TENANT_SETTINGS_FIELDS = (
    "from_name",
    "from_email",
    "reply_to",
    "postal_address",
    "send_rate_per_second",
    "track_opens",
    "track_clicks",
    "machine_open_window_seconds",
)
MACHINE_OPEN_WINDOW_MAX_SECONDS = 3600
POSTAL_ADDRESS_MAX_LENGTH = 1000
_TEXT_FIELDS = ("from_name", "from_email", "reply_to", "postal_address")


# What makes a sender address acceptable is decided above tenancy (campaigns: the platform address or
# a domain the tenant has verified); the app that decides plugs its check in here at start-up. Each is
# called inside the tenant's schema as `check(from_email)` and returns why it is refused, or None.
FROM_EMAIL_CHECKS = []


def from_email_problem(*, tenant, from_email):
    """Why `tenant` may not send from `from_email`, or None (an empty address means the platform's)."""
    if not from_email:
        return None
    with schema_context(tenant.schema_name):
        for check in FROM_EMAIL_CHECKS:
            problem = check(from_email)
            if problem:
                return problem
    return None


def tenant_settings(*, tenant):
    return {name: getattr(tenant, name) for name in TENANT_SETTINGS_FIELDS}


def tenant_settings_update(*, tenant, changes):
    """Validate and save `changes` (a subset of TENANT_SETTINGS_FIELDS) to the tenant's own row.

    Raises ValidationError naming each bad field; then nothing is saved. Returns the changed field names.
    """
    unknown = sorted(set(changes) - set(TENANT_SETTINGS_FIELDS))
    if unknown:
        raise ValidationError({name: ["This setting cannot be changed here."] for name in unknown})
    if tenant.schema_name == "public" or tenant.is_template:
        raise ValidationError({"tenant": ["The platform and the template have no tenant settings."]})
    cleaned = {}
    for name, value in changes.items():
        if name in _TEXT_FIELDS:
            value = (value or "").strip()
            if "\x00" in value:
                raise ValidationError({name: ["NUL characters are not allowed."]})
        if name in ("from_email", "reply_to"):
            value = value.lower()
        cleaned[name] = value
    errors = {}
    if "\n" in cleaned.get("from_name", "") or "\r" in cleaned.get("from_name", ""):
        errors["from_name"] = ["The sender name must be one line."]
    if len(cleaned.get("postal_address", "")) > POSTAL_ADDRESS_MAX_LENGTH:
        errors["postal_address"] = [f"At most {POSTAL_ADDRESS_MAX_LENGTH} characters."]
    window = cleaned.get("machine_open_window_seconds")
    if isinstance(window, int) and not 0 <= window <= MACHINE_OPEN_WINDOW_MAX_SECONDS:
        errors["machine_open_window_seconds"] = [f"Between 0 and {MACHINE_OPEN_WINDOW_MAX_SECONDS} seconds."]
    candidate = Tenant(**{**tenant_settings(tenant=tenant), **cleaned})
    try:
        candidate.clean_fields(exclude=[f.name for f in Tenant._meta.fields if f.name not in cleaned])
    except ValidationError as exc:
        for name, messages in exc.message_dict.items():
            errors.setdefault(name, []).extend(messages)
    # Checked when it changes: a sender saved before the rule existed does not block other settings
    # (campaigns refuse it when they are sent, saying how to fix it).
    sender = cleaned.get("from_email")
    if sender and sender != tenant.from_email and "from_email" not in errors:
        problem = from_email_problem(tenant=tenant, from_email=sender)
        if problem:
            errors["from_email"] = [problem]
    if errors:
        raise ValidationError(errors)
    changed = [name for name, value in cleaned.items() if getattr(tenant, name) != value]
    if changed:
        with transaction.atomic():
            Tenant.objects.filter(pk=tenant.pk).update(**{name: cleaned[name] for name in changed})
        for name in changed:
            setattr(tenant, name, cleaned[name])
    return changed


def tenant_webshop_secret_rotate(*, tenant):
    """Give the tenant a new webshop signing secret; the old one stops proving anything at once.

    Rotation is what an admin does after a leak, so there is no grace period: messages signed with
    the old secret go to the dead-letter queue, to be republished once signed with the new one.
    """
    if tenant.schema_name == "public" or tenant.is_template:
        raise ValidationError({"tenant": ["The platform and the template have no webshop secret."]})
    secret = webshop_secret_new()
    Tenant.objects.filter(pk=tenant.pk).update(webshop_secret=secret)
    tenant.webshop_secret = secret
    return secret
