"""System checks of core's settings (run by `manage.py check` and at every start)."""

from django.conf import settings
from django.core.checks import Error, register
from django.core.exceptions import ImproperlyConfigured

from .clients import trusted_proxies


@register()
def trusted_proxies_check(app_configs, **kwargs):
    try:
        trusted_proxies(settings.TRUSTED_PROXIES)
    except ImproperlyConfigured as error:
        return [
            Error(str(error), hint="e.g. TRUSTED_PROXIES=1 or TRUSTED_PROXIES=10.0.0.0/8", id="core.E001")
        ]
    return []
