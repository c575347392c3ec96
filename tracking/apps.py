from django.apps import AppConfig


class TrackingConfig(AppConfig):
    name = "tracking"
    verbose_name = "Tracking"

    def ready(self):
        from customers import hooks
        from tenancy.work import work_kind_register

        from . import attribution, services, webhooks  # noqa: F401  (webhooks connects anymail's signal)

        attribution.register()

        # Periodic work that beat hands only to the tenants that have some (tenancy/work.py).
        work_kind_register(services.ROLLUP_WORK, probe=services.hits_rollup_due)
        work_kind_register(services.PRUNE_WORK, probe=services.hits_prune_due, lease_seconds=3600)

        if services.hits_erase not in hooks.customer_erased:
            hooks.customer_erased.append(services.hits_erase)
