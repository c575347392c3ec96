"""The dashboard's revenue card: attributed revenue of orders placed in the last 30 days and the top
campaigns by revenue; cancelled and refunded orders and older ones left out."""

import itertools
from datetime import timedelta
from decimal import Decimal

import pytest
from django.urls import reverse
from django.utils import timezone

from campaigns.models import Campaign
from crm_project.dashboard import dashboard_revenue
from customers.models import Customer, Order, OrderAttribution
from flows.models import Flow

pytestmark = pytest.mark.django_db
_numbers = itertools.count()


def _attributed(campaign, total, *, days_ago=1, counts=True):
    n = next(_numbers)
    customer = Customer.objects.create(email=f"buyer{n}@x.test")
    placed = timezone.now() - timedelta(days=days_ago)
    order = Order.objects.create(
        external_id=f"r-{n}", customer=customer, total=Decimal(total), placed_at=placed
    )
    OrderAttribution.objects.create(
        order=order,
        customer=customer,
        campaign_id=campaign.pk,
        touch="click",
        touched_at=placed - timedelta(hours=1),
        placed_at=placed,
        total=Decimal(total),
        counts=counts,
    )


def test_it_sums_the_last_30_days_and_ranks_the_campaigns(tenant):
    spring = Campaign.objects.create(name="Spring", status="sent")
    summer = Campaign.objects.create(name="Summer", status="sent")
    _attributed(spring, "100.00")
    _attributed(summer, "80.00")
    _attributed(summer, "70.00", days_ago=29)
    _attributed(spring, "1000.00", days_ago=31)  # too old
    _attributed(spring, "500.00", counts=False)  # cancelled

    figures = dashboard_revenue()

    assert (figures["revenue"], figures["orders"]) == (Decimal("250.00"), 3)
    assert [(row["name"], row["orders"], row["revenue"]) for row in figures["top_campaigns"]] == [
        ("Summer", 2, Decimal("150.00")),
        ("Spring", 1, Decimal("100.00")),
    ]
    assert figures["top_flows"] == []


def test_it_ranks_the_flows_by_revenue(admin_client_a, tenant):
    flow = Flow.objects.create(name="<i>Welcome</i>")
    campaign = Campaign.objects.create(name="Spring", status="sent")
    _attributed(campaign, "10.00")
    OrderAttribution.objects.filter(campaign_id=campaign.pk).update(
        campaign_id=None, flow_id=flow.pk, step="s1"
    )

    figures = dashboard_revenue()

    assert [(row["name"], row["orders"], row["revenue"]) for row in figures["top_flows"]] == [
        ("<i>Welcome</i>", 1, Decimal("10.00"))
    ]
    page = admin_client_a.get("/admin/").content.decode()
    assert 'id="dashboard-top-flows"' in page and "&lt;i&gt;Welcome&lt;/i&gt;" in page


def test_it_shows_the_card_with_escaped_names_and_links_to_the_stats(admin_client_a, tenant):
    campaign = Campaign.objects.create(name="<b>Sale</b>", status="sent")
    _attributed(campaign, "1234.50")

    page = admin_client_a.get("/admin/").content.decode()

    assert 'id="kpi-revenue"' in page and "1234.50" in page
    assert "&lt;b&gt;Sale&lt;/b&gt;" in page and "<b>Sale</b>" not in page
    assert reverse("admin:tracking_campaign_stats", args=[campaign.pk]) in page
