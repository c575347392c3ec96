"""The marketer's first hour, server side (Django's test client on tenant A's host): the tenant's time
zone per request, the default send time, the customer picker and the segment builder's suggestions
(each tenant's own data only), consent changed only with a reason, the favicon."""

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.utils import timezone
from django_tenants.utils import schema_context

from campaigns import readiness
from campaigns.models import Campaign
from core.money import amount_parse, money_format
from core.widgets import next_quarter_hour_plus_hour, parse_local_datetime
from customers.models import Customer, Interaction, Order, OrderItem, Tag
from segments.admin import rule_error_words
from tenancy.models import Tenant
from tests.admin.conftest import PUBLIC_HOST, host_client
from tests.campaigns.conftest import make_campaign, make_customers, static_segment

pytestmark = pytest.mark.django_db


@pytest.fixture
def budapest(tenant):
    Tenant.objects.filter(pk=tenant.pk).update(time_zone="Europe/Budapest")
    yield
    Tenant.objects.filter(pk=tenant.pk).update(time_zone="UTC")


def test_it_offers_the_next_round_quarter_hour_one_hour_on():
    zone = ZoneInfo("Europe/Budapest")
    with timezone.override(zone):
        assert next_quarter_hour_plus_hour(datetime(2030, 1, 31, 9, 7, tzinfo=UTC)) == datetime(
            2030, 1, 31, 11, 15, tzinfo=zone
        )
        assert next_quarter_hour_plus_hour(datetime(2030, 1, 31, 9, 0, 30, tzinfo=UTC)).minute == 15
        assert parse_local_datetime("2030-06-01T10:00") == datetime(2030, 6, 1, 8, 0, tzinfo=UTC)
        assert parse_local_datetime("soon") is None


def test_it_reads_money_as_people_write_it():
    assert money_format(125000, "HUF") == "125,000 HUF"
    assert money_format("19.9", "eur") == "19.90 EUR"
    assert [amount_parse(t) for t in ("20 000", "20,000", "20000.5", "lots", "", "NaN")] == [
        20000,
        20000,
        amount_parse("20000.5"),
        None,
        None,
        None,
    ]


def test_it_shows_and_reads_the_admins_times_in_the_tenants_zone(admin_client_a, tenant, budapest):
    campaign = make_campaign(
        static_segment(make_customers(1)), scheduled_at=datetime(2030, 1, 31, 8, 0, tzinfo=UTC)
    )

    page = admin_client_a.get(f"/admin/campaigns/campaign/{campaign.pk}/change/").content.decode()
    assert 'value="2030-01-31T09:00"' in page
    assert "In Europe/Budapest." in page

    listing = admin_client_a.get("/admin/campaigns/campaign/").content.decode()
    assert "2030-01-31 09:00" in listing

    response = admin_client_a.post(
        f"/admin/campaigns/campaign/{campaign.pk}/action/schedule/", {"scheduled_at": "2030-06-01T10:00"}
    )
    assert response.status_code == 302
    campaign.refresh_from_db()
    assert (campaign.status, campaign.scheduled_at) == ("scheduled", datetime(2030, 6, 1, 8, 0, tzinfo=UTC))
    assert timezone.get_current_timezone_name() == "UTC"  # the request's zone ends with the request


def test_it_offers_a_default_send_time_that_is_accepted(admin_client_a, tenant):
    campaign = make_campaign(static_segment(make_customers(1)))
    page = admin_client_a.get(f"/admin/campaigns/campaign/{campaign.pk}/action/schedule/").content.decode()
    offered = page.split('name="scheduled_at" type="datetime-local" step="60" required value="')[1][:16]

    response = admin_client_a.post(
        f"/admin/campaigns/campaign/{campaign.pk}/action/schedule/", {"scheduled_at": offered}
    )

    assert response.status_code == 302
    campaign.refresh_from_db()
    assert campaign.status == "scheduled"
    assert campaign.scheduled_at > timezone.now()


