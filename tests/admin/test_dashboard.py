"""The dashboard (admin index on a tenant host): exact figures, the tenant's name, escaped data."""

from datetime import timedelta
from decimal import Decimal
from unittest import mock

import pytest
from django.db import connection
from django.utils import timezone

from campaigns.models import Campaign, CampaignRecipient
from crm_project import dashboard
from customers.models import Customer
from segments.models import Segment
from tests.admin.conftest import PUBLIC_HOST, host_client
from tracking.models import CampaignStats

pytestmark = pytest.mark.django_db


def _customer(email, *, days_ago=0, consent=False, unsubscribed=False, **fields):
    return Customer.objects.create(
        email=email,
        email_marketing=consent,
        unsubscribed_at=timezone.now() if unsubscribed else None,
        created_at=timezone.now() - timedelta(days=days_ago),
        **fields,
    )


def _recipients(campaign, customers, status):
    for customer in customers:
        CampaignRecipient.objects.create(
            campaign=campaign, customer=customer, email=customer.email, status=status
        )


def test_it_shows_customers_growth_and_consent_rate(admin_client_a):
    _customer("a@x.test", days_ago=1, consent=True)
    _customer("b@x.test", days_ago=2, consent=True)
    _customer("c@x.test", days_ago=3, consent=True, unsubscribed=True)
    _customer("d@x.test", days_ago=40)
    Customer.objects.create(email=None, erased_at=timezone.now())  # erased: counted nowhere

    response = admin_client_a.get("/admin/")

    assert response.status_code == 200
    customers = response.context["dashboard"]["customers"]
    assert customers["total"] == 4
    assert customers["new"] == 3
    assert customers["new_before"] == 1
    assert customers["growth_percent"] is None  # 3 vs 1: a percentage of so few is noise
    assert customers["consenting"] == 2
    assert customers["consent_rate"] == 50.0
    assert sum(row["new"] for row in customers["per_day"]) == 3
    assert len(customers["per_day"]) == 30
    html = response.content.decode()
    assert '<div id="kpi-customers"' in html
    assert ">50.0%<" in html
    assert "1 in the 30 days before" in html
    assert 'id="kpi-growth-percent"' not in html


def test_it_shows_a_growth_percentage_only_on_numbers_large_enough(admin_client_a, monkeypatch):
    monkeypatch.setattr(dashboard, "GROWTH_PERCENT_MIN", 1)
    _customer("a@x.test", days_ago=1)
    _customer("b@x.test", days_ago=2)
    _customer("d@x.test", days_ago=40)

    customers = dashboard.dashboard_customers()

    assert customers["growth_percent"] == 100.0


def test_it_shows_recent_campaigns_with_human_rates(admin_client_a):
    people = [_customer(f"p{i}@x.test", consent=True) for i in range(4)]
    segment = Segment.objects.create(name="All", rules={"combinator": "and", "rules": []})
    campaign = Campaign.objects.create(
        name="Spring sale", subject="Hi", segment=segment, status="sent", sent_at=timezone.now()
    )
    _recipients(campaign, people[:3], "sent")
    _recipients(campaign, people[3:], "failed")
    CampaignStats.objects.create(campaign=campaign, unique_opens=2, unique_clicks=1, unsubscribes=1)
    Campaign.objects.create(name="Old draft", subject="x")

    response = admin_client_a.get("/admin/")

    rows = response.context["dashboard"]["recent_campaigns"]
    assert [(r["campaign"].name, r["recipients"], r["sent"]) for r in rows] == [("Spring sale", 4, 3)]
    assert rows[0]["open_rate"] == 66.7
    assert rows[0]["click_rate"] == 33.3
    assert response.context["dashboard"]["drafts"] == 1
    html = response.content.decode()
    assert 'data-rate="open">66.7%<' in html
    assert 'data-rate="click">33.3%<' in html


def test_it_shows_sending_progress_and_upcoming_sends(admin_client_a):
    people = [_customer(f"s{i}@x.test", consent=True) for i in range(4)]
    sending = Campaign.objects.create(name="Now", subject="x", status="sending", started_at=timezone.now())
    _recipients(sending, people[:1], "sent")
    _recipients(sending, people[1:2], "failed")
    _recipients(sending, people[2:], "pending")
    later = timezone.now() + timedelta(days=2)
    soon = timezone.now() + timedelta(hours=3)
    Campaign.objects.create(name="Later", subject="x", status="scheduled", scheduled_at=later)
    Campaign.objects.create(name="Soon", subject="x", status="scheduled", scheduled_at=soon)

    response = admin_client_a.get("/admin/")

    data = response.context["dashboard"]
    assert [
        (r["campaign"].name, r["done"], r["total"], r["failed"], r["percent"]) for r in data["sending"]
    ] == [("Now", 2, 4, 1, 50.0)]
    assert data["sending_active"] == 1
    assert [row["campaign"].name for row in data["upcoming"]] == ["Soon", "Later"]
    html = response.content.decode()
    assert 'id="dashboard-sending" data-active="1"' in html
    assert 'data-percent="50.0"' in html


