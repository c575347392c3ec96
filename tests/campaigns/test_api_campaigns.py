"""/api/campaigns: create, edit, send, schedule, pause/resume/cancel, test, recipients; every refusal
changes nothing."""

from datetime import timedelta

import pytest
from django.core import mail
from django.db import connection
from django.utils import timezone
from django_tenants.utils import schema_context

from campaigns import jobs, lifecycle
from campaigns.models import Campaign, CampaignLink, CampaignRecipient, EmailTemplate
from events.models import OutboxEvent
from tenancy.models import Tenant

from .conftest import HTML, claim_order, make_campaign, make_customers, static_segment

pytestmark = pytest.mark.usefixtures("locmem_mail")


def _nothing_written(campaign, status="draft"):
    campaign.refresh_from_db()
    assert campaign.status == status
    assert CampaignRecipient.objects.filter(campaign=campaign).count() == 0
    assert CampaignLink.objects.filter(campaign=campaign).count() == 0
    assert campaign.started_at is None


def test_it_creates_a_campaign_with_the_documented_fields(api, tenant):
    segment = static_segment(make_customers(1))
    template = EmailTemplate.objects.create(name="T", subject="From template", html_body="<p>x</p>")
    response = api.post(
        "/api/campaigns",
        {"name": "Spring", "template": template.pk, "segment": segment.pk, "from_name": "Shop"},
        format="json",
    )
    assert response.status_code == 201
    body = response.json()
    assert {
        k: body[k] for k in ("name", "template", "segment", "exclude_segment", "status", "from_name")
    } == {
        "name": "Spring",
        "template": template.pk,
        "segment": segment.pk,
        "exclude_segment": None,
        "status": "draft",
        "from_name": "Shop",
    }
    assert body["track_opens"] is True and body["track_clicks"] is True
    assert body["sent_at"] is None and body["scheduled_at"] is None
    listed = api.get("/api/campaigns?status=draft").json()["results"]
    assert body["id"] in [c["id"] for c in listed]
    assert api.get("/api/campaigns?status=bogus").status_code == 400


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"name": "x", "from_email": "not an address"}, "from_email"),
        ({"name": "x", "segment": 999999}, "segment"),
        ({"name": "x", "template": 999999}, "template"),
        ({"name": "x", "html_body": "{% if %}"}, "html_body"),
        ({"name": "x", "subject": "{% load x %}"}, "subject"),
        ({"name": "x", "scheduled_at": "2001-01-01T00:00:00Z"}, "scheduled_at"),
        ({"name": "x", "scheduled_at": "tomorrow"}, "scheduled_at"),
        ({"name": ""}, "name"),
        ({"name": "x\x00"}, "name"),
    ],
)
def test_it_refuses_bad_campaign_input(api, tenant, payload, field):
    before = Campaign.objects.count()
    response = api.post("/api/campaigns", payload, format="json")
    assert response.status_code == 400
    assert field in response.json()
    assert Campaign.objects.count() == before


def test_it_sends_now_with_202_and_a_second_send_is_409(api, tenant):
    campaign = make_campaign(static_segment(make_customers(3)))
    response = api.post(f"/api/campaigns/{campaign.pk}/send", {}, format="json")
    assert response.status_code == 202
    assert response.json()["status"] == "sending"
    assert CampaignRecipient.objects.filter(campaign=campaign, status="pending").count() == 3

    response = api.post(f"/api/campaigns/{campaign.pk}/send", {}, format="json")
    assert response.status_code == 409
    assert response.json() == {"detail": "A campaign that is sending cannot be sent or resumed."}
    assert CampaignRecipient.objects.filter(campaign=campaign).count() == 3


def test_it_refuses_to_send_without_a_segment(api, tenant):
    campaign = make_campaign(None)
    response = api.post(f"/api/campaigns/{campaign.pk}/send", {}, format="json")
    assert response.status_code == 400
    assert response.json() == {"segment": ["Choose a segment to send to."]}
    _nothing_written(campaign)


def test_it_refuses_to_send_to_an_empty_audience(api, tenant):
    no_consent = make_customers(2, consent=False)
    campaign = make_campaign(static_segment(no_consent))
    response = api.post(f"/api/campaigns/{campaign.pk}/send", {}, format="json")
    assert response.status_code == 400
    assert list(response.json()) == ["segment"]
    assert response.json()["segment"][0].startswith("Nobody would receive this campaign")
    _nothing_written(campaign)
    response = api.post(
        f"/api/campaigns/{campaign.pk}/send",
        {"scheduled_at": (timezone.now() + timedelta(days=1)).isoformat()},
        format="json",
    )
    assert response.status_code == 400
    _nothing_written(campaign)


