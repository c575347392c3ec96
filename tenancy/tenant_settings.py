"""A tenant's own settings, as its admins edit them on the tenant's host (sending and tracking).

The Tenant row lives in the public schema; a tenant's admin may change only these fields of only
its own row. Writes go through `tenant_settings_update`, the one way to change them.
"""

from django.core.exceptions import ValidationError
from django.db import transaction

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
