"""A tenant's own settings, as its admins edit them on the tenant's host (sending and tracking).

The Tenant row lives in the public schema; a tenant's admin may change only these fields of only
its own row. Writes go through `tenant_settings_update`, the one way to change them.
"""

import re
from urllib.parse import urlsplit

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import transaction
from django.utils import timezone
from django_tenants.utils import schema_context

from core.secrets import encrypt

from .models import Tenant, webshop_secret_new
from .roles import ADMIN, user_role

TENANT_SETTINGS_FIELDS = (
    "from_name",
    "from_email",
    "reply_to",
    "postal_address",
    "send_rate_per_second",
    "track_opens",
    "track_clicks",
    "machine_open_window_seconds",
    "time_zone",
    "currency",
    "brand_logo_url",
    "brand_primary_colour",
    "brand_text_colour",
    "brand_background_colour",
    "brand_font",
    "attribution_click_days",
    "attribution_open_days",
    "ai_provider_enabled",
    "sso_google_enabled",
    "sso_google_client_id",
    "sso_google_client_secret",
    "sso_oidc_enabled",
    "sso_oidc_name",
    "sso_oidc_issuer",
    "sso_oidc_client_id",
    "sso_oidc_client_secret",
    "sso_signup_enabled",
    "sso_signup_domains",
    "sso_required",
    "sso_break_glass",
)
# Write-only: stored encrypted, never shown; an empty value keeps the stored one.
SECRET_FIELDS = ("sso_google_client_secret", "sso_oidc_client_secret")
MACHINE_OPEN_WINDOW_MAX_SECONDS = 3600
POSTAL_ADDRESS_MAX_LENGTH = 1000
_TEXT_FIELDS = (
    "time_zone",
    "currency",
    "brand_logo_url",
    "brand_primary_colour",
    "brand_text_colour",
    "brand_background_colour",
    "from_name",
    "from_email",
    "reply_to",
    "postal_address",
    "sso_google_client_id",
    "sso_oidc_name",
    "sso_oidc_issuer",
    "sso_oidc_client_id",
    "sso_signup_domains",
    "sso_break_glass",
)
LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "::1")
DOMAIN_RE = re.compile(r"^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")


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
    return {name: "" if name in SECRET_FIELDS else getattr(tenant, name) for name in TENANT_SETTINGS_FIELDS}


def listed(text):
    """Items of a list setting written one per line or separated by commas."""
    return [item.strip().lower() for item in re.split(r"[\s,;]+", text or "") if item.strip()]


def break_glass_emails(tenant):
    return listed(tenant.sso_break_glass)


