"""`/accounts/` of a tenant's host: the providers' login and callback URLs
(``/accounts/oidc/<google|oidc>/login/`` and ``.../login/callback/``) and the names allauth's flow
redirects to. No allauth page of its own is served: no local sign-up, no password pages."""

from django.urls import include, path

from . import views

urlpatterns = [
    path("", include("allauth.socialaccount.providers.openid_connect.urls")),
    path("login/", views.admin_login, name="account_login"),
    path("inactive/", views.refused, name="account_inactive"),
    path("signup/", views.refused, name="account_signup"),
    path("social/signup/", views.refused, name="socialaccount_signup"),
    path("social/cancelled/", views.cancelled, name="socialaccount_login_cancelled"),
]