def test_it_keeps_a_just_finished_campaign_at_100_percent(admin_client_a):
    person = _customer("done@x.test", consent=True)
    campaign = Campaign.objects.create(name="Done", subject="x", status="sent", sent_at=timezone.now())
    _recipients(campaign, [person], "sent")

    response = admin_client_a.get("/admin/")

    rows = response.context["dashboard"]["sending"]
    assert [(r["campaign"].name, r["percent"], r["finished"]) for r in rows] == [("Done", 100.0, True)]
    assert 'id="dashboard-sending" data-active="0"' in response.content.decode()


def test_it_names_the_tenant(admin_client_a, tenant):
    response = admin_client_a.get("/admin/")

    assert response.context["site_title"] == tenant.name
    assert f" Dashboard | {tenant.name}</title>" in response.content.decode()


def test_it_escapes_customer_and_campaign_data(admin_client_a):
    evil = '<script>alert(1)</script><img src=x onerror="alert(2)">'
    _customer(
        "evil@x.test", first_name=evil, last_name=evil, city=evil, consent=True, attributes={"note": evil}
    )
    Campaign.objects.create(
        name=evil, subject=evil, status="scheduled", scheduled_at=timezone.now() + timedelta(days=1)
    )

    response = admin_client_a.get("/admin/")

    html = response.content.decode()
    assert "<script>alert(1)" not in html
    assert "<img src=x" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;&lt;img src=x onerror=&quot;alert(2)&quot;&gt;" in html


def test_it_shows_the_platform_index_on_the_public_host(django_user_model, tenant):
    connection.set_schema_to_public()
    operator = django_user_model.objects.create_superuser("op", "op@x.test", "pw-operator-1")
    response = host_client(operator, host=PUBLIC_HOST).get("/admin/")

    assert response.status_code == 200
    assert "dashboard" not in response.context
    assert response.context["site_title"] == "CRM platform"


def test_it_counts_money_customers_without_loading_them(admin_client_a, django_assert_max_num_queries):
    for i in range(30):
        _customer(f"m{i}@x.test", consent=bool(i % 2), total_spent=Decimal("10.00"))

    with django_assert_max_num_queries(40):
        response = admin_client_a.get("/admin/")

    assert response.context["dashboard"]["customers"]["total"] == 30


def test_it_links_to_no_public_site_from_the_login_page(tenant):
    response = host_client().get("/admin/login/")

    assert response.status_code == 200
    assert response.context["site_url"] is None
    assert "Return to site" not in response.content.decode()


def test_it_lists_campaigns_still_sending_before_those_just_finished(admin_client_a):
    person = _customer("order@x.test", consent=True)
    done = Campaign.objects.create(
        name="Done",
        subject="x",
        status="sent",
        started_at=timezone.now() - timedelta(minutes=5),
        sent_at=timezone.now(),
    )
    _recipients(done, [person], "sent")
    running = Campaign.objects.create(
        name="Running", subject="x", status="sending", started_at=timezone.now()
    )
    _recipients(running, [person], "pending")

    rows = admin_client_a.get("/admin/").context["dashboard"]["sending"]

    assert [(r["campaign"].name, r["finished"]) for r in rows] == [("Running", False), ("Done", True)]


def test_it_links_its_cards_to_the_lists_behind_them(admin_client_a):
    html = admin_client_a.get("/admin/").content.decode()

    assert 'href="/admin/customers/customer/"' in html
    assert 'href="/admin/campaigns/campaign/?status__exact=sending"' in html
    assert 'href="/admin/campaigns/campaign/?status__exact=scheduled"' in html


def test_it_keeps_the_customer_figures_for_minutes_and_recounts_when_a_customer_arrives(
    admin_client_a, tenant, settings
):
    Customer.objects.create(email="first@example.com", email_marketing=True)
    counted = []
    real = dashboard.dashboard_customers

    def counting(**kwargs):
        counted.append(1)
        return real(**kwargs)

    with mock.patch.object(dashboard, "dashboard_customers", counting):
        first = admin_client_a.get("/admin/").context["dashboard"]["customers"]
        Customer.objects.filter(email="first@example.com").update(email_marketing=False)
        again = admin_client_a.get("/admin/").context["dashboard"]["customers"]
        assert len(counted) == 1 and again == first  # from the cache, with the time it was counted
        assert first["as_of"] is not None
        Customer.objects.create(email="second@example.com")
        fresh = admin_client_a.get("/admin/").context["dashboard"]["customers"]
    assert len(counted) == 2
    assert fresh["total"] == first["total"] + 1
