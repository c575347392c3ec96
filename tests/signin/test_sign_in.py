"""Signing in with OpenID Connect and Google against a real provider on loopback (PRODUCT.md
"Signing in"): matching verified emails to the tenant's users, sign-up, refusals, tenant scoping."""

import pytest
from allauth.socialaccount.models import SocialAccount
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django_tenants.utils import schema_context

from tenancy.roles import ADMIN, MARKETER, user_role
from tenancy.tenant_settings import tenant_settings_update
from tests.conftest import PASSWORD
from tests.signin.conftest import sign_in

pytestmark = pytest.mark.django_db

User = get_user_model()


def _user_in_session(client):
    response = client.get("/admin/")
    return response.wsgi_request.user if response.status_code == 200 else None


def test_it_signs_in_an_existing_user_by_verified_email_with_their_role(
    sso_tenant, oidc_provider, marketer, browser_client
):
    oidc_provider.add_account("Marketer@Tenant-A.localhost", name="Mara Keter")

    response = sign_in(browser_client, oidc_provider, "Marketer@Tenant-A.localhost")

    assert response.status_code == 302
    assert response["Location"] == "/admin/"
    user = _user_in_session(browser_client)
    assert user is not None and user.pk == marketer.pk
    assert user_role(user) == MARKETER
    account = SocialAccount.objects.get(user=marketer)
    assert (account.provider, account.uid) == (
        "oidc",
        oidc_provider.account("Marketer@Tenant-A.localhost").sub,
    )


def test_it_signs_in_with_google(sso_tenant, oidc_provider, admin_user, browser_client):
    oidc_provider.add_account(admin_user.username, name="Ada Admin")

    response = sign_in(browser_client, oidc_provider, admin_user.username, provider_id="google")

    assert response.status_code == 302
    assert _user_in_session(browser_client).pk == admin_user.pk
    assert SocialAccount.objects.get(user=admin_user).provider == "google"


def test_it_refuses_a_user_of_another_tenant_and_signs_nobody_in(
    sso_tenant, other_tenant, oidc_provider, browser_client
):
    with schema_context(other_tenant.schema_name):
        stranger = User.objects.create_user(
            "bob@tenant-b.localhost", "bob@tenant-b.localhost", PASSWORD, is_staff=True
        )
        stranger.groups.add(Group.objects.get(name=ADMIN))
    oidc_provider.add_account("bob@tenant-b.localhost")
    users_before = User.objects.count()

    response = sign_in(browser_client, oidc_provider, "bob@tenant-b.localhost")

    assert response.status_code == 302
    assert response["Location"] == "/admin/login/"
    assert _user_in_session(browser_client) is None
    page = browser_client.get("/admin/login/").content.decode()
    assert "bob@tenant-b.localhost is not a user of Tenant A" in page
    assert User.objects.count() == users_before
    assert not SocialAccount.objects.exists()


def test_it_refuses_an_email_the_provider_did_not_verify(sso_tenant, oidc_provider, marketer, browser_client):
    oidc_provider.add_account("marketer@tenant-a.localhost", sub="unverified-1", verified=False)

    response = sign_in(browser_client, oidc_provider, "marketer@tenant-a.localhost")

    assert response["Location"] == "/admin/login/"
    assert _user_in_session(browser_client) is None
    assert not SocialAccount.objects.exists()


def test_it_refuses_a_deactivated_user(sso_tenant, oidc_provider, marketer, browser_client):
    marketer.is_active = False
    marketer.save()
    oidc_provider.add_account("marketer@tenant-a.localhost", sub="deactivated-1")

    response = sign_in(browser_client, oidc_provider, "marketer@tenant-a.localhost")

    assert response["Location"] == "/admin/login/"
    assert _user_in_session(browser_client) is None


def test_it_signs_up_a_marketer_only_for_the_tenants_own_domains(sso_tenant, oidc_provider, browser_client):
    tenant_settings_update(
        tenant=sso_tenant, changes={"sso_signup_enabled": True, "sso_signup_domains": "teashop.example"}
    )
    oidc_provider.add_account("new.person@teashop.example", name="New Person")
    oidc_provider.add_account("outsider@gmail.example", name="Out Sider")

    refused = sign_in(browser_client, oidc_provider, "outsider@gmail.example")
    assert refused["Location"] == "/admin/login/"
    assert not User.objects.filter(username="outsider@gmail.example").exists()

    welcomed = sign_in(browser_client, oidc_provider, "new.person@teashop.example")

    assert welcomed.status_code == 302
    user = User.objects.get(username="new.person@teashop.example")
    assert (user.email, user.is_staff, user_role(user), user.has_usable_password()) == (
        "new.person@teashop.example",
        True,
        MARKETER,
        False,
    )
    assert _user_in_session(browser_client).pk == user.pk


def test_it_offers_only_the_tenants_enabled_providers_on_the_login_page(sso_tenant, browser_client):
    page = browser_client.get("/admin/login/").content.decode()

    assert 'id="sso-google"' in page and "Sign in with Google" in page
    assert 'id="sso-oidc"' in page and "Sign in with Test IdP" in page
    tenant_settings_update(tenant=sso_tenant, changes={"sso_google_enabled": False})
    page = browser_client.get("/admin/login/").content.decode()
    assert 'id="sso-google"' not in page and 'id="sso-oidc"' in page


def test_it_has_no_sign_in_buttons_and_no_providers_when_the_tenant_has_none(tenant, browser_client):
    assert 'id="sso-buttons"' not in browser_client.get("/admin/login/").content.decode()
    assert browser_client.post("/accounts/oidc/oidc/login/", {"process": "login"}).status_code == 404


def test_it_keeps_the_social_accounts_in_the_tenants_schema(
    sso_tenant, other_tenant, oidc_provider, marketer, browser_client
):
    oidc_provider.add_account("marketer@tenant-a.localhost", sub="scoped-1")

    sign_in(browser_client, oidc_provider, "marketer@tenant-a.localhost")

    assert SocialAccount.objects.filter(uid="scoped-1").count() == 1
    with schema_context(other_tenant.schema_name):
        assert not SocialAccount.objects.filter(uid="scoped-1").exists()
