"""The operators' admin on the public host: tenants and domains. Tenant users are managed per tenant."""

from django import forms
from django.contrib import admin, messages
from django.contrib.auth.admin import GroupAdmin as BaseGroupAdmin
from django.contrib.auth.admin import UserAdmin as BaseUserAdmin
from django.contrib.auth.models import Group, User
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.validators import validate_email
from django.db import connection
from django.http import Http404, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.views.decorators.http import require_POST
from unfold.admin import ModelAdmin, TabularInline
from unfold.forms import AdminPasswordChangeForm, UserChangeForm, UserCreationForm
from unfold.widgets import (
    UnfoldAdminEmailInputWidget,
    UnfoldAdminIntegerFieldWidget,
    UnfoldAdminPasswordWidget,
    UnfoldAdminSelectWidget,
    UnfoldAdminTextareaWidget,
    UnfoldAdminTextInputWidget,
    UnfoldBooleanSwitchWidget,
)

from core.money import CURRENCIES
from core.values import available_time_zones

from .models import Domain, Tenant
from .roles import ADMIN, MARKETER, ROLE_CHOICES, TENANT_SETTINGS_PERMISSION, user_role, user_role_assign
from .services import tenant_activate, tenant_create, tenant_deactivate, validate_domain, validate_slug
from .tenant_settings import (
    SECRET_FIELDS,
    TENANT_SETTINGS_FIELDS,
    from_email_problem,
    tenant_onboarding_dismiss,
    tenant_settings_saved,
    tenant_settings_update,
    tenant_webshop_secret_rotate,
)


def on_public_host(request):
    tenant = getattr(request, "tenant", None)
    return tenant is None or tenant.schema_name == "public"


class PublicOnlyMixin:
    """Tenants and domains are the operators' business: invisible on tenant hosts."""

    def has_module_permission(self, request):
        return on_public_host(request) and super().has_module_permission(request)

    def has_view_permission(self, request, obj=None):
        return on_public_host(request) and super().has_view_permission(request, obj)

    def has_add_permission(self, request, *args):
        return on_public_host(request) and super().has_add_permission(request, *args)

    def has_change_permission(self, request, obj=None):
        return on_public_host(request) and super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None):
        return False  # tenants are deactivated, never deleted from the admin


class DomainInline(TabularInline):
    model = Domain
    extra = 0
    fields = ["domain", "is_primary"]


class TenantCreationForm(forms.ModelForm):
    slug = forms.CharField(max_length=40, help_text="lower-case letters, digits and '-'; the schema name")
    domain = forms.CharField(max_length=253, help_text="host name, e.g. acme.example.com")
    admin_email = forms.EmailField(required=False)
    admin_password = forms.CharField(required=False, widget=forms.PasswordInput, min_length=8)

    class Meta:
        model = Tenant
        fields = ["name"]

    def clean(self):
        cleaned = super().clean()
        for field, check in (("slug", validate_slug), ("domain", validate_domain)):
            if cleaned.get(field):
                try:
                    check(cleaned[field])
                except ValidationError as exc:
                    self.add_error(field, exc.message_dict.get(field, exc.messages))
        if cleaned.get("admin_email") and not cleaned.get("admin_password"):
            self.add_error("admin_password", "Set a password for the first admin.")
        return cleaned


BRAND_DEFAULTED = ("brand_primary_colour", "brand_text_colour", "brand_background_colour", "brand_font")


class TimeZoneFormMixin(forms.Form):
    """The tenant's clock as a list of IANA names; a form posted without it keeps the stored one."""

    time_zone = forms.ChoiceField(
        label="Time zone",
        choices=[(name, name.replace("_", " ")) for name in sorted(available_time_zones())],
        required=False,
        widget=UnfoldAdminSelectWidget,
        help_text="Dates in the admin, schedules, send windows and flows keep this clock.",
    )

    def clean_time_zone(self):
        return self.cleaned_data["time_zone"] or self.instance.time_zone


class CurrencyFormMixin(forms.Form):
    """The tenant's currency as a list of ISO 4217 codes; a form posted without it keeps the stored one."""

    currency = forms.ChoiceField(
        label="Currency",
        choices=[(code, code) for code in sorted(CURRENCIES)],
        required=False,
        widget=UnfoldAdminSelectWidget,
        help_text="Lifetime values, orders and revenue in the admin are shown in it (ISO 4217), with "
        "thousands separators.",
    )

    def clean_currency(self):
        return self.cleaned_data["currency"] or self.instance.currency


