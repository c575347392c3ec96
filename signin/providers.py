"""The tenant's sign-in providers as allauth apps, and the buttons of the admin login page."""

import logging

from allauth.socialaccount.models import SocialApp
from django.conf import settings
from django.urls import reverse

from core.secrets import SecretUnreadable, decrypt
from tenancy.roles import ADMIN, user_role
from tenancy.tenant_settings import break_glass_emails, listed

logger = logging.getLogger(__name__)

GOOGLE = "google"
OIDC = "oidc"


def _tenant_ok(tenant):
    return tenant is not None and tenant.schema_name != "public" and not getattr(tenant, "is_template", False)


def tenant_apps(tenant):
    """allauth apps (unsaved) for the providers the tenant has turned on."""
    if not _tenant_ok(tenant):
        return []
    apps = []
    specs = [
        (tenant.sso_google_enabled, GOOGLE, "Google", settings.SSO_GOOGLE_ISSUER, tenant.sso_google_client_id,
         tenant.sso_google_client_secret),
        (tenant.sso_oidc_enabled, OIDC, tenant.sso_oidc_name or "Single sign-on", tenant.sso_oidc_issuer,
         tenant.sso_oidc_client_id, tenant.sso_oidc_client_secret),
    ]  # fmt: skip
    for enabled, provider_id, name, issuer, client_id, secret in specs:
        if not enabled or not issuer or not client_id:
            continue
        try:
            plain = decrypt(secret)
        except SecretUnreadable:
            logger.error(
                "sign-in: the %s client secret of tenant %s cannot be decrypted",
                provider_id,
                tenant.schema_name,
            )
            continue
        apps.append(
            SocialApp(
                provider="openid_connect",
                provider_id=provider_id,
                name=name,
                client_id=client_id,
                secret=plain,
                settings={"server_url": issuer, "oauth_pkce_enabled": True, "fetch_userinfo": True},
            )
        )
    return apps


def login_buttons(tenant):
    """[{"id", "label", "url"}] for the admin login page."""
    labels = {GOOGLE: "Sign in with Google"}
    return [
        {
            "id": app.provider_id,
            "label": labels.get(app.provider_id) or f"Sign in with {app.name}",
            "url": reverse("openid_connect_login", kwargs={"provider_id": app.provider_id}),
        }
        for app in tenant_apps(tenant)
    ]


def sso_required(tenant):
    return _tenant_ok(tenant) and tenant.sso_required


def is_break_glass(user, tenant):
    """May this user still sign in with a password while the tenant requires SSO? Only admins it lists."""
    return (
        user is not None
        and user.is_active
        and user.get_username().lower() in break_glass_emails(tenant)
        and user_role(user) == ADMIN
    )


def signup_allowed(tenant, email):
    """Sign-up with the Marketer role: turned on, and the email is of one of the tenant's domains."""
    domain = email.rsplit("@", 1)[-1].lower() if "@" in email else ""
    return bool(tenant.sso_signup_enabled and domain and domain in listed(tenant.sso_signup_domains))
