import secrets

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import models
from django_tenants.models import DomainMixin, TenantMixin

from core.money import validate_currency
from core.values import validate_time_zone

# The longest attribution window a tenant may set: the touch index stays a short range scan.
ATTRIBUTION_MAX_DAYS = 90


def default_time_zone():
    """A new tenant's clock: the operator's TENANT_DEFAULT_TIME_ZONE."""
    return settings.TENANT_DEFAULT_TIME_ZONE


def default_currency():
    """A new tenant's currency: the operator's TENANT_DEFAULT_CURRENCY."""
    return settings.TENANT_DEFAULT_CURRENCY.upper()


def webshop_secret_new():
    """A fresh secret for signing the webshop's bus messages (256 bits, URL-safe text)."""
    return secrets.token_urlsafe(32)


validate_colour = RegexValidator(r"^#[0-9a-fA-F]{6}$", "A colour is written #rrggbb, e.g. #2563eb.")

# Fonts every mail client has (a web font is not loaded by most): the stack each name stands for.
BRAND_FONTS = {
    "Arial": "Arial, Helvetica, sans-serif",
    "Helvetica": "Helvetica, Arial, sans-serif",
    "Georgia": "Georgia, 'Times New Roman', serif",
    "Times New Roman": "'Times New Roman', Times, serif",
    "Trebuchet MS": "'Trebuchet MS', Arial, sans-serif",
    "Verdana": "Verdana, Geneva, sans-serif",
    "Courier New": "'Courier New', Courier, monospace",
}


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
    # The currency the admin shows money in (lifetime values, revenue), with the locale's separators.
    currency = models.CharField(max_length=3, default=default_currency, validators=[validate_currency])
    # The dashboard's "Getting started" checklist: when an admin first saved the settings page (the
    # step "time zone, currency and brand"), and when someone hid the checklist for the account.
    settings_saved_at = models.DateTimeField(null=True, blank=True, editable=False)
    onboarding_dismissed_at = models.DateTimeField(null=True, blank=True, editable=False)
    # Revenue attribution (customers/attribution.py): an order goes to the customer's last email click
    # this many days before it, else to the last human open this many days before it (0: opens never count).
    attribution_click_days = models.PositiveSmallIntegerField(
        default=5, validators=[MinValueValidator(0), MaxValueValidator(ATTRIBUTION_MAX_DAYS)]
    )
    attribution_open_days = models.PositiveSmallIntegerField(
        default=1, validators=[MinValueValidator(0), MaxValueValidator(ATTRIBUTION_MAX_DAYS)]
    )

    # Brand defaults of the block editor's emails (campaigns/design.py): a block's own setting wins.
    brand_logo_url = models.URLField(max_length=2000, blank=True)
    brand_primary_colour = models.CharField(max_length=7, default="#2563eb", validators=[validate_colour])
    brand_text_colour = models.CharField(max_length=7, default="#1f2937", validators=[validate_colour])
    brand_background_colour = models.CharField(max_length=7, default="#f4f4f5", validators=[validate_colour])
    brand_font = models.CharField(
        max_length=40, default="Arial", choices=[(name, name) for name in BRAND_FONTS]
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


class TenantWork(models.Model):
    """When a tenant next has periodic work of one kind (tenancy/work.py): beat reads these instead of
    visiting every tenant's schema, so an idle tenant costs nothing per tick.

    One row per (tenant, kind), in the public schema. `due_at` is the earliest time the work is due;
    `marked_at` the last time something noted work of this kind (it decides whether a run may clear
    the row); `claim` and `claimed_until` belong to the tick that handed the row to a task."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    kind = models.CharField(max_length=64)
    due_at = models.DateTimeField()
    marked_at = models.DateTimeField()
    claim = models.UUIDField(null=True, blank=True)
    claimed_at = models.DateTimeField(null=True, blank=True)
    claimed_until = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "tenancy_work"
        constraints = [models.UniqueConstraint(fields=["tenant", "kind"], name="tenancy_work_once_per_kind")]
        # A tick reads the due rows of one kind: an index range scan however many tenants there are.
        indexes = [models.Index(fields=["kind", "due_at"], name="tenancy_work_due")]

    def __str__(self):
        return f"{self.kind} of tenant #{self.tenant_id} due {self.due_at:%Y-%m-%d %H:%M:%S}"
