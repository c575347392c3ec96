from django.apps import AppConfig


class CrmProjectConfig(AppConfig):
    """The project itself as an app: its management commands (seed_demo, migrate_tenants) and the
    admin's list rendering (admin_lists)."""

    name = "crm_project"
    verbose_name = "CRM project"

    def ready(self):
        from . import admin_lists  # noqa: PLC0415  (imports unfold's template tags: only once apps are loaded)

        admin_lists.install()