def test_it_refuses_to_send_when_the_template_was_deleted(api, tenant):
    template = EmailTemplate.objects.create(name="T", subject="S", html_body="<p>x</p>")
    campaign = make_campaign(static_segment(make_customers(1)), template=template, subject="", html_body="")
    template.delete()
    response = api.post(f"/api/campaigns/{campaign.pk}/send", {}, format="json")
    assert response.status_code == 400
    assert list(response.json()) == ["template", "subject"]
    _nothing_written(campaign)


def test_it_refuses_an_invalid_sender_address_from_the_tenant_settings(api, tenant, settings):
    settings.MAIL_FROM_ADDRESS = "broken-address"
    campaign = make_campaign(static_segment(make_customers(1)), from_email="")
    tenant.from_email = ""
    response = api.post(f"/api/campaigns/{campaign.pk}/send", {}, format="json")
    assert response.status_code == 400
    assert response.json() == {"from_email": ["'broken-address' is not a valid sender address."]}
    _nothing_written(campaign)


def test_it_schedules_reschedules_and_unschedules(api, tenant):
    campaign = make_campaign(static_segment(make_customers(1)))
    when = timezone.now() + timedelta(hours=2)
    response = api.post(
        f"/api/campaigns/{campaign.pk}/send", {"scheduled_at": when.isoformat()}, format="json"
    )
    assert response.status_code == 202
    assert response.json()["status"] == "scheduled"
    assert CampaignRecipient.objects.filter(campaign=campaign).count() == 0

    assert (
        api.post(
            f"/api/campaigns/{campaign.pk}/send", {"scheduled_at": when.isoformat()}, format="json"
        ).status_code
        == 409
    )
    later = when + timedelta(hours=1)
    response = api.patch(
        f"/api/campaigns/{campaign.pk}", {"scheduled_at": later.isoformat(), "name": "Later"}, format="json"
    )
    assert response.status_code == 200
    assert response.json()["status"] == "scheduled"
    assert Campaign.objects.get(pk=campaign.pk).scheduled_at == later

    response = api.patch(f"/api/campaigns/{campaign.pk}", {"scheduled_at": None}, format="json")
    assert response.json()["status"] == "draft"


def test_it_refuses_a_past_scheduled_at(api, tenant):
    campaign = make_campaign(static_segment(make_customers(1)))
    past = (timezone.now() - timedelta(minutes=1)).isoformat()
    response = api.post(f"/api/campaigns/{campaign.pk}/send", {"scheduled_at": past}, format="json")
    assert response.status_code == 400
    assert response.json() == {"scheduled_at": ["must be in the future."]}
    _nothing_written(campaign)
    assert Campaign.objects.get(pk=campaign.pk).scheduled_at is None


def test_it_starts_due_scheduled_campaigns_and_fails_those_that_cannot_start(api, tenant):
    due = make_campaign(static_segment(make_customers(2)))
    lifecycle.campaign_schedule(campaign=due, scheduled_at=timezone.now() + timedelta(seconds=30))
    broken = make_campaign(static_segment(make_customers(1, prefix="b")))
    lifecycle.campaign_schedule(campaign=broken, scheduled_at=timezone.now() + timedelta(seconds=30))
    CampaignRecipient.objects.none()
    broken.segment.segmentmember_set.all().delete()

    assert jobs.campaigns_dispatch_due(now=timezone.now()) == []  # not yet
    started = jobs.campaigns_dispatch_due(now=timezone.now() + timedelta(minutes=1))

    assert started == [due.pk]
    assert Campaign.objects.get(pk=due.pk).status == "sending"
    assert CampaignRecipient.objects.filter(campaign=due).count() == 2
    broken.refresh_from_db()
    assert broken.status == "failed"
    assert broken.error.startswith("Could not start: segment: Nobody would receive this campaign")
    assert CampaignRecipient.objects.filter(campaign=broken).count() == 0


def test_it_allows_only_the_transitions_of_the_table(api, tenant):
    campaign = make_campaign(static_segment(make_customers(1)))
    for action in ("pause", "resume"):
        response = api.post(f"/api/campaigns/{campaign.pk}/{action}")
        assert response.status_code == 409
    assert Campaign.objects.get(pk=campaign.pk).status == "draft"

    api.post(f"/api/campaigns/{campaign.pk}/send", {}, format="json")
    assert api.post(f"/api/campaigns/{campaign.pk}/resume").status_code == 409
    assert api.post(f"/api/campaigns/{campaign.pk}/pause").json()["status"] == "paused"
    assert api.post(f"/api/campaigns/{campaign.pk}/pause").status_code == 409
    response = api.patch(f"/api/campaigns/{campaign.pk}", {"name": "edited"}, format="json")
    assert response.status_code == 409
    assert Campaign.objects.get(pk=campaign.pk).name == "Spring"
    assert api.post(f"/api/campaigns/{campaign.pk}/resume").json()["status"] == "sending"
    assert api.post(f"/api/campaigns/{campaign.pk}/cancel").json()["status"] == "cancelled"
    for action in ("pause", "resume", "cancel", "send"):
        response = api.post(f"/api/campaigns/{campaign.pk}/{action}", {}, format="json")
        assert response.status_code == 409, action
    assert Campaign.objects.get(pk=campaign.pk).status == "cancelled"