def test_it_disables_the_send_button_while_a_blocker_is_left(admin_client_a, tenant):
    campaign = make_campaign(None)

    page = admin_client_a.get(f"/admin/campaigns/campaign/{campaign.pk}/action/send/").content.decode()

    assert 'id="check-segment" data-ok="false" data-blocking="true"' in page
    assert f'href="/admin/campaigns/campaign/{campaign.pk}/change/#id_segment"' in page
    assert 'id="confirm-blocked"' in page
    submit = page.split('id="confirm-submit"')[1].split(">")[0]
    assert "disabled" in submit
    refused = admin_client_a.post(f"/admin/campaigns/campaign/{campaign.pk}/action/send/")
    assert refused["Location"] == f"/admin/campaigns/campaign/{campaign.pk}/change/#id_segment"
    page = admin_client_a.get(refused["Location"].split("#")[0]).content.decode()
    assert "Segment: Choose a segment to send to." in page
    assert Campaign.objects.get(pk=campaign.pk).status == "draft"


def test_it_picks_preview_customers_by_name_from_the_own_tenant_only(admin_client_a, tenant, other_tenant):
    Customer.objects.create(email="bence@example.com", first_name="Bence", last_name="Nagy")
    with schema_context(other_tenant.schema_name):
        Customer.objects.create(email="bence.b@example.com", first_name="Bence", last_name="Other")

    found = admin_client_a.get("/admin/campaigns/campaign/customers/", {"q": "bence"}).json()

    assert found == {
        "results": [{"id": found["results"][0]["id"], "email": "bence@example.com", "name": "Bence Nagy"}]
    }
    assert admin_client_a.get("/admin/campaigns/campaign/customers/", {"q": "be"}).json() == {"results": []}


def test_it_suggests_segment_values_from_the_tenants_data_only(admin_client_a, tenant, other_tenant):
    for city in ("Budapest", "budapest", "Buda", "Szeged", ""):
        Customer.objects.create(email=f"{city or 'none'}{len(city)}@example.com", city=city)
    Tag.objects.create(name="vip")
    order = Order.objects.create(customer=Customer.objects.first(), external_id="o-1", number="1", total=1)
    OrderItem.objects.create(order=order, sku="TEA-1", name="Tea", quantity=1, unit_price=1)
    with schema_context(other_tenant.schema_name):
        Customer.objects.create(email="b@example.com", city="Bucharest")
    url = "/admin/segments/segment/suggest/"

    cities = admin_client_a.get(url, {"field": "city", "q": "bu"}).json()["values"]
    assert sorted(v["value"].lower() for v in cities) == ["buda", "budapest"]
    everything = admin_client_a.get(url, {"field": "city", "q": ""}).json()["values"]
    assert len(everything) == 3
    assert admin_client_a.get(url, {"field": "tags", "q": "V"}).json()["values"] == [
        {"value": "vip", "label": "vip"}
    ]
    assert (
        admin_client_a.get(url, {"field": "purchased_sku", "q": "tea"}).json()["values"][0]["value"]
        == "TEA-1"
    )
    assert admin_client_a.get(url, {"field": "email", "q": "a"}).json()["values"] == []
    assert admin_client_a.get(url, {"field": "city", "q": "%"}).json()["values"] == []


def test_it_names_rules_by_position_and_field_in_errors(admin_client_a, tenant):
    rules = {
        "combinator": "and",
        "rules": [
            {"field": "city", "operator": "=", "value": "x"},
            {"field": "total_spent", "operator": ">", "value": "lots"},
        ],
    }

    response = admin_client_a.post(
        "/admin/segments/segment/preview/", {"rules": rules}, content_type="application/json"
    )

    assert response.status_code == 400
    [message] = response.json()["messages"]
    assert message.startswith("Rule 2 (Total spent), value: ")
    assert rule_error_words(
        "rules[0].rules[1].operator: bad", {"rules": [{"rules": [{}, {"field": "city"}]}]}
    ) == ("Rule 1.2 (City), condition: bad")


