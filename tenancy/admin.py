"""The operators' admin on the public host: tenants and domains. Tenant users are managed per tenant."""

from django import forms
from django.contrib import admin, messages
from django.contrib.auth.admin import GroupAdmin as BaseGroupAdmin
from django.contrib.auth.admin import UserAdmin as BaseUserAdmin
from django.contrib.auth.models import Group, User
from django.core.exceptions import ValidationError
from django.db import connection
from unfold.admin import ModelAdmin, TabularInline
from unfold.forms import AdminPasswordChangeForm, UserChangeForm, UserCreationForm

from .models import Domain, Tenant
from .services import tenant_activate, tenant_create, tenant_deactivate, validate_domain, validate_slug


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


@admin.register(Tenant)
class TenantAdmin(PublicOnlyMixin, ModelAdmin):
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
                ]
            },
        ),
    ]

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


@admin.register(User)
class UserAdmin(BaseUserAdmin, ModelAdmin):
    form = UserChangeForm
    add_form = UserCreationForm
    change_password_form = AdminPasswordChangeForm
    list_display = ["username", "email", "first_name", "last_name", "is_staff", "is_superuser", "last_login"]


@admin.register(Group)
class GroupAdmin(BaseGroupAdmin, ModelAdmin):
    pass
