"""GET /api/campaigns/{id}/recipients names each recipient's A/B variant (PRODUCT.md "A/B tests": a
variant is its `key`) and filters by it; a bad filter is a 400 naming `variant`."""

from collections import Counter

import pytest
from django.test import Client

from campaigns import lifecycle

from .conftest import make_campaign, make_customers, static_segment

VARIANTS = [{"key": "A", "subject": "Spring sale"}, {"key": "B", "subject": "Your spring treat"}]
AB_TEST = {"test_percent": 50, "metric": "open_rate", "wait_seconds": 3600, "min_confidence": 0.95}


@pytest.fixture
def ab_started(tenant, locmem_mail):
    campaign = make_campaign(
        static_segment(make_customers(8, prefix="rv")), variants=VARIANTS, ab_test=AB_TEST
    )
    lifecycle.campaign_send_now(campaign=campaign)
    return campaign


def test_it_shows_the_variant_each_recipient_gets(api, ab_started):
    body = api.get(f"/api/campaigns/{ab_started.pk}/recipients?page_size=50").json()
    seen = Counter((row["variant"], row["ab_sample"], row["status"]) for row in body["results"])
    assert seen == {("A", True, "pending"): 2, ("B", True, "pending"): 2, (None, False, "held"): 4}


def test_it_filters_the_recipients_by_variant(api, ab_started):
    body = api.get(f"/api/campaigns/{ab_started.pk}/recipients?variant=B").json()
    assert body["count"] == 2
    assert {row["variant"] for row in body["results"]} == {"B"}


def test_it_refuses_a_variant_the_campaign_does_not_have(api, ab_started):
    response = api.get(f"/api/campaigns/{ab_started.pk}/recipients?variant=C")
    assert response.status_code == 400
    assert list(response.json()) == ["variant"]


def test_it_refuses_a_variant_filter_on_a_campaign_without_a_test(api, tenant, locmem_mail):
    campaign = make_campaign(static_segment(make_customers(2, prefix="nv")))
    lifecycle.campaign_send_now(campaign=campaign)
    response = api.get(f"/api/campaigns/{campaign.pk}/recipients?variant=A")
    assert response.status_code == 400
    assert response.json() == {"variant": ["This campaign has no A/B test."]}
    rows = api.get(f"/api/campaigns/{campaign.pk}/recipients").json()["results"]
    assert [row["variant"] for row in rows] == [None, None]


def test_it_shows_and_filters_the_variant_in_the_admins_recipient_list(tenant, marketer, ab_started):
    browser = Client(HTTP_HOST=tenant.get_primary_domain().domain)
    browser.force_login(marketer)
    base = f"/admin/campaigns/campaignrecipient/?campaign__id__exact={ab_started.pk}"
    page = browser.get(base).content.decode()
    assert "A/B variant" in page and "?campaign__id__exact=" in page
    only_b = browser.get(base + "&variant=B")
    assert only_b.status_code == 200
    assert list(only_b.context["cl"].queryset.values_list("variant", flat=True)) == ["B", "B"]
