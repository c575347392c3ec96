from django.apps import AppConfig


class CrmProjectConfig(AppConfig):
    """The project itself as an app: only for its management commands (seed_demo, migrate_tenants)."""

    name = "crm_project"
    verbose_name = "CRM project"
