from django.db import connection

from tenancy.models import Tenant
from tenancy.services import tenant_activate, tenant_deactivate


def test_it_answers_410_on_a_deactivated_tenants_host_and_keeps_its_data(api, tenant):
    from customers.models import Customer

    Customer.objects.create(email="kept@example.com")
    connection.set_schema_to_public()
    tenant_deactivate(tenant=tenant)
    assert api.get("/api/customers").status_code == 410
    assert api.get("/healthz").status_code == 410
    tenant_activate(tenant=tenant)
    connection.set_tenant(tenant)
    assert Customer.objects.filter(email="kept@example.com").exists()


def test_it_lets_an_operator_deactivate_a_tenant_in_the_public_admin(client, db, tenant):
    from django.contrib.auth import get_user_model

    connection.set_schema_to_public()
    operator = get_user_model().objects.create_superuser("operator", "op@example.com", "operator-pass-1")
    client.force_login(operator)
    listing = client.get("/admin/tenancy/tenant/", HTTP_HOST="localhost")
    assert listing.status_code == 200
    assert b"tenant_a" in listing.content and b"tenant_template" not in listing.content
    response = client.post(
        "/admin/tenancy/tenant/",
        {"action": "deactivate", "_selected_action": [tenant.pk]},
        HTTP_HOST="localhost",
    )
    assert response.status_code == 302
    assert Tenant.objects.get(pk=tenant.pk).is_active is False


def test_it_lets_an_operator_create_a_tenant_in_the_public_admin(client, db):
    from django.contrib.auth import get_user_model

    connection.set_schema_to_public()
    operator = get_user_model().objects.create_superuser("operator", "op@example.com", "operator-pass-1")
    client.force_login(operator)
    response = client.post(
        "/admin/tenancy/tenant/add/",
        {
            "name": "Shop",
            "slug": "shop-one",
            "domain": "shop-one.localhost",
            "admin_email": "a@shop.example",
            "admin_password": "password-123",
        },
        HTTP_HOST="localhost",
    )
    assert response.status_code == 302, response.content[:2000]
    assert Tenant.objects.filter(schema_name="shop_one", domains__domain="shop-one.localhost").exists()
    bad = client.post(
        "/admin/tenancy/tenant/add/",
        {"name": "Shop", "slug": "Bad Slug", "domain": "shop-one.localhost"},
        HTTP_HOST="localhost",
    )
    assert bad.status_code == 200
    assert b"already in use" in bad.content and b"2-40 characters" in bad.content


def test_it_hides_tenant_management_on_tenant_hosts(client, admin_user, tenant):
    client.force_login(admin_user)
    assert client.get("/admin/tenancy/tenant/", HTTP_HOST="tenant-a.localhost").status_code in (403, 404, 302)
