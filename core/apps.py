from django.apps import AppConfig
from django.contrib.auth import get_user_model
from django.db.backends.signals import connection_created
from django.db.models.signals import post_save

from . import checks  # noqa: F401  (registers the system checks)
from .db import on_connection_created


class CoreConfig(AppConfig):
    name = "core"
    verbose_name = "Core"

    def ready(self):
        from .tokens import tokens_of_deactivated_user_delete  # noqa: PLC0415  (imports models: only once apps are ready)

        connection_created.connect(on_connection_created, dispatch_uid="core-statement-timeout")
        post_save.connect(
            tokens_of_deactivated_user_delete, sender=get_user_model(), dispatch_uid="core-tokens"
        )
