"""The webshop secret on the tenant settings page: shown to the tenant's admins, rotated by them only."""

import pytest
from django.db import connection

from tenancy.models import Tenant
from tests.admin.conftest import PUBLIC_HOST, host_client

pytestmark = pytest.mark.django_db
URL = "/admin/tenancy/tenant/settings/"
ROTATE = "/admin/tenancy/tenant/settings/webshop-secret/rotate/"


def _secret(schema):
    return Tenant.objects.get(schema_name=schema).webshop_secret


def test_every_tenant_has_a_secret_of_its_own(tenant, other_tenant):
    secrets = list(Tenant.objects.serving().values_list("webshop_secret", flat=True))

    assert len(set(secrets)) == len(secrets)
    assert all(len(secret) >= 40 for secret in secrets)


def test_it_shows_the_own_secret_to_the_tenants_admin(admin_client_a, tenant, other_tenant):
    html = admin_client_a.get(URL).content.decode()

    assert f'<code id="webshop-secret" class="break-all">{_secret("tenant_a")}</code>' in html
    assert _secret("tenant_b") not in html


def test_it_rotates_the_own_secret_only(admin_client_a, tenant, other_tenant):
    before_a, before_b = _secret("tenant_a"), _secret("tenant_b")

    response = admin_client_a.post(ROTATE)

    assert response.status_code == 302 and response["Location"] == URL
    assert _secret("tenant_a") not in (before_a, "")
    assert _secret("tenant_b") == before_b
    assert _secret("tenant_a") in admin_client_a.get(URL).content.decode()


def test_it_refuses_a_marketer_and_changes_nothing(marketer_client, tenant):
    before = _secret("tenant_a")

    assert marketer_client.get(URL).status_code == 403
    assert marketer_client.post(ROTATE).status_code == 403
    assert _secret("tenant_a") == before


def test_it_refuses_a_rotation_by_get_or_without_csrf_token_and_changes_nothing(admin_user, tenant):
    before = _secret("tenant_a")

    assert host_client(admin_user).get(ROTATE).status_code == 405
    assert host_client(admin_user, enforce_csrf_checks=True).post(ROTATE).status_code == 403
    assert _secret("tenant_a") == before


def test_it_does_not_exist_on_the_public_host(django_user_model, tenant):
    connection.set_schema_to_public()
    operator = django_user_model.objects.create_superuser("op3", "op3@x.test", "pw-operator-3")
    public_before = _secret("public")

    assert host_client(operator, host=PUBLIC_HOST).post(ROTATE).status_code == 404
    assert _secret("public") == public_before


def test_the_settings_form_cannot_set_the_secret(admin_client_a, tenant):
    before = _secret("tenant_a")

    admin_client_a.post(URL, {"send_rate_per_second": "50", "webshop_secret": "chosen-by-an-attacker"})

    assert _secret("tenant_a") == before
