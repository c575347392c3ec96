"""allauth's adapters: the tenant's providers, who may sign in, and what a sign-up becomes."""

import logging

from allauth.account.adapter import DefaultAccountAdapter
from allauth.core.exceptions import ImmediateHttpResponse
from allauth.socialaccount.adapter import DefaultSocialAccountAdapter
from django.contrib import messages
from django.contrib.auth import get_user_model
from django.db import connection
from django.db.models import Q
from django.shortcuts import redirect

from tenancy.roles import MARKETER, user_role_assign

from .providers import signup_allowed, tenant_apps

logger = logging.getLogger(__name__)

# Set in the session of a user signed in through a provider (signin.middleware reads it).
SSO_SESSION_KEY = "signin_sso"


def refuse(request, message, *, log):
    """Back to the admin login page with `message`; nobody is signed in."""
    logger.info("sign-in refused in %s: %s", connection.schema_name, log)
    messages.error(request, message)
    raise ImmediateHttpResponse(redirect("admin:login"))


class AccountAdapter(DefaultAccountAdapter):
    def is_open_for_signup(self, request):
        return False  # no local accounts are made here; sign-up through a provider is decided below

    def login(self, request, user):
        super().login(request, user)
        request.session[SSO_SESSION_KEY] = True

    def get_login_redirect_url(self, request):
        return "/admin/"


class SocialAccountAdapter(DefaultSocialAccountAdapter):
    def list_apps(self, request, provider=None, client_id=None):
        apps = tenant_apps(getattr(request, "tenant", None) or connection.tenant)
        if provider:
            apps = [app for app in apps if provider in (app.provider, app.provider_id)]
        if client_id:
            apps = [app for app in apps if app.client_id == client_id]
        return apps

    def pre_social_login(self, request, sociallogin):
        tenant = connection.tenant
        if sociallogin.is_existing:
            if not sociallogin.user.is_active:
                refuse(request, "This user is deactivated.", log=f"inactive user {sociallogin.user.pk}")
            return
        email = next(
            (address.email.strip().lower() for address in sociallogin.email_addresses if address.verified), ""
        )
        if not email:
            refuse(
                request,
                "Your identity provider did not confirm an email address, so you cannot be signed in.",
                log="no verified email",
            )
        user = (
            get_user_model()
            .objects.filter(Q(username__iexact=email) | Q(email__iexact=email), is_active=True)
            .order_by("id")
            .first()
        )
        if user is not None:
            sociallogin.connect(request, user)
            return
        if not signup_allowed(tenant, email):
            refuse(
                request,
                f"{email} is not a user of {tenant.name}. Ask one of its admins to add you.",
                log=f"unknown email {email}",
            )

    def is_open_for_signup(self, request, sociallogin):
        email = next((a.email for a in sociallogin.email_addresses if a.verified), "")
        return signup_allowed(connection.tenant, email)

    def is_auto_signup_allowed(self, request, sociallogin):
        return True

    def populate_user(self, request, sociallogin, data):
        user = super().populate_user(request, sociallogin, data)
        email = next((a.email for a in sociallogin.email_addresses if a.verified), "").strip().lower()
        user.username = email
        user.email = email
        return user

    def save_user(self, request, sociallogin, form=None):
        user = super().save_user(request, sociallogin, form)
        user_role_assign(user=user, role=MARKETER)
        logger.info("sign-in: %s signed up as a Marketer in %s", user.username, connection.schema_name)
        return user

    def on_authentication_error(self, request, provider, error=None, exception=None, extra_context=None):
        logger.warning(
            "sign-in with %s failed in %s: %s %s",
            getattr(provider, "id", provider),
            connection.schema_name,
            error,
            exception,
        )
        messages.error(
            request, "Signing in with the identity provider did not work. Try again, or use your password."
        )
        raise ImmediateHttpResponse(redirect("admin:login"))
