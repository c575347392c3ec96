"""URLs of the public (bare) host: the platform operators' admin, health and ESP webhooks; nothing of any
tenant."""

from django.contrib import admin
from django.urls import include, path

from .favicon import favicon
from .health import healthz

urlpatterns = [
    path("admin/", admin.site.urls),
    path("healthz", healthz, name="healthz"),
    path("favicon.ico", favicon, name="favicon"),
    # An ESP account shared by every tenant posts its webhooks here; the handlers find the tenant
    # (tracking.webhooks: the sender's metadata for delivery events, the token for mailto unsubscribes).
    path("webhooks/anymail/", include("anymail.urls")),
]

handler500 = "crm_project.health.server_error"