def _sign_in_errors(values, tenant):
    """What is wrong with the sign-in settings as they would be saved ({field: [messages]})."""
    errors = {}
    google_secret = values.get("sso_google_client_secret") or tenant.sso_google_client_secret
    oidc_secret = values.get("sso_oidc_client_secret") or tenant.sso_oidc_client_secret
    if values["sso_google_enabled"]:
        if not values["sso_google_client_id"]:
            errors["sso_google_client_id"] = ["Google sign-in needs the OAuth client id."]
        if not google_secret:
            errors["sso_google_client_secret"] = ["Google sign-in needs the OAuth client secret."]
    issuer = values["sso_oidc_issuer"]
    if issuer:
        parts = urlsplit(issuer)
        secure = parts.scheme == "https" or (parts.scheme == "http" and parts.hostname in LOOPBACK_HOSTS)
        if not secure or not parts.hostname or parts.query or parts.fragment:
            errors["sso_oidc_issuer"] = [
                "The issuer is an https URL (e.g. https://login.example.com/realms/shop)."
            ]
    if values["sso_oidc_enabled"]:
        if not issuer:
            errors.setdefault("sso_oidc_issuer", []).append("OpenID Connect sign-in needs the issuer URL.")
        if not values["sso_oidc_client_id"]:
            errors["sso_oidc_client_id"] = ["OpenID Connect sign-in needs the client id."]
        if not oidc_secret:
            errors["sso_oidc_client_secret"] = ["OpenID Connect sign-in needs the client secret."]
    if "\n" in values["sso_oidc_name"] or len(values["sso_oidc_name"]) > 60:
        errors["sso_oidc_name"] = ["The button label is one line of at most 60 characters."]
    for domain in listed(values["sso_signup_domains"]):
        if not DOMAIN_RE.match(domain):
            errors.setdefault("sso_signup_domains", []).append(f"'{domain}' is not a domain name.")
    if values["sso_signup_enabled"] and not listed(values["sso_signup_domains"]):
        errors.setdefault("sso_signup_domains", []).append(
            "Sign-up is limited to your own email domains: list at least one (e.g. teashop.example)."
        )
    admins = listed(values["sso_break_glass"])
    users = {user.username.lower(): user for user in get_user_model().objects.filter(username__in=admins)}
    for email in admins:
        try:
            validate_email(email)
        except ValidationError:
            errors.setdefault("sso_break_glass", []).append(f"'{email}' is not an email address.")
            continue
        user = users.get(email)
        if user is None or not user.is_active or user_role(user) != ADMIN:
            errors.setdefault("sso_break_glass", []).append(
                f"{email} is not an active admin of this account."
            )
    if values["sso_required"]:
        if not (values["sso_google_enabled"] or values["sso_oidc_enabled"]):
            errors.setdefault("sso_required", []).append("Turn on Google or OpenID Connect sign-in first.")
        if not admins:
            errors.setdefault("sso_break_glass", []).append(
                "Name at least one break-glass admin who can still sign in with a password."
            )
    return errors


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
        if name in SECRET_FIELDS:
            value = (value or "").strip()
            if not value:
                continue  # write-only: empty keeps the stored secret
            if "\x00" in value or len(value) > 2000:
                raise ValidationError({name: ["Not a client secret."]})
            cleaned[name] = value
            continue
        if name in _TEXT_FIELDS:
            value = (value or "").strip()
            if "\x00" in value:
                raise ValidationError({name: ["NUL characters are not allowed."]})
        if name in ("from_email", "reply_to"):
            value = value.lower()
        if name == "currency":
            value = value.upper()
        cleaned[name] = value
    errors = {}
    if "\n" in cleaned.get("from_name", "") or "\r" in cleaned.get("from_name", ""):
        errors["from_name"] = ["The sender name must be one line."]
    if len(cleaned.get("postal_address", "")) > POSTAL_ADDRESS_MAX_LENGTH:
        errors["postal_address"] = [f"At most {POSTAL_ADDRESS_MAX_LENGTH} characters."]
    logo = cleaned.get("brand_logo_url", "")
    if logo and not logo.lower().startswith(("https://", "http://")):
        errors["brand_logo_url"] = ["The logo is an http(s) URL of an image."]
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
    if any(name.startswith("sso_") for name in cleaned):
        values = {name: cleaned.get(name, getattr(tenant, name)) for name in TENANT_SETTINGS_FIELDS}
        values.update({name: cleaned.get(name, "") for name in SECRET_FIELDS})
        for name, messages in _sign_in_errors(values, tenant).items():
            errors.setdefault(name, []).extend(messages)
    if errors:
        raise ValidationError(errors)
    for name in SECRET_FIELDS:
        if name in cleaned:
            cleaned[name] = encrypt(cleaned[name])
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


def tenant_onboarding_dismiss(*, tenant):
    """Hide the dashboard's "Getting started" checklist for everyone of the account (kept: the first
    dismissal's time). Returns whether it was shown until now."""
    if tenant.schema_name == "public" or tenant.is_template:
        raise ValidationError({"tenant": ["The platform and the template have no dashboard."]})
    now = timezone.now()
    hidden = Tenant.objects.filter(pk=tenant.pk, onboarding_dismissed_at__isnull=True).update(
        onboarding_dismissed_at=now
    )
    if hidden:
        tenant.onboarding_dismissed_at = now
    return bool(hidden)


def tenant_settings_saved(*, tenant):
    """Remember that an admin saved the settings page once (the checklist's "time zone, currency and
    brand" step), whether or not anything changed."""
    now = timezone.now()
    if Tenant.objects.filter(pk=tenant.pk, settings_saved_at__isnull=True).update(settings_saved_at=now):
        tenant.settings_saved_at = now