class AttributionWindowsFormMixin:
    """The revenue attribution windows; a form posted without them keeps the stored ones."""

    WINDOW_FIELDS = ("attribution_click_days", "attribution_open_days")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for name in self.WINDOW_FIELDS:
            if name in self.fields:
                self.fields[name].required = False

    def clean_attribution_click_days(self):
        value = self.cleaned_data.get("attribution_click_days")
        return self.instance.attribution_click_days if value is None else value

    def clean_attribution_open_days(self):
        value = self.cleaned_data.get("attribution_open_days")
        return self.instance.attribution_open_days if value is None else value


class TenantSettingsForm(TimeZoneFormMixin, CurrencyFormMixin, AttributionWindowsFormMixin, forms.ModelForm):
    """The tenant's own sending, tracking, AI and sign-in settings, edited by its admins on its host."""

    def clean(self):
        data = super().clean()
        for name in BRAND_DEFAULTED:
            if name in self.fields and not data.get(name) and name not in self.errors:
                data[name] = getattr(self.instance, name)
        return data

    sso_oidc_issuer = forms.URLField(
        label="Issuer URL",
        required=False,
        max_length=500,
        assume_scheme="https",
        widget=UnfoldAdminTextInputWidget,
        help_text="The provider's issuer; its /.well-known/openid-configuration must answer.",
    )

    brand_logo_url = forms.URLField(
        label="Logo URL",
        required=False,
        max_length=2000,
        assume_scheme="https",
        widget=UnfoldAdminTextInputWidget,
        help_text="An https URL of your logo (PNG or JPEG, about 320 px wide); the header block of the "
        "email editor shows it.",
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for name in BRAND_DEFAULTED:  # absent or empty: unchanged (a form of an older page)
            self.fields[name].required = False
        for name in SECRET_FIELDS:  # write-only: say whether one is stored, never show it
            self.initial[name] = ""
            stored = bool(getattr(self.instance, name, ""))
            self.fields[name].help_text = (
                "Stored (encrypted). Leave empty to keep it, or type a new one."
                if stored
                else "Stored encrypted; never shown again."
            )

    class Meta:
        model = Tenant
        fields = list(TENANT_SETTINGS_FIELDS)
        labels = {
            "from_name": "Sender name",
            "from_email": "Sender address",
            "reply_to": "Reply-To address",
            "postal_address": "Postal address (email footer)",
            "send_rate_per_second": "Send rate limit (messages per second)",
            "track_opens": "Track opens (open pixel)",
            "track_clicks": "Track clicks (link rewriting)",
            "machine_open_window_seconds": "Machine-open window (seconds after delivery)",
            "brand_logo_url": "Logo URL",
            "brand_primary_colour": "Brand colour (buttons, links)",
            "brand_text_colour": "Text colour",
            "brand_background_colour": "Background colour",
            "brand_font": "Font",
            "attribution_click_days": "Attribution window for clicks (days)",
            "attribution_open_days": "Attribution window for opens (days)",
            "ai_provider_enabled": "Use the AI provider",
            "sso_google_enabled": "Sign in with Google",
            "sso_google_client_id": "Google OAuth client id",
            "sso_google_client_secret": "Google OAuth client secret",
            "sso_oidc_enabled": "Sign in with OpenID Connect",
            "sso_oidc_name": "Button label",
            "sso_oidc_issuer": "Issuer URL",
            "sso_oidc_client_id": "Client id",
            "sso_oidc_client_secret": "Client secret",
            "sso_signup_enabled": "Let new people sign up as Marketers",
            "sso_signup_domains": "Email domains allowed to sign up",
            "sso_required": "Require SSO",
            "sso_break_glass": "Break-glass admins",
        }
        help_texts = {
            "from_name": "Shown as the sender of campaigns that do not set their own.",
            "from_email": "Empty means the platform's default sender address.",
            "reply_to": "Where replies go; empty means the sender address.",
            "postal_address": "Required by anti-spam laws in most countries; shown in every marketing email.",
            "send_rate_per_second": "Campaigns never send faster than this (1 to 10000).",
            "track_opens": "Off: no campaign of this account carries an open pixel, whatever it says itself.",
            "track_clicks": "Off: no campaign of this account rewrites its links, whatever it says itself.",
            "machine_open_window_seconds": "Opens this soon after delivery count as machine opens (prefetchers).",
            "brand_logo_url": "An https URL of your logo (PNG or JPEG, about 320 px wide); the header block "
            "of the email editor shows it.",
            "brand_primary_colour": "Written #rrggbb. The defaults of the email editor's blocks; each block "
            "can set its own.",
            "brand_font": "Fonts every mail client has.",
            "attribution_click_days": "An order goes to the customer's last email click this many days before "
            "it (0 to 90; 0: clicks never count).",
            "attribution_open_days": "Without such a click, to the last human open this many days before it "
            "(0 to 90; 0: opens never count).",
            "ai_provider_enabled": "Off: segment sentences, summaries and subject ideas are always answered "
            "by the service itself; nothing is sent to the platform's AI provider.",
            "sso_google_client_id": "From Google Cloud: an OAuth client of type web application, with the "
            "redirect URI shown below.",
            "sso_oidc_name": "What the sign-in button says, e.g. “Sign in with Okta”.",
            "sso_oidc_issuer": "The provider's issuer; its /.well-known/openid-configuration must answer.",
            "sso_signup_domains": "One per line. A verified email of these domains without a user here gets "
            "a new Marketer user; any other unknown email is refused.",
            "sso_required": "Password sign-in to the admin is refused for everyone but the break-glass "
            "admins. API tokens keep working.",
            "sso_break_glass": "Emails of admins who may still sign in with a password, one per line.",
        }
        widgets = {
            "from_name": UnfoldAdminTextInputWidget,
            "from_email": UnfoldAdminEmailInputWidget,
            "reply_to": UnfoldAdminEmailInputWidget,
            "postal_address": UnfoldAdminTextareaWidget(attrs={"rows": 3}),
            "send_rate_per_second": UnfoldAdminIntegerFieldWidget,
            "track_opens": UnfoldBooleanSwitchWidget,
            "track_clicks": UnfoldBooleanSwitchWidget,
            "machine_open_window_seconds": UnfoldAdminIntegerFieldWidget,
            "brand_logo_url": UnfoldAdminTextInputWidget,
            "brand_primary_colour": UnfoldAdminTextInputWidget,
            "brand_text_colour": UnfoldAdminTextInputWidget,
            "brand_background_colour": UnfoldAdminTextInputWidget,
            "brand_font": UnfoldAdminSelectWidget,
            "attribution_click_days": UnfoldAdminIntegerFieldWidget,
            "attribution_open_days": UnfoldAdminIntegerFieldWidget,
            "ai_provider_enabled": UnfoldBooleanSwitchWidget,
            "sso_google_enabled": UnfoldBooleanSwitchWidget,
            "sso_google_client_id": UnfoldAdminTextInputWidget,
            "sso_google_client_secret": UnfoldAdminPasswordWidget(render_value=False),
            "sso_oidc_enabled": UnfoldBooleanSwitchWidget,
            "sso_oidc_name": UnfoldAdminTextInputWidget,
            "sso_oidc_issuer": UnfoldAdminTextInputWidget,
            "sso_oidc_client_id": UnfoldAdminTextInputWidget,
            "sso_oidc_client_secret": UnfoldAdminPasswordWidget(render_value=False),
            "sso_signup_enabled": UnfoldBooleanSwitchWidget,
            "sso_signup_domains": UnfoldAdminTextareaWidget(attrs={"rows": 2}),
            "sso_required": UnfoldBooleanSwitchWidget,
            "sso_break_glass": UnfoldAdminTextareaWidget(attrs={"rows": 2}),
        }


def _redirect_uris(request):
    """The redirect URIs to register with the identity providers (signin/urls.py)."""
    base = request.build_absolute_uri("/").rstrip("/")
    return {
        "google": f"{base}/accounts/oidc/google/login/callback/",
        "oidc": f"{base}/accounts/oidc/oidc/login/callback/",
    }


def _settings_tenant(request):
    """The tenant whose settings the request may see and change (its own), else 404/403."""
    if on_public_host(request):
        raise Http404("Tenant settings exist on a tenant's host.")
    if not request.user.has_perm(TENANT_SETTINGS_PERMISSION):
        raise PermissionDenied
    return request.tenant


def tenant_settings_view(request):
    """GET shows, POST saves the current tenant's settings. Tenant hosts only; admins only."""
    tenant = _settings_tenant(request)
    # Fresh rows: the form's instance is changed by validation, the service's is not.
    tenant = Tenant.objects.get(pk=tenant.pk)
    data = request.POST if request.method == "POST" else None
    form = TenantSettingsForm(data, instance=Tenant.objects.get(pk=tenant.pk))
    status = 200
    if request.method == "POST":
        if form.is_valid():
            try:
                changed = tenant_settings_update(
                    tenant=tenant, changes={name: form.cleaned_data[name] for name in TENANT_SETTINGS_FIELDS}
                )
            except ValidationError as exc:
                for field, errors in exc.message_dict.items():
                    form.add_error(field if field in form.fields else None, errors)
            else:
                tenant_settings_saved(tenant=tenant)
                if changed:
                    messages.success(
                        request, "Settings saved: " + ", ".join(form[n].label for n in changed) + "."
                    )
                else:
                    messages.info(request, "Nothing changed.")
                return HttpResponseRedirect(reverse("admin:tenant_settings"))
        messages.error(request, "The settings were not saved: correct the fields marked below.")
        status = 400
    context = {
        **admin.site.each_context(request),
        "title": "Settings",
        "subtitle": tenant.name,
        "form": form,
        "tenant": tenant,
        "domains": list(tenant.domains.order_by("-is_primary", "domain")),
        # A sender saved before sender domains existed, or whose domain failed its last check.
        "sender_problem": from_email_problem(tenant=tenant, from_email=tenant.from_email),
        "redirect_uris": _redirect_uris(request),
    }
    return TemplateResponse(request, "admin/tenancy/tenant_settings.html", context, status=status)


@require_POST
def tenant_webshop_secret_rotate_view(request):
    """POST: a new webshop signing secret for the current tenant; the old one stops working at once."""
    tenant = _settings_tenant(request)
    tenant_webshop_secret_rotate(tenant=Tenant.objects.get(pk=tenant.pk))
    messages.success(
        request,
        "New webshop secret: messages signed with the old one now go to the dead-letter queue. "
        "Give the new one to the webshop.",
    )
    return HttpResponseRedirect(reverse("admin:tenant_settings"))


@require_POST
def tenant_onboarding_dismiss_view(request):
    """POST: hide the dashboard's "Getting started" checklist for the account (any of its staff)."""
    if on_public_host(request):
        raise Http404("The checklist exists on a tenant's host.")
    tenant_onboarding_dismiss(tenant=request.tenant)
    messages.info(request, "Getting started is hidden. Sender domains and Settings stay in the menu.")
    return HttpResponseRedirect(reverse("admin:index"))


class TenantChangeForm(TimeZoneFormMixin, CurrencyFormMixin, AttributionWindowsFormMixin, forms.ModelForm):
    """The operators' edit of a tenant: its sender address obeys the same rule as the tenant's own page."""

    class Meta:
        model = Tenant
        # The brand (email design defaults) is the tenant's own business, on its settings page.
        fields = ["name", *(name for name in TENANT_SETTINGS_FIELDS if not name.startswith("brand_"))]

    def clean_from_email(self):
        value = (self.cleaned_data.get("from_email") or "").strip().lower()
        if value and value != self.instance.from_email:
            problem = from_email_problem(tenant=self.instance, from_email=value)
            if problem:
                raise ValidationError(problem)
        return value


@admin.register(Tenant)
class TenantAdmin(PublicOnlyMixin, ModelAdmin):
    form = TenantChangeForm
    list_display = ["schema_name", "name", "primary_domain", "is_active", "created_at"]
    list_filter = ["is_active"]
    search_fields = ["schema_name", "name", "domains__domain"]
    actions = ["deactivate", "activate"]
    inlines = [DomainInline]
    readonly_fields = ["schema_name", "created_at", "deactivated_at", "is_active"]
    fieldsets = [
        (None, {"fields": ["name", "schema_name", "is_active", "created_at", "deactivated_at"]}),
        (
            "Sending",
            {
                "fields": [
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
                ]
            },
        ),
    ]

    def get_urls(self):
        # The tenant's own settings page lives here, so it is served by the same admin on tenant hosts.
        own = [
            path("settings/", self.admin_site.admin_view(tenant_settings_view), name="tenant_settings"),
            path(
                "onboarding/dismiss/",
                self.admin_site.admin_view(tenant_onboarding_dismiss_view),
                name="tenant_onboarding_dismiss",
            ),
            path(
                "settings/webshop-secret/rotate/",
                self.admin_site.admin_view(tenant_webshop_secret_rotate_view),
                name="tenant_webshop_secret_rotate",
            ),
        ]
        return [*own, *super().get_urls()]

    def get_queryset(self, request):
        return super().get_queryset(request).filter(is_template=False).prefetch_related("domains")

    @admin.display(description="Primary domain")
    def primary_domain(self, obj):
        domain = next((d for d in obj.domains.all() if d.is_primary), None)
        return domain.domain if domain else "—"

    def get_form(self, request, obj=None, **kwargs):
        if obj is None:
            kwargs["form"] = TenantCreationForm
            kwargs["fields"] = ["name", "slug", "domain", "admin_email", "admin_password"]
        return super().get_form(request, obj, **kwargs)

    def get_fieldsets(self, request, obj=None):
        if obj is None:
            return [(None, {"fields": ["name", "slug", "domain", "admin_email", "admin_password"]})]
        return super().get_fieldsets(request, obj)

    def get_readonly_fields(self, request, obj=None):
        return [] if obj is None else self.readonly_fields

    def get_inlines(self, request, obj):
        return [] if obj is None else self.inlines

    def save_model(self, request, obj, form, change):
        if change:
            return super().save_model(request, obj, form, change)
        data = form.cleaned_data
        try:
            created = tenant_create(
                slug=data["slug"],
                domain=data["domain"],
                name=data.get("name") or None,
                admin_email=data.get("admin_email") or None,
                admin_password=data.get("admin_password") or None,
            )
        except ValidationError as exc:  # a race with another operator since the form validated
            messages.error(request, "; ".join(exc.messages))
            return
        obj.pk = created.tenant.pk
        obj.refresh_from_db()
        connection.set_schema_to_public()
        messages.success(request, f"Tenant created in {created.seconds:.2f} s.")

    @admin.action(description="Deactivate selected tenants (their data is kept)")
    def deactivate(self, request, queryset):
        for tenant in queryset:
            try:
                tenant_deactivate(tenant=tenant)
            except ValidationError as exc:
                messages.error(request, "; ".join(exc.messages))
        messages.success(request, "Deactivated.")

    @admin.action(description="Activate selected tenants")
    def activate(self, request, queryset):
        for tenant in queryset.filter(is_template=False).exclude(schema_name="public"):
            tenant_activate(tenant=tenant)
        messages.success(request, "Activated.")


@admin.register(Domain)
class DomainAdmin(PublicOnlyMixin, ModelAdmin):
    list_display = ["domain", "tenant", "is_primary"]
    search_fields = ["domain", "tenant__schema_name"]


# Users and roles, styled like the rest of the admin (per tenant on tenant hosts, operators on public).
admin.site.unregister(User)
admin.site.unregister(Group)


class TenantUserCreationForm(UserCreationForm):
    """A tenant's new user: the email is the username (as for the first admin), and a role."""

    role = forms.ChoiceField(choices=ROLE_CHOICES, initial=MARKETER, widget=UnfoldAdminSelectWidget)

    class Meta(UserCreationForm.Meta):
        fields = ("username",)
        labels = {"username": "Email (the user's login)"}

    def clean_username(self):
        username = (self.cleaned_data.get("username") or "").strip().lower()
        try:
            validate_email(username)
        except ValidationError:
            raise ValidationError("Use the user's email address as the login.")
        if User.objects.filter(username__iexact=username).exists():
            raise ValidationError("A user with this email already exists.")
        return username

    def save(self, commit=True):
        user = super().save(commit=False)
        user.email = user.username
        user.is_staff = True
        if commit:
            user.save()
        return user


@admin.register(User)
class UserAdmin(BaseUserAdmin, ModelAdmin):
    form = UserChangeForm
    add_form = UserCreationForm
    change_password_form = AdminPasswordChangeForm
    tenant_add_fieldsets = ((None, {"fields": ("username", "role", "password1", "password2")}),)

    def get_fieldsets(self, request, obj=None):
        if obj is None and not on_public_host(request):
            return self.tenant_add_fieldsets
        return super().get_fieldsets(request, obj)

    def get_form(self, request, obj=None, **kwargs):
        if obj is None and not on_public_host(request):
            kwargs["form"] = TenantUserCreationForm
        return super().get_form(request, obj, **kwargs)

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        if not change and "role" in form.cleaned_data:
            user_role_assign(user=obj, role=form.cleaned_data["role"])

    list_display = ["username", "email", "first_name", "last_name", "role", "is_active", "last_login"]
    list_filter = ["is_active", "is_superuser", "groups"]

    @admin.display(description="Role")
    def role(self, obj):
        return user_role(obj) or "—"

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("groups")

    def get_readonly_fields(self, request, obj=None):
        # Only a superuser can hand out superuser status or edit another superuser's powers.
        readonly = list(super().get_readonly_fields(request, obj))
        if not request.user.is_superuser:
            readonly += ["is_superuser", "user_permissions"]
        return readonly


@admin.register(Group)
class GroupAdmin(BaseGroupAdmin, ModelAdmin):
    """Admin and Marketer are built in (kept in step with the code after every migrate): they can be
    read and assigned, not edited or deleted. Other groups are the tenant's own."""

    def _built_in(self, request, obj):
        return obj is not None and obj.name in (ADMIN, MARKETER) and not on_public_host(request)

    def has_change_permission(self, request, obj=None):
        return not self._built_in(request, obj) and super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None):
        return not self._built_in(request, obj) and super().has_delete_permission(request, obj)
