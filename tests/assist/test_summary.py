"""Campaign summaries: every number equals the stats API's; written when sent and a day later."""

from datetime import timedelta

import pytest
from django.db import connection
from django.test import Client
from django.utils import timezone

from assist.models import SummaryDue
from assist.summary import numbers_in, percent
from assist.tasks import write_campaign_summary, write_due_summaries
from campaigns import editing, lifecycle
from campaigns.models import Campaign, CampaignRecipient
from tests.assist.conftest import sent_campaign

pytestmark = pytest.mark.django_db


def _expected_numbers(stats, history_open=None, history_click=None, count=None):
    """The figures of the stats API response, written the way the summary writes them."""
    figures = {
        f"{stats['sent']:,}",
        f"{stats['recipients']:,}",
        f"{stats['delivered']:,}",
        percent(stats["open_rate"]),
        percent(stats["click_rate"]),
        f"{stats['unique_opens']:,}",
        f"{stats['unique_clicks']:,}",
        f"{stats['unsubscribes']:,}",
        f"{stats['complained']:,}",
        f"{stats['bounced']:,}",
    }
    return figures


def test_it_writes_a_summary_whose_numbers_are_the_stats_apis(api):
    earlier = [
        sent_campaign(
            name=f"Earlier {i}",
            unique_opens=40 + i,
            unique_clicks=5 + i,
            sent_at=timezone.now() - timedelta(days=i + 1),
        )
        for i in range(3)
    ]
    campaign = sent_campaign()

    response = api.post(f"/api/campaigns/{campaign.pk}/summary")
    stats = api.get(f"/api/campaigns/{campaign.pk}/stats").json()

    assert response.status_code == 200
    body = response.json()
    assert body["source"] == "offline"
    text = body["summary"]
    for figure in _expected_numbers(stats):
        assert figure in text, figure
    assert percent(stats["open_rate"]) == "30.0%"  # 57 of 190 delivered
    history = sorted(api.get(f"/api/campaigns/{c.pk}/stats").json()["open_rate"] for c in earlier)
    assert f"median of {percent(history[1])}" in text
    assert "https://shop.example/spring (8)" in text  # unique clicks of the best link, as in stats["links"]
    assert "14:00 UTC" in text
    facts = body["facts"]
    for key in ("recipients", "sent", "delivered", "unique_opens", "unique_clicks", "open_rate", "click_rate",
                "unsubscribes", "complained", "bounced"):  # fmt: skip
        assert facts[key] == stats[key], key
    stored = Campaign.objects.get(pk=campaign.pk)
    assert (stored.summary, stored.summary_source) == (text, "offline")
    assert stored.summary_at is not None


def test_it_shows_the_summary_on_the_stats_page(admin_user, tenant):
    campaign = sent_campaign()
    editing.campaign_summary_save(campaign_id=campaign.pk, summary="Reached 200 people.", source="offline")
    client = Client(HTTP_HOST="tenant-a.localhost")
    client.force_login(admin_user)

    page = client.get(f"/admin/tracking/campaignreport/{campaign.pk}/stats/").content.decode()

    assert 'id="campaign-summary"' in page and "Reached 200 people." in page


def test_it_refuses_to_summarise_a_draft_and_changes_nothing(api):
    campaign = Campaign.objects.create(name="Draft", subject="Hi", html_body="<p>x</p>")

    response = api.post(f"/api/campaigns/{campaign.pk}/summary")

    assert response.status_code == 409
    assert Campaign.objects.get(pk=campaign.pk).summary == ""


def test_it_answers_404_for_another_tenants_campaign(api_b, api, tenant):
    campaign = sent_campaign()

    assert api_b.post(f"/api/campaigns/{campaign.pk}/summary").status_code == 404
    connection.set_tenant(tenant)
    assert Campaign.objects.get(pk=campaign.pk).summary == ""


def test_it_schedules_a_summary_when_the_campaign_is_sent_and_another_a_day_later(
    tenant, django_capture_on_commit_callbacks
):
    campaign = sent_campaign()
    Campaign.objects.filter(pk=campaign.pk).update(status="sending", sent_at=None)
    CampaignRecipient.objects.filter(campaign=campaign).exclude(
        status__in=["delivered", "complained", "bounced", "sent"]
    ).delete()

    with django_capture_on_commit_callbacks() as callbacks:
        assert lifecycle.campaign_finish_if_done(campaign_id=campaign.pk)

    due = SummaryDue.objects.get(tenant_id=tenant.pk, campaign_id=campaign.pk)
    assert timedelta(hours=23) < due.due_at - timezone.now() <= timedelta(hours=24)
    assert len(callbacks) >= 1

    write_campaign_summary(campaign.pk)  # what the first callback enqueues, run in-process
    assert Campaign.objects.get(pk=campaign.pk).summary.startswith("“Spring sale” reached 200 of 200")
    write_campaign_summary(campaign.pk, final=True)  # the day-after one
    assert not SummaryDue.objects.filter(campaign_id=campaign.pk, tenant_id=tenant.pk).exists()


def test_the_beat_hands_out_only_summaries_that_came_due(tenant, monkeypatch):
    enqueued = []
    monkeypatch.setattr(
        write_campaign_summary,
        "delay",
        lambda campaign_id, final=False: enqueued.append((connection.schema_name, campaign_id, final)),
    )
    SummaryDue.objects.create(tenant=tenant, campaign_id=1, due_at=timezone.now() - timedelta(minutes=1))
    SummaryDue.objects.create(tenant=tenant, campaign_id=2, due_at=timezone.now() + timedelta(hours=3))

    write_due_summaries()
    write_due_summaries()  # a second tick finds the first row claimed

    assert enqueued == [(tenant.schema_name, 1, True)]
    assert SummaryDue.objects.get(campaign_id=1).due_at > timezone.now() + timedelta(minutes=50)


def test_numbers_in_reads_thousands_separators_and_decimals():
    assert numbers_in("1,234 people, 23.4% opened at 14:00") == numbers_in("1234 23.40 14 0")
