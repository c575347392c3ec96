from django.apps import AppConfig


class TrackingConfig(AppConfig):
    name = "tracking"
    verbose_name = "Tracking"

    def ready(self):
        from . import webhooks  # noqa: F401  (connects anymail's tracking signal)