def test_it_changes_consent_only_with_a_reason_and_records_who(admin_client_a, admin_user, tenant):
    customer = Customer.objects.create(email="ann@example.com", email_marketing=True)
    url = f"/admin/customers/customer/{customer.pk}/consent/"

    refused = admin_client_a.post(url, {"give": "0", "reason": "  "})
    assert refused.status_code == 400
    assert Customer.objects.get(pk=customer.pk).email_marketing is True

    assert admin_client_a.post(url, {"give": "0", "reason": "Asked by phone"}).status_code == 302
    customer.refresh_from_db()
    assert customer.email_marketing is False and customer.unsubscribed_at is not None
    record = Interaction.objects.get(customer=customer, kind="unsubscribed")
    assert (record.author, record.data["reason"]) == (admin_user, "Asked by phone")

    assert admin_client_a.post(url, {"give": "1", "reason": "Signed form"}).status_code == 302
    customer.refresh_from_db()
    assert customer.email_marketing is True and customer.unsubscribed_at is None
    assert Interaction.objects.get(customer=customer, kind="resubscribed").data["reason"] == "Signed form"


def test_it_refuses_a_marketer_without_change_permission_the_consent_page(tenant):
    viewer = get_user_model().objects.create_user(
        username="viewer@x.test", password="x-password-1", is_staff=True
    )
    customer = Customer.objects.create(email="ann@example.com", email_marketing=True)

    response = host_client(viewer).post(
        f"/admin/customers/customer/{customer.pk}/consent/", {"give": "0", "reason": "x"}
    )

    assert response.status_code == 403
    assert Customer.objects.get(pk=customer.pk).email_marketing is True


def test_it_answers_the_favicon_on_tenant_and_public_hosts(tenant):
    for host in ("tenant-a.localhost", PUBLIC_HOST):
        response = host_client(host=host).get("/favicon.ico")
        assert response.status_code == 200
        assert response["Content-Type"] == "image/svg+xml"
    connection.set_tenant(tenant)


def test_it_keeps_another_tenants_customer_out_of_the_customer_page(admin_client_a, tenant, other_tenant):
    with schema_context(other_tenant.schema_name):
        other = Customer.objects.create(email="other@example.com")
    assert not Customer.objects.filter(pk=other.pk).exists()  # tenant A has no such customer

    for path in ("consent/?give=0", "change/"):
        response = admin_client_a.get(f"/admin/customers/customer/{other.pk}/{path}")
        assert "other@example.com" not in response.content.decode()
    assert admin_client_a.get(f"/admin/customers/customer/{other.pk}/consent/?give=0").status_code == 404


def test_it_asks_for_a_sender_first_while_the_account_has_none(admin_client_a, tenant):
    Tenant.objects.filter(pk=tenant.pk).update(from_email="")
    page = admin_client_a.get("/admin/").content.decode()
    assert 'id="dashboard-setup-sender"' in page
    assert "/admin/tenancy/tenant/settings/" in page

    Tenant.objects.filter(pk=tenant.pk).update(from_email="news@shop.example")
    assert 'id="dashboard-setup-sender"' not in admin_client_a.get("/admin/").content.decode()


def test_it_keeps_the_api_in_utc_whatever_the_tenants_zone(api, tenant, budapest):
    customer = Customer.objects.create(email="ann@example.com")
    Customer.objects.filter(pk=customer.pk).update(created_at=datetime(2030, 1, 31, 8, 0, tzinfo=UTC))

    body = api.get(f"/api/customers/{customer.pk}").json()

    assert body["created_at"] in ("2030-01-31T08:00:00Z", "2030-01-31T08:00:00+00:00")


def test_it_says_when_the_last_test_copy_went_out_in_local_time(
    admin_client_a, tenant, budapest, monkeypatch
):

    campaign = make_campaign(static_segment(make_customers(1)))
    monkeypatch.setattr(readiness, "campaign_last_test", lambda campaign: "2030-01-31 08:00")

    page = admin_client_a.get(f"/admin/campaigns/campaign/{campaign.pk}/action/send/").content.decode()

    assert "last at 2030-01-31 09:00 Europe/Budapest" in page


def test_it_shows_a_customers_email_as_written_in_the_header(admin_client_a, tenant):
    customer = Customer.objects.create(email="judit.kiss@example.com")

    page = admin_client_a.get(f"/admin/customers/customer/{customer.pk}/change/").content.decode()

    assert "Judit.kiss@example.com" not in page
    assert "judit.kiss@example.com" in page
    assert "Campaign reports" in admin_client_a.get("/admin/tracking/campaignreport/").content.decode()
