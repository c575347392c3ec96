from django.apps import AppConfig


class TenancyConfig(AppConfig):
    name = "tenancy"
    verbose_name = "Tenants"

    def ready(self):
        from django.db.models.signals import post_migrate

        from .roles import roles_sync_after_migrate

        # Roles follow the permissions of each migrated tenant schema (new models reach old tenants).
        post_migrate.connect(roles_sync_after_migrate, dispatch_uid="tenancy.roles_sync")
