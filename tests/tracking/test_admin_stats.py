import json
import re

from django.contrib.auth import get_user_model
from django.test import Client
from django.urls import reverse

from campaigns.models import CampaignRecipient
from tracking.hits import hit_record_click, hit_record_open
from tracking.rollup import hits_rollup

from .conftest import HUMAN_AGENT


def _client(tenant, user=None):
    client = Client(HTTP_HOST=tenant.get_primary_domain().domain)
    if user is not None:
        client.force_login(user)
    return client


def _activity(tenant, sent):
    hit_record_open(tenant=tenant, recipient_id=sent.recipients[0].pk, user_agent=HUMAN_AGENT)
    hit_record_click(
        tenant=tenant, recipient_id=sent.recipients[0].pk, link_id=sent.links[1].pk, user_agent=HUMAN_AGENT
    )
    hits_rollup()


def test_it_draws_the_stats_page_with_chart_funnel_and_links(tenant, sent, marketer):
    _activity(tenant, sent)
    url = reverse("admin:tracking_campaign_stats", args=[sent.campaign.pk])
    assert url == f"/admin/tracking/campaignreport/{sent.campaign.pk}/stats/"
    response = _client(tenant, marketer).get(url)
    assert response.status_code == 200
    html = response.content.decode()
    assert "Results of “Autumn sale”" in html
    chart = json.loads(
        re.search(r'data-type="bar" data-value="([^"]+)"', html).group(1).replace("&quot;", '"')
    )
    assert [d["label"] for d in chart["datasets"]] == ["Opens", "Clicks"]
    assert [d["data"] for d in chart["datasets"]] == [[1], [1]]
    for label in ("Sent", "Delivered", "not reported by your mail server", "Opened", "Clicked", "Funnel"):
        assert label in html
    assert "https://shop.example.com/new?utm=x&amp;a=1" in html
    assert "33.3%" in html  # open rate: 1 of 3 sent


def test_it_lists_campaign_reports_with_a_link_to_each(tenant, sent, marketer):
    _activity(tenant, sent)
    response = _client(tenant, marketer).get(reverse("admin:tracking_campaignreport_changelist"))
    assert response.status_code == 200
    assert reverse("admin:tracking_campaign_stats", args=[sent.campaign.pk]) in response.content.decode()


def test_it_redirects_a_report_to_its_stats_page(tenant, sent, marketer):
    response = _client(tenant, marketer).get(
        reverse("admin:tracking_campaignreport_change", args=[sent.campaign.pk])
    )
    assert response.status_code == 302
    assert response["Location"] == reverse("admin:tracking_campaign_stats", args=[sent.campaign.pk])


def test_it_keeps_the_page_from_anonymous_users_and_answers_404_for_unknown_campaigns(
    tenant, sent, admin_user
):
    url = reverse("admin:tracking_campaign_stats", args=[sent.campaign.pk])
    response = _client(tenant).get(url)
    assert response.status_code == 302 and "/admin/login/" in response["Location"]
    assert (
        _client(tenant, admin_user).get(reverse("admin:tracking_campaign_stats", args=[999999])).status_code
        == 404
    )


def test_it_refuses_staff_without_campaign_permission(tenant, sent):
    user = get_user_model().objects.create_user(username="intern", password="x" * 12, is_staff=True)
    response = _client(tenant, user).get(reverse("admin:tracking_campaign_stats", args=[sent.campaign.pk]))
    assert response.status_code == 403


def test_it_shows_the_recipients_a_cancel_left_unsent(tenant, sent, marketer):
    CampaignRecipient.objects.filter(pk=sent.recipients[2].pk).update(status="cancelled", sent_at=None)
    url = reverse("admin:tracking_campaign_stats", args=[sent.campaign.pk])
    html = _client(tenant, marketer).get(url).content.decode()
    assert "0 pending · 1 cancelled" in html
