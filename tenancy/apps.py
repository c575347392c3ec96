from django.apps import AppConfig
from django.db.models.signals import post_migrate


class TenancyConfig(AppConfig):
    name = "tenancy"
    verbose_name = "Tenants"

    def ready(self):
        from .roles import roles_sync_after_migrate  # noqa: PLC0415  (imports models: only once apps are ready)

        # Roles follow the permissions of each migrated tenant schema (new models reach old tenants).
        post_migrate.connect(roles_sync_after_migrate, dispatch_uid="tenancy.roles_sync")
