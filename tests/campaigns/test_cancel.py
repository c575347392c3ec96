"""Cancelling a campaign is honest: recipients still pending become `cancelled` in the same
transaction, a batch in flight is recorded as what really happened, no worker sends to a cancelled
recipient, the stats count them, and `campaign.cancelled` tells consumers."""

import smtplib
from datetime import timedelta

import pytest
from django.utils import timezone

from campaigns import jobs, lifecycle, sender
from campaigns.mail import mail_connection
from campaigns.models import Campaign, CampaignRecipient
from campaigns.ratelimit import RateLimiter
from events.models import OutboxEvent
from tests import processes

from .conftest import claim_order, make_campaign, make_customers, static_segment

FAST = RateLimiter(rate_per_second=100000)


@pytest.fixture
def sink(settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.MAIL_UNSUBSCRIBE_MAILTO = ""
    with processes.smtp_sink() as handler:
        yield handler


pytestmark = pytest.mark.usefixtures("locmem_mail")


class CancelledInFlight(sender.Messenger):
    """A real SMTP messenger; the campaign is cancelled (as by another process) just as this batch
    goes out, after it was claimed."""

    def __init__(self, campaign, port):
        super().__init__(lambda: mail_connection(host="127.0.0.1", port=port, timeout=5))
        self.campaign = campaign

    def send_many(self, messages, before_each=None):
        lifecycle.campaign_cancel(campaign=Campaign.objects.get(pk=self.campaign.pk))
        return super().send_many(messages, before_each=before_each)


def _statuses(campaign):
    return dict(
        (email, status)
        for email, status in CampaignRecipient.objects.filter(campaign=campaign).values_list(
            "email", "status"
        )
    )


def _cancelled_events(campaign):
    return [
        event.data
        for event in OutboxEvent.objects.filter(type="campaign.cancelled").order_by("id")
        if event.data["id"] == campaign.pk
    ]


def _start(n, **fields):
    customers = make_customers(n, **fields)
    campaign = make_campaign(static_segment(customers))
    lifecycle.campaign_send_now(campaign=campaign)
    return Campaign.objects.get(pk=campaign.pk)


def test_it_cancels_mid_send_recording_the_batch_in_flight_and_sending_nothing_more(tenant, sink, api):
    campaign = _start(6)
    messenger = sender.Messenger(lambda: mail_connection(host="127.0.0.1", port=sink.port, timeout=5))
    sender.campaign_batches_send(
        campaign_id=campaign.pk, batch_size=2, max_batches=1, limiter=FAST, messenger=messenger
    )
    messenger.close()
    assert sink.count() == 2

    in_flight = CancelledInFlight(campaign, sink.port)
    outcome = sender.campaign_batches_send(
        campaign_id=campaign.pk, batch_size=2, limiter=FAST, messenger=in_flight
    )
    in_flight.close()

    assert (outcome.sent, outcome.batches, outcome.finished) == (2, 1, False)
    order = claim_order(campaign)
    assert sorted(sink.by_address()) == sorted(order[:4])
    assert _statuses(campaign) == {
        **{email: "sent" for email in order[:4]},
        **{email: "cancelled" for email in order[4:]},
    }
    assert _cancelled_events(campaign) == [
        {
            "id": campaign.pk,
            "name": "Spring",
            "recipients": 6,
            "sent": 2,
            "failed": 0,
            "cancelled": 2,
            "in_flight": 2,
        }
    ]

    # Nothing more goes out, whoever runs the campaign again.
    assert sender.campaign_batches_send(campaign_id=campaign.pk, limiter=FAST).sent == 0
    assert sender.Store(campaign.pk).claim(limit=10, lease_seconds=60).claims == []
    assert jobs.leases_reclaim_expired() == []
    assert sink.count() == 4

    stats = api.get(f"/api/campaigns/{campaign.pk}/stats").json()
    assert {k: stats[k] for k in ("status", "recipients", "pending", "sent", "failed", "cancelled")} == {
        "status": "cancelled",
        "recipients": 6,
        "pending": 0,
        "sent": 4,
        "failed": 0,
        "cancelled": 2,
    }
    listed = api.get(f"/api/campaigns/{campaign.pk}/recipients?status=cancelled").json()
    assert [(r["email"], r["status"]) for r in listed["results"]] == [
        (email, "cancelled") for email in order[4:]
    ]


def test_it_cancels_what_a_batch_in_flight_could_not_send_instead_of_retrying_it(tenant):
    campaign = _start(3)

    class Refusing:
        """Cancelled while sending; the server answers 451 (try later) for one address."""

        def __init__(self):
            self.sent = []
            self.cancelled = False

        def send(self, message):
            if not self.cancelled:  # at the first message, whichever the batch sends first
                lifecycle.campaign_cancel(campaign=Campaign.objects.get(pk=campaign.pk))
                self.cancelled = True
            if message.to[0] == "c1@example.com":
                raise smtplib.SMTPDataError(451, b"4.3.0 try again later")
            self.sent.append(message.to[0])

        def reset(self):
            pass

        close = reset

    messenger = Refusing()
    sender.campaign_batches_send(campaign_id=campaign.pk, limiter=FAST, messenger=messenger)

    assert messenger.sent == [email for email in claim_order(campaign) if email != "c1@example.com"]
    rows = CampaignRecipient.objects.filter(campaign=campaign).order_by("email")
    assert [(r.email, r.status, r.error, r.lease_until) for r in rows] == [
        ("c0@example.com", "sent", "", None),
        ("c1@example.com", "cancelled", "451 4.3.0 try again later", None),
        ("c2@example.com", "sent", "", None),
    ]


def test_it_claims_nothing_for_a_cancelled_campaign_even_with_rows_left_pending(tenant):
    campaign = _start(2)
    # Rows left pending by an older version of the cancel.
    Campaign.objects.filter(pk=campaign.pk).update(status="cancelled")

    assert sender.Store(campaign.pk).claim(limit=10, lease_seconds=60).claims == []
    assert set(_statuses(campaign).values()) == {"pending"}


def test_it_cancels_the_rows_of_a_dead_worker_instead_of_putting_them_back(tenant, run_on_commit):
    campaign = _start(3)
    batch = sender.Store(campaign.pk).claim(limit=2, lease_seconds=60)
    lifecycle.campaign_cancel(campaign=campaign)
    CampaignRecipient.objects.filter(campaign=campaign, status="sending").update(
        lease_until=timezone.now() - timedelta(seconds=1)
    )

    with run_on_commit() as callbacks:
        assert jobs.leases_reclaim_expired() == [campaign.pk]

    assert callbacks == []  # no batch task for a cancelled campaign
    assert len(batch.claims) == 2
    assert set(_statuses(campaign).values()) == {"cancelled"}
    assert CampaignRecipient.objects.filter(campaign=campaign, lease_until__isnull=False).count() == 0


def test_it_cancels_a_paused_campaign_and_a_draft(tenant, api):
    paused = _start(2)
    lifecycle.campaign_pause(campaign=paused)
    draft = make_campaign(static_segment(make_customers(1, prefix="d")), name="Draft")

    assert api.post(f"/api/campaigns/{paused.pk}/cancel").json()["status"] == "cancelled"
    assert api.post(f"/api/campaigns/{draft.pk}/cancel").json()["status"] == "cancelled"

    assert set(_statuses(paused).values()) == {"cancelled"}
    assert _cancelled_events(paused) == [
        {
            "id": paused.pk,
            "name": "Spring",
            "recipients": 2,
            "sent": 0,
            "failed": 0,
            "cancelled": 2,
            "in_flight": 0,
        }
    ]
    assert _cancelled_events(draft) == [
        {
            "id": draft.pk,
            "name": "Draft",
            "recipients": 0,
            "sent": 0,
            "failed": 0,
            "cancelled": 0,
            "in_flight": 0,
        }
    ]


@pytest.mark.parametrize("status", ["sent", "cancelled", "failed"])
def test_it_refuses_to_cancel_a_finished_campaign_with_nothing_changed(tenant, api, status):
    campaign = _start(2)
    CampaignRecipient.objects.filter(campaign=campaign).update(status="pending")
    Campaign.objects.filter(pk=campaign.pk).update(status=status)
    events = OutboxEvent.objects.count()

    response = api.post(f"/api/campaigns/{campaign.pk}/cancel")

    assert response.status_code == 409
    assert response.json() == {"detail": f"A campaign that is {status} cannot be cancelled."}
    assert Campaign.objects.get(pk=campaign.pk).status == status
    assert set(_statuses(campaign).values()) == {"pending"}
    assert OutboxEvent.objects.count() == events


def test_it_documents_the_cancelled_count_and_status_in_the_api_schema(api):
    schema = api.get("/api/schema/?format=json").json()

    stats = schema["components"]["schemas"]["CampaignStats"]
    assert "cancelled" in stats["required"]
    assert stats["properties"]["cancelled"]["type"] == "integer"
    recipients = next(
        p
        for p in schema["paths"]["/api/campaigns/{id}/recipients"]["get"]["parameters"]
        if p["name"] == "status"
    )
    assert "cancelled" in recipients["schema"]["enum"]
