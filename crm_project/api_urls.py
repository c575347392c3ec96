from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from core.api import TokenRevokeView, TokenView

urlpatterns = [
    path("auth/token", TokenView.as_view(), name="api-token"),
    path("auth/token/current", TokenRevokeView.as_view(), name="api-token-revoke"),
    path("schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    path("", include("customers.urls")),
    path("", include("segments.urls")),
    path("", include("campaigns.urls")),
    path("", include("flows.urls")),
    path("", include("tracking.api_urls")),
    path("", include("assist.urls")),
]
