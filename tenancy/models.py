import secrets

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django_tenants.models import DomainMixin, TenantMixin

from core.values import validate_time_zone

# The longest attribution window a tenant may set: the touch index stays a short range scan.
ATTRIBUTION_MAX_DAYS = 90


def default_time_zone():
    """A new tenant's clock: the operator's TENANT_DEFAULT_TIME_ZONE."""
    return settings.TENANT_DEFAULT_TIME_ZONE


def webshop_secret_new():
    """A fresh secret for signing the webshop's bus messages (256 bits, URL-safe text)."""
    return secrets.token_urlsafe(32)


class TenantQuerySet(models.QuerySet):
    def serving(self):
        """Tenants that serve traffic and run periodic work (not public, not the template)."""
        return self.filter(is_active=True, is_template=False).exclude(schema_name="public")


class Tenant(TenantMixin):
    """A webshop business: one PostgreSQL schema, one or more domains, its own settings."""

    name = models.CharField(max_length=200)
    is_active = models.BooleanField(default=True)
    is_template = models.BooleanField(default=False, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    deactivated_at = models.DateTimeField(null=True, blank=True)

    # Sending settings (the tenant's settings page in the admin edits these).
    from_name = models.CharField(max_length=200, blank=True)
    from_email = models.EmailField(blank=True, help_text="Sender address; empty means MAIL_FROM_ADDRESS.")
    reply_to = models.EmailField(blank=True)
    postal_address = models.TextField(blank=True, help_text="Shown in the footer of marketing email.")
    send_rate_per_second = models.PositiveIntegerField(
        default=50, validators=[MinValueValidator(1), MaxValueValidator(10000)]
    )
    track_opens = models.BooleanField(default=True)
    track_clicks = models.BooleanField(default=True)
    machine_open_window_seconds = models.PositiveIntegerField(default=10)
    # The tenant's clock: the admin shows and reads dates in it; flows and send windows keep it.
    time_zone = models.CharField(max_length=64, default=default_time_zone, validators=[validate_time_zone])
    # Revenue attribution (customers/attribution.py): an order goes to the customer's last email click
    # this many days before it, else to the last human open this many days before it (0: opens never count).
    attribution_click_days = models.PositiveSmallIntegerField(
        default=5, validators=[MinValueValidator(0), MaxValueValidator(ATTRIBUTION_MAX_DAYS)]
    )
    attribution_open_days = models.PositiveSmallIntegerField(
        default=1, validators=[MinValueValidator(0), MaxValueValidator(ATTRIBUTION_MAX_DAYS)]
    )

    # The key of the HMAC that proves a webshop bus message comes from this tenant (events/README.md).
    # Its admins see and rotate it on the tenant's settings page; nobody else can set it.
    webshop_secret = models.CharField(max_length=64, default=webshop_secret_new, editable=False)

    # AI assistance: off keeps every answer offline even when the platform has a provider.
    ai_provider_enabled = models.BooleanField(default=True)

    # Signing in (signin/): Google and one OpenID Connect provider; secrets encrypted (core.secrets).
    sso_google_enabled = models.BooleanField(default=False)
    sso_google_client_id = models.CharField(max_length=255, blank=True)
    sso_google_client_secret = models.TextField(blank=True, help_text="Encrypted.")
    sso_oidc_enabled = models.BooleanField(default=False)
    sso_oidc_name = models.CharField(max_length=60, blank=True)
    sso_oidc_issuer = models.URLField(max_length=500, blank=True)
    sso_oidc_client_id = models.CharField(max_length=255, blank=True)
    sso_oidc_client_secret = models.TextField(blank=True, help_text="Encrypted.")
    sso_signup_enabled = models.BooleanField(default=False)
    sso_signup_domains = models.TextField(blank=True)
    sso_required = models.BooleanField(default=False)
    sso_break_glass = models.TextField(blank=True)

    # Schemas are created by tenancy.services.tenant_create (clone of the template + real migrate).
    auto_create_schema = False
    auto_drop_schema = False

    objects = TenantQuerySet.as_manager()

    class Meta:
        ordering = ["schema_name"]

    def __str__(self):
        return f"{self.name} ({self.schema_name})"

    @property
    def slug(self):
        return self.schema_name


class Domain(DomainMixin):
    class Meta:
        ordering = ["domain"]

    def __str__(self):
        return self.domain
