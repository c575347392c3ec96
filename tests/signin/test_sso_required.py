"""SSO required: password sign-in to the admin only for break-glass admins; API tokens unaffected."""

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.test import Client

from tenancy.roles import ADMIN
from tenancy.tenant_settings import tenant_settings_update
from tests.conftest import PASSWORD, make_api_client
from tests.signin.conftest import HOST, sign_in

pytestmark = pytest.mark.django_db

User = get_user_model()


@pytest.fixture
def required(sso_tenant, admin_user):
    tenant_settings_update(
        tenant=sso_tenant, changes={"sso_required": True, "sso_break_glass": admin_user.username}
    )
    return sso_tenant


def _password_login(username):
    client = Client(HTTP_HOST=HOST)
    response = client.post("/admin/login/?next=/admin/", {"username": username, "password": PASSWORD})
    return client, response


def test_it_refuses_password_sign_in_for_everyone_but_break_glass_admins(
    required, marketer, admin_user, fast_hashing
):
    _, refused = _password_login(marketer.username)
    assert refused.status_code == 200
    assert "This account signs in with single sign-on" in refused.content.decode()
    assert not refused.wsgi_request.user.is_authenticated

    _, allowed = _password_login(admin_user.username)
    assert allowed.status_code == 302
    assert allowed["Location"] == "/admin/"


def test_it_refuses_a_listed_user_who_is_no_longer_an_admin(sso_tenant, admin_user, fast_hashing):
    deputy = User.objects.create_user(
        "deputy@tenant-a.localhost", "deputy@tenant-a.localhost", PASSWORD, is_staff=True
    )
    deputy.groups.add(Group.objects.get(name=ADMIN))
    tenant_settings_update(
        tenant=sso_tenant,
        changes={"sso_required": True, "sso_break_glass": f"{admin_user.username}\n{deputy.username}"},
    )
    deputy.groups.remove(Group.objects.get(name=ADMIN))

    _, refused = _password_login(deputy.username)

    assert refused.status_code == 200
    assert not refused.wsgi_request.user.is_authenticated


def test_it_still_signs_in_through_the_provider(required, oidc_provider, marketer):
    oidc_provider.add_account("marketer@tenant-a.localhost", sub="required-1")
    client = Client(HTTP_HOST=HOST)

    sign_in(client, oidc_provider, "marketer@tenant-a.localhost")

    assert client.get("/admin/").status_code == 200


def test_it_ends_password_sessions_once_sso_is_required(sso_tenant, marketer, admin_user):
    client = Client(HTTP_HOST=HOST)
    client.force_login(marketer)
    assert client.get("/admin/").status_code == 200

    tenant_settings_update(
        tenant=sso_tenant, changes={"sso_required": True, "sso_break_glass": admin_user.username}
    )
    response = client.get("/admin/")

    assert response.status_code == 302
    assert response["Location"] == "/admin/login/"
    assert client.get("/admin/").status_code == 302


def test_it_leaves_api_tokens_working(required, tenant, marketer):
    api = make_api_client(tenant, marketer)

    assert api.get("/api/customers").status_code == 200
