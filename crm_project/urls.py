"""URLs of a tenant's host: the marketers' admin, the API, tracking links, health."""

from django.contrib import admin
from django.urls import include, path

from .favicon import favicon
from .health import healthz

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/", include("crm_project.api_urls")),
    path("accounts/", include("signin.urls")),
    path("", include("tracking.urls")),
    path("healthz", healthz, name="healthz"),
    path("favicon.ico", favicon, name="favicon"),
]

handler500 = "crm_project.health.server_error"
