from django.apps import AppConfig


class TrackingConfig(AppConfig):
    name = "tracking"
    verbose_name = "Tracking"

    def ready(self):
        from customers import hooks

        from . import attribution, services, webhooks  # noqa: F401  (webhooks connects anymail's signal)

        attribution.register()

        if services.hits_erase not in hooks.customer_erased:
            hooks.customer_erased.append(services.hits_erase)
