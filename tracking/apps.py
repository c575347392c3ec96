from django.apps import AppConfig

from customers import hooks


class TrackingConfig(AppConfig):
    name = "tracking"
    verbose_name = "Tracking"

    def ready(self):
        # Here, not at the top: these import models, which Django loads only after every app config.
        from tenancy.work import work_kind_register  # noqa: PLC0415  (imports models: only once apps are ready)

        from . import attribution, hits, rollup, webhooks  # noqa: F401, PLC0415  (imports models; webhooks connects anymail's signal)

        attribution.register()

        # Periodic work that beat hands only to the tenants that have some (tenancy/work.py).
        work_kind_register(rollup.ROLLUP_WORK, probe=rollup.hits_rollup_due)
        work_kind_register(hits.PRUNE_WORK, probe=hits.hits_prune_due, lease_seconds=3600)

        if hits.hits_erase not in hooks.customer_erased:
            hooks.customer_erased.append(hits.hits_erase)
