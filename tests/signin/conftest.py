"""Sign-in tests: a real OpenID Connect provider on loopback (tests/signin/oidc_provider.py) and
tenant A's sign-in settings pointing at it."""

from urllib.parse import urlsplit

import pytest
from django.test import Client

from tenancy.models import Tenant
from tenancy.tenant_settings import tenant_settings_update
from tests.signin.oidc_provider import OIDCProvider

HOST = "tenant-a.localhost"


@pytest.fixture(scope="session")
def oidc_provider():
    provider = OIDCProvider().start()
    provider.add_client("crm-client", "crm-secret")
    provider.add_client("google-client", "google-secret")
    yield provider
    provider.stop()


@pytest.fixture
def fast_hashing(settings):
    settings.PASSWORD_HASHERS = [
        "django.contrib.auth.hashers.MD5PasswordHasher",
        "django.contrib.auth.hashers.PBKDF2PasswordHasher",
    ]


@pytest.fixture
def sso_tenant(tenant, oidc_provider, settings, admin_user):
    """Tenant A with OpenID Connect (and Google, on the same test provider) turned on."""
    settings.SSO_GOOGLE_ISSUER = oidc_provider.issuer
    tenant_settings_update(
        tenant=tenant,
        changes={
            "sso_oidc_enabled": True,
            "sso_oidc_name": "Test IdP",
            "sso_oidc_issuer": oidc_provider.issuer,
            "sso_oidc_client_id": "crm-client",
            "sso_oidc_client_secret": "crm-secret",
            "sso_google_enabled": True,
            "sso_google_client_id": "google-client",
            "sso_google_client_secret": "google-secret",
        },
    )
    return Tenant.objects.get(pk=tenant.pk)


def sign_in(client, provider, email, *, provider_id="oidc"):
    """The whole authorization-code flow: our login URL, the provider's page, our callback."""
    started = client.post(f"/accounts/oidc/{provider_id}/login/", {"process": "login", "next": "/admin/"})
    assert started.status_code == 302, started.content[:500]
    assert started["Location"].startswith(provider.issuer + "/authorize?")
    back = urlsplit(provider.authorize(started["Location"], email))
    assert back.netloc == HOST
    return client.get(f"{back.path}?{back.query}")


@pytest.fixture
def browser_client():
    return Client(HTTP_HOST=HOST)
