"""The tenant's currency: a setting beside the time zone (ISO 4217, default from the operator), and the
admin showing money in it with thousands separators: the customer list and profile, the dashboard's
revenue, a campaign's stats. Orders keep their own currency (the API's contract)."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.test import override_settings
from django.urls import reverse
from django.utils import timezone
from django_tenants.utils import schema_context

from campaigns.models import Campaign
from customers.models import Customer, Order, OrderAttribution
from tenancy.models import Tenant, default_currency
from tenancy.tenant_settings import tenant_settings_update
from tests.admin.conftest import HOST_B, host_client
from tests.conftest import verified_sender_domain

pytestmark = pytest.mark.django_db
SETTINGS_URL = "/admin/tenancy/tenant/settings/"
VALID = {
    "from_name": "Teashop News",
    "from_email": "news@teashop.example",
    "send_rate_per_second": "25",
    "machine_open_window_seconds": "15",
}


@pytest.fixture
def euro(tenant):
    Tenant.objects.filter(pk=tenant.pk).update(currency="EUR")
    tenant.refresh_from_db()
    return tenant


def _attributed_order(campaign, total, *, currency="EUR"):
    customer = Customer.objects.create(email=f"buyer-{campaign.pk}-{total}@x.test")
    placed = timezone.now() - timedelta(days=1)
    order = Order.objects.create(
        external_id=f"o-{campaign.pk}-{total}",
        customer=customer,
        total=Decimal(total),
        currency=currency,
        placed_at=placed,
    )
    OrderAttribution.objects.create(
        order=order,
        customer=customer,
        campaign_id=campaign.pk,
        touch="click",
        touched_at=placed - timedelta(hours=1),
        placed_at=placed,
        total=Decimal(total),
        counts=True,
    )
    return order


def test_it_starts_a_tenant_in_the_operators_currency():
    with override_settings(TENANT_DEFAULT_CURRENCY="eur"):
        assert default_currency() == "EUR"
    assert Tenant._meta.get_field("currency").default() == "HUF"  # TENANT_DEFAULT_CURRENCY of the tests


def test_it_saves_the_currency_beside_the_time_zone(admin_client_a, tenant):
    verified_sender_domain("teashop.example")
    page = admin_client_a.get(SETTINGS_URL).content.decode()
    assert page.index('name="time_zone"') < page.index('name="currency"')
    assert 'value="HUF" selected' in page

    response = admin_client_a.post(SETTINGS_URL, {**VALID, "currency": "EUR"})

    assert response.status_code == 302
    assert Tenant.objects.get(pk=tenant.pk).currency == "EUR"
    assert 'value="EUR" selected' in admin_client_a.get(SETTINGS_URL).content.decode()


@pytest.mark.parametrize("value", ["XYZ", "euro", "E", "BTC"])
def test_it_refuses_what_is_no_iso_4217_currency_naming_the_field(admin_client_a, tenant, value):
    verified_sender_domain("teashop.example")

    response = admin_client_a.post(SETTINGS_URL, {**VALID, "currency": value})

    assert response.status_code == 400
    assert response.context["form"].errors["currency"]
    assert Tenant.objects.get(pk=tenant.pk).currency == "HUF"


def test_it_keeps_the_currency_when_a_form_leaves_it_out(admin_client_a, euro):
    verified_sender_domain("teashop.example")

    assert admin_client_a.post(SETTINGS_URL, VALID).status_code == 302

    assert Tenant.objects.get(pk=euro.pk).currency == "EUR"


def test_it_refuses_an_unknown_currency_in_the_service_and_reads_lower_case(tenant):
    with pytest.raises(ValidationError) as refused:
        tenant_settings_update(tenant=tenant, changes={"currency": "ABC"})
    assert "ISO 4217" in " ".join(refused.value.message_dict["currency"])
    assert Tenant.objects.get(pk=tenant.pk).currency == "HUF"

    assert tenant_settings_update(tenant=tenant, changes={"currency": " usd "}) == ["currency"]
    assert Tenant.objects.get(pk=tenant.pk).currency == "USD"


def test_it_shows_lifetime_values_in_the_tenants_currency_with_separators(admin_client_a, euro):
    customer = Customer.objects.create(email="big@x.test", total_spent=Decimal("1234567.50"), order_count=3)

    page = admin_client_a.get("/admin/customers/customer/").content.decode()
    assert "1,234,567.50 EUR" in page

    profile = admin_client_a.get(f"/admin/customers/customer/{customer.pk}/change/").content.decode()
    assert "1,234,567.50 EUR" in profile


def test_it_shows_an_order_in_its_own_currency_on_the_profile_and_the_order_list(admin_client_a, euro):
    customer = Customer.objects.create(email="buyer@x.test")
    Order.objects.create(
        external_id="o-1", number="1001", customer=customer, total=Decimal("125000"), currency="HUF",
        placed_at=timezone.now(),
    )  # fmt: skip

    profile = admin_client_a.get(f"/admin/customers/customer/{customer.pk}/change/").content.decode()
    assert "125,000 HUF" in profile  # the webshop's currency, not the account's

    orders = admin_client_a.get("/admin/customers/order/").content.decode()
    assert "125,000 HUF" in orders


def test_it_shows_the_dashboards_revenue_in_the_tenants_currency(admin_client_a, euro):
    spring = Campaign.objects.create(name="Spring", status="sent")
    _attributed_order(spring, "1500.00")
    _attributed_order(spring, "23000.25")

    page = admin_client_a.get("/admin/").content.decode()

    assert "24,500.25 EUR" in page  # the revenue figure and the top campaign's
    assert page.count("24,500.25 EUR") == 2


def test_it_shows_a_campaigns_revenue_in_the_tenants_currency(admin_client_a, euro):
    spring = Campaign.objects.create(name="Spring", status="sent", sent_at=timezone.now())
    _attributed_order(spring, "12345.60")

    page = admin_client_a.get(reverse("admin:tracking_campaign_stats", args=[spring.pk])).content.decode()

    assert "12,345.60 EUR" in page


def test_it_keeps_each_tenants_currency_to_itself(admin_user, euro, other_tenant):
    Tenant.objects.filter(pk=other_tenant.pk).update(currency="USD")
    Customer.objects.create(email="a@x.test", total_spent=Decimal("1000"))
    with schema_context(other_tenant.schema_name):
        Customer.objects.create(email="b@x.test", total_spent=Decimal("2000"))
        other_admin = get_user_model().objects.get(username=f"admin@{HOST_B}")
        client_b = host_client(other_admin, host=HOST_B)

    page_a = host_client(admin_user).get("/admin/customers/customer/").content.decode()
    page_b = client_b.get("/admin/customers/customer/").content.decode()

    assert "1,000.00 EUR" in page_a and "USD" not in page_a
    assert "2,000.00 USD" in page_b and "EUR" not in page_b


def test_it_shows_money_with_separators_on_the_edit_form_and_an_orders_page(admin_client_a, euro):
    customer = Customer.objects.create(email="big@x.test", total_spent=Decimal("76543.21"), order_count=1)
    order = Order.objects.create(
        external_id="o-9", number="1009", customer=customer, total=Decimal("99999.5"), currency="USD",
        placed_at=timezone.now(),
    )  # fmt: skip

    form = admin_client_a.get(f"/admin/customers/customer/{customer.pk}/change/?edit=1").content.decode()
    order_page = admin_client_a.get(f"/admin/customers/order/{order.pk}/change/").content.decode()

    assert "76,543.21 EUR" in form
    assert "99,999.50 USD" in order_page