def test_it_sends_a_test_copy_counted_nowhere(api, tenant):
    customer = make_customers(1)[0]
    campaign = make_campaign(static_segment([customer]))
    response = api.post(
        f"/api/campaigns/{campaign.pk}/test",
        {"emails": ["c0@example.com", "boss@example.com"]},
        format="json",
    )
    assert response.status_code == 200
    assert response.json() == [
        {"email": "c0@example.com", "variant": None, "sent": True, "error": ""},
        {"email": "boss@example.com", "variant": None, "sent": True, "error": ""},
    ]
    assert [m.subject for m in mail.outbox] == ["[Test] Hi First0", "[Test] Hi Alex"]
    assert mail.outbox[0].extra_headers["X-CRM-Test"] == "yes"
    assert mail.outbox[0].extra_headers["Message-ID"] != mail.outbox[1].extra_headers["Message-ID"]
    assert "/t/o/" not in mail.outbox[0].alternatives[0][0]
    _nothing_written(campaign)
    assert not OutboxEvent.objects.filter(type="campaign.sent", data__id=campaign.pk).exists()


def test_it_refuses_bad_test_addresses(api, tenant):
    campaign = make_campaign(static_segment(make_customers(1)))
    for payload in (
        {"emails": []},
        {"emails": ["nope"]},
        {"emails": [f"a{i}@x.example" for i in range(11)]},
        {},
    ):
        response = api.post(f"/api/campaigns/{campaign.pk}/test", payload, format="json")
        assert response.status_code == 400
        assert list(response.json()) == ["emails"]
    assert mail.outbox == []


def test_it_lists_recipients_with_their_status(api, tenant):
    campaign = make_campaign(static_segment(make_customers(3)))
    api.post(f"/api/campaigns/{campaign.pk}/send", {}, format="json")
    CampaignRecipient.objects.filter(campaign=campaign, email="c1@example.com").update(
        status="failed", error="550"
    )
    body = api.get(f"/api/campaigns/{campaign.pk}/recipients?page_size=2").json()
    assert body["count"] == 3
    order = claim_order(campaign)  # the listing's order too
    assert [(r["email"], r["status"]) for r in body["results"]] == [
        (email, "failed" if email == "c1@example.com" else "pending") for email in order[:2]
    ]
    failed = api.get(f"/api/campaigns/{campaign.pk}/recipients?status=failed").json()
    assert [(r["email"], r["error"]) for r in failed["results"]] == [("c1@example.com", "550")]
    assert api.get(f"/api/campaigns/{campaign.pk}/recipients?status=nope").status_code == 400
    progress = api.get(f"/api/campaigns/{campaign.pk}/progress").json()
    assert (
        progress["status"],
        progress["total"],
        progress["pending"],
        progress["failed"],
        progress["done"],
    ) == (
        "sending",
        3,
        2,
        1,
        1,
    )


def test_it_hides_campaigns_of_other_tenants(api, api_b, tenant, other_tenant):
    campaign = make_campaign(None, html_body=HTML)
    with schema_context(other_tenant.schema_name):
        Campaign.objects.filter(pk=campaign.pk).delete()  # rolled back with the test
    for path in ("", "/recipients", "/progress"):
        assert api_b.get(f"/api/campaigns/{campaign.pk}{path}").status_code == 404
    assert api_b.post(f"/api/campaigns/{campaign.pk}/send", {}, format="json").status_code == 404
    connection.set_tenant(tenant)  # a request leaves the connection on its host's tenant
    _nothing_written(campaign)


def test_it_requires_authentication(anon_api, tenant):
    for path in ("/api/campaigns", "/api/templates"):
        assert anon_api.get(path).status_code == 401


def test_it_takes_tracking_defaults_from_the_tenant_settings(api, tenant):
    Tenant.objects.filter(pk=tenant.pk).update(track_clicks=False)  # rolled back with the test
    body = api.post("/api/campaigns", {"name": "No clicks"}, format="json").json()
    assert (body["track_opens"], body["track_clicks"]) == (True, False)
    explicit = api.post("/api/campaigns", {"name": "Clicks", "track_clicks": True}, format="json").json()
    assert explicit["track_clicks"] is True
