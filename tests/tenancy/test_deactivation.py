import re

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.test import Client
from rest_framework.authtoken.models import Token

from customers.models import Customer
from tenancy.models import Tenant
from tenancy.services import tenant_activate, tenant_deactivate
from tests.conftest import PASSWORD
from tests.tracking.conftest import (
    HUMAN_AGENT,
    click_path,
    is_pixel,
    make_sent_campaign,
    open_path,
    preferences_path,
    unsubscribe_path,
)
from tracking.models import Hit


def test_it_answers_410_on_a_deactivated_tenants_host_and_keeps_its_data(api, tenant):
    Customer.objects.create(email="kept@example.com")
    connection.set_schema_to_public()
    tenant_deactivate(tenant=tenant)
    assert api.get("/api/customers").status_code == 410
    assert api.get("/healthz").status_code == 410
    tenant_activate(tenant=tenant)
    connection.set_tenant(tenant)
    assert Customer.objects.filter(email="kept@example.com").exists()


def test_it_lets_an_operator_deactivate_a_tenant_in_the_public_admin(client, db, tenant):
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


class _HomeClient(Client):
    """A client on tenant A's host that puts the test's connection back on tenant A after each request
    (the tenant middleware leaves it on public when it refuses the host)."""

    def __init__(self, *, home, **defaults):
        super().__init__(HTTP_HOST=home.get_primary_domain().domain, HTTP_USER_AGENT=HUMAN_AGENT, **defaults)
        self.home = home

    def request(self, **request):
        try:
            return super().request(**request)
        finally:
            connection.set_tenant(self.home)


@pytest.fixture
def deactivated(tenant):
    """Tenant A after an operator deactivated it, with a campaign it sent before."""
    sent = make_sent_campaign()
    connection.set_schema_to_public()
    tenant_deactivate(tenant=tenant)
    connection.set_tenant(tenant)
    return sent


def _subscribed(recipient):
    customer = Customer.objects.get(pk=recipient.customer_id)
    return customer.email_marketing and customer.unsubscribed_at is None


def test_it_lets_recipients_of_a_deactivated_tenant_unsubscribe_through_their_link(tenant, deactivated):
    web = _HomeClient(home=tenant)
    recipient = deactivated.recipients[0]

    page = web.get(unsubscribe_path(recipient))
    assert page.status_code == 200 and '<form method="post"' in page.content.decode()
    assert _subscribed(recipient)  # a GET changes nothing

    done = web.post(unsubscribe_path(recipient), {"action": "unsubscribe"})
    assert done.status_code == 200 and "You are unsubscribed" in done.content.decode()
    assert not _subscribed(recipient)


def test_it_accepts_a_one_click_unsubscribe_for_a_deactivated_tenant(tenant, deactivated):
    client = _HomeClient(home=tenant, enforce_csrf_checks=True)
    recipient = deactivated.recipients[1]

    response = client.post(
        unsubscribe_path(recipient),
        data="List-Unsubscribe=One-Click",
        content_type="application/x-www-form-urlencoded",
    )

    assert (response.status_code, response.content) == (200, b"Unsubscribed.\n")
    assert not _subscribed(recipient)


def test_it_keeps_the_preference_centre_of_a_deactivated_tenant_working(tenant, deactivated):
    client = _HomeClient(home=tenant, enforce_csrf_checks=True)
    customer = Customer.objects.get(pk=deactivated.recipients[2].customer_id)

    page = client.get(preferences_path(customer))
    assert page.status_code == 200
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.content.decode()).group(1)
    saved = client.post(preferences_path(customer), {"csrfmiddlewaretoken": token})

    assert saved.status_code == 200 and b"Your preferences are saved." in saved.content
    customer.refresh_from_db()
    assert (customer.email_marketing, customer.email_transactional) == (False, False)


def test_it_answers_410_for_everything_else_of_a_deactivated_tenant(tenant, deactivated, admin_user):
    web = _HomeClient(home=tenant)
    web.force_login(admin_user)
    recipient, link = deactivated.recipients[0], deactivated.links[0]
    token = Token.objects.create(user=admin_user)

    gone = [
        web.get("/api/customers", HTTP_AUTHORIZATION=f"Token {token.key}"),
        web.post("/api/auth/token", {"username": admin_user.username, "password": PASSWORD}),
        web.get("/admin/"),
        web.get("/admin/login/"),
        web.get(click_path(recipient, link)),
        web.get("/healthz"),
        web.post("/webhooks/anymail/postmark/tracking/", {}),
        web.get("/u"),
        web.get("/uploads/u/x"),
        web.get("/p"),
    ]

    assert [response.status_code for response in gone] == [410] * len(gone)
    assert all(response.content == b"This account is not active." for response in gone)
    # The open pixel still gets its image, and nothing is recorded.
    assert is_pixel(web.get(open_path(recipient)))
    assert not Hit.objects.filter(recipient=recipient).exists()
