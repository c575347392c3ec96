"""Root URLs of a tenant's host for the links in our emails and the ESPs' delivery webhooks."""

from django.urls import include, path

from . import views

urlpatterns = [
    path("t/o/<str:token>", views.open_pixel, name="tracking-open"),
    path("t/c/<str:token>", views.click_redirect, name="tracking-click"),
    path("u/<str:token>", views.unsubscribe, name="tracking-unsubscribe"),
    path("p/<str:token>", views.preferences, name="tracking-preferences"),
    path("v/<str:token>", views.web_version, name="tracking-web-version"),
    # anymail's tracking webhooks: /webhooks/anymail/<esp>/tracking/ (basic auth: ANYMAIL_WEBHOOK_SECRET).
    path("webhooks/anymail/", include("anymail.urls")),
]
