"""URLs of the public (bare) host: the platform operators' admin and health; nothing of any tenant."""

from django.contrib import admin
from django.urls import path

from .health import healthz

urlpatterns = [
    path("admin/", admin.site.urls),
    path("healthz", healthz, name="healthz"),
]

handler500 = "crm_project.health.server_error"
