"""The two roles of a tenant's users: admins manage everything, marketers the CRM work.

- Admin: every permission of the CRM apps, users and roles (auth), API tokens, and the tenant's own
  settings page (TENANT_SETTINGS_PERMISSION).
- Marketer: every permission of the CRM apps (customers, segments, campaigns, tracking) and nothing
  else: no users, no roles, no tokens of others, no tenant settings.

Roles live in each tenant's schema (users are per tenant). `roles_ensure()` is idempotent; it runs when
a tenant is provisioned and after every migrate of a tenant schema, so permissions of models added
later reach the roles of existing tenants too.
"""

from django.apps import apps
from django.contrib.auth.management import create_permissions
from django.contrib.auth.models import Group, Permission
from django.db import connections
from django.db.models import Q

ADMIN = "Admin"
MARKETER = "Marketer"
MARKETER_APPS = ["customers", "segments", "campaigns", "flows", "tracking"]
ADMIN_APPS = MARKETER_APPS + ["auth", "authtoken"]
# The tenant's own settings page (sender, postal address, rate limit, tracking) on its host.
TENANT_SETTINGS_PERMISSION = "tenancy.change_tenant"
_TENANT_SETTINGS_CODENAMES = ("view_tenant", "change_tenant")


def roles_ensure():
    """Create or update the Admin and Marketer groups of the current schema; returns (admin, marketer)."""
    admin, _ = Group.objects.get_or_create(name=ADMIN)
    marketer, _ = Group.objects.get_or_create(name=MARKETER)
    marketer.permissions.set(Permission.objects.filter(content_type__app_label__in=MARKETER_APPS))
    admin.permissions.set(
        Permission.objects.filter(
            Q(content_type__app_label__in=ADMIN_APPS)
            | Q(content_type__app_label="tenancy", codename__in=_TENANT_SETTINGS_CODENAMES)
        )
    )
    return admin, marketer


ROLE_CHOICES = [
    (MARKETER, "Marketer: customers, segments, templates, campaigns, reports"),
    (ADMIN, "Admin: everything, plus users, roles and the tenant's settings"),
]


def user_role_assign(*, user, role):
    """Give `user` exactly one of the two roles (and admin access); other groups are kept."""
    if role not in (ADMIN, MARKETER):
        raise ValueError(f"unknown role {role!r}")
    admin, marketer = roles_ensure()
    user.groups.remove(admin, marketer)
    user.groups.add(admin if role == ADMIN else marketer)
    if not user.is_staff:
        user.is_staff = True
        user.save(update_fields=["is_staff"])
    return user


def user_role(user):
    """'Admin', 'Marketer' or '' for display: superusers count as admins."""
    if user.is_superuser:
        return ADMIN
    names = {group.name for group in user.groups.all()}
    if ADMIN in names:
        return ADMIN
    if MARKETER in names:
        return MARKETER
    return ""


def roles_sync_after_migrate(sender, using="default", **kwargs):
    """post_migrate receiver: keep the roles of a tenant schema in step with its permissions.

    It runs once per app for each migrated schema; only the last app's call does work. The public
    schema (operators) has no roles.
    """
    if sender is not list(apps.get_app_configs())[-1]:
        return
    connection = connections[using]
    if getattr(connection, "schema_name", "public") == "public":
        return

    # This receiver may run before auth's own for the last app: make its permissions exist first.
    create_permissions(sender, verbosity=0, using=using, apps=kwargs.get("apps", apps))
    roles_ensure()
