"""The attribution windows on the tenant settings page: shown, saved, refused out of range (naming the
field, saving nothing), and kept when a post leaves them out."""

import pytest

from tenancy.models import Tenant
from tests.admin.conftest import host_client
from tests.admin.test_tenant_settings import URL, VALID
from tests.conftest import verified_sender_domain

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def teashop_verified(tenant):
    return verified_sender_domain("teashop.example")


def _windows(tenant):
    return Tenant.objects.values_list("attribution_click_days", "attribution_open_days").get(pk=tenant.pk)


def test_it_shows_and_saves_the_attribution_windows(admin_user, tenant):
    client = host_client(admin_user)
    page = client.get(URL).content.decode()
    assert 'name="attribution_click_days"' in page and 'name="attribution_open_days"' in page

    response = client.post(URL, {**VALID, "attribution_click_days": "7", "attribution_open_days": "0"})
    assert response.status_code == 302
    assert _windows(tenant) == (7, 0)

    assert client.post(URL, VALID).status_code == 302  # left out: kept
    assert _windows(tenant) == (7, 0)


@pytest.mark.parametrize("field, value", [("attribution_click_days", "91"), ("attribution_open_days", "-1")])
def test_it_refuses_a_window_out_of_range_and_saves_nothing(admin_user, tenant, field, value):
    client = host_client(admin_user)
    response = client.post(URL, {**VALID, "from_name": "Changed", field: value})
    assert response.status_code == 400
    assert field in response.context["form"].errors
    assert _windows(tenant) == (5, 1)
    assert Tenant.objects.get(pk=tenant.pk).from_name != "Changed"
