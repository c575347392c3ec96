"""The two roles of a tenant's users: admins manage everything, marketers the CRM work."""

from django.contrib.auth.models import Group, Permission

ADMIN = "Admin"
MARKETER = "Marketer"
MARKETER_APPS = ["customers", "segments", "campaigns", "tracking"]


def roles_ensure():
    admin, _ = Group.objects.get_or_create(name=ADMIN)
    marketer, _ = Group.objects.get_or_create(name=MARKETER)
    crm_perms = Permission.objects.filter(content_type__app_label__in=MARKETER_APPS)
    marketer.permissions.set(crm_perms)
    admin.permissions.set(
        Permission.objects.filter(content_type__app_label__in=MARKETER_APPS + ["auth", "authtoken"])
    )
    return admin, marketer
