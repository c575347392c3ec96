"""Consent is checked again at the moment of sending: whoever unsubscribed, withdrew consent, was
suppressed or erased after the audience was frozen is `skipped` with the reason, and not mailed."""

import pytest
from django.core import mail
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from campaigns import lifecycle, sender
from campaigns.models import Campaign, CampaignRecipient, Suppression
from campaigns.ratelimit import RateLimiter
from customers.models import Customer

from .conftest import make_campaign, make_customers, static_segment

FAST = RateLimiter(rate_per_second=100000)


pytestmark = pytest.mark.usefixtures("locmem_mail")


def _unsubscribe(customer):
    Customer.objects.filter(pk=customer.pk).update(unsubscribed_at=timezone.now(), email_marketing=False)


def _withdraw_consent(customer):
    Customer.objects.filter(pk=customer.pk).update(email_marketing=False)


def _hard_bounce(customer):
    Suppression.objects.create(email=customer.email, reason="hard_bounce")


def _complaint(customer):
    Suppression.objects.create(email=customer.email, reason="complaint")


def _erase(customer):
    # As the claim sees an erasure that raced it: the customer is erased, the row still pending.
    Customer.objects.filter(pk=customer.pk).update(erased_at=timezone.now(), email=None, first_name="")


CHANGES = {
    "unsubscribed": (_unsubscribe, "the customer unsubscribed"),
    "withdrew consent": (_withdraw_consent, "the customer withdrew marketing consent"),
    "hard bounce": (_hard_bounce, "the address is suppressed (hard bounce)"),
    "complaint": (_complaint, "the address is suppressed (complaint)"),
    "erased": (_erase, "the customer was erased"),
}


def _frozen(n, prefix="c"):
    customers = make_customers(n, prefix=prefix)
    campaign = make_campaign(static_segment(customers))
    lifecycle.campaign_send_now(campaign=campaign)
    return campaign, customers


@pytest.mark.parametrize("change", list(CHANGES))
def test_it_skips_a_recipient_who_may_no_longer_be_mailed_with_the_reason(tenant, change):
    campaign, customers = _frozen(3)
    make_change, reason = CHANGES[change]
    make_change(customers[1])

    outcome = sender.campaign_batches_send(campaign_id=campaign.pk, limiter=FAST)

    assert (outcome.sent, outcome.skipped, outcome.finished) == (2, 1, True)
    assert sorted(m.to[0] for m in mail.outbox) == ["c0@example.com", "c2@example.com"]
    # In the customers' order: the freeze's INSERT ... SELECT gives recipient ids in no set order.
    rows = CampaignRecipient.objects.filter(campaign=campaign).order_by("customer_id")
    assert [(r.status, r.error, r.attempts, r.lease_until, r.message_id) for r in rows] == [
        ("sent", "", 1, None, rows[0].message_id),
        ("skipped", reason, 0, None, ""),
        ("sent", "", 1, None, rows[2].message_id),
    ]
    assert Campaign.objects.get(pk=campaign.pk).status == "sent"


def test_it_goes_on_past_batches_of_nobody_but_skipped_recipients(tenant):
    campaign, customers = _frozen(5)
    for customer in customers[:4]:
        _unsubscribe(customer)

    outcome = sender.campaign_batches_send(campaign_id=campaign.pk, batch_size=2, limiter=FAST)

    assert (outcome.sent, outcome.skipped, outcome.batches, outcome.finished) == (1, 4, 1, True)
    assert [m.to[0] for m in mail.outbox] == ["c4@example.com"]


def test_it_checks_consent_in_the_claim_not_once_per_recipient(tenant):
    counts = []
    for n in (2, 40):
        campaign, customers = _frozen(n, prefix=f"n{n}-")
        for customer in customers[::2]:
            _unsubscribe(customer)
        with CaptureQueriesContext(connection) as queries:
            batch = sender.Store(campaign.pk).claim(limit=100, lease_seconds=60)
        assert (len(batch.claims), batch.skipped) == (n // 2, n // 2)
        counts.append(len(queries))
    assert counts[0] == counts[1]


def test_it_counts_skipped_recipients_in_the_stats_and_lists_them_with_the_reason(tenant, api):
    campaign, customers = _frozen(6)
    for name, customer in zip(CHANGES, customers[1:], strict=True):
        CHANGES[name][0](customer)
    sender.campaign_batches_send(campaign_id=campaign.pk, limiter=FAST)

    stats = api.get(f"/api/campaigns/{campaign.pk}/stats").json()
    assert {k: stats[k] for k in ("status", "recipients", "pending", "sent", "failed", "skipped")} == {
        "status": "sent",
        "recipients": 6,
        "pending": 0,
        "sent": 1,
        "failed": 0,
        "skipped": 5,
    }
    listed = api.get(f"/api/campaigns/{campaign.pk}/recipients?status=skipped").json()
    assert sorted(r["error"] for r in listed["results"]) == sorted(reason for _, reason in CHANGES.values())
    assert {r["status"] for r in listed["results"]} == {"skipped"}


def test_it_documents_the_skipped_count_and_status_in_the_api_schema(api):
    schema = api.get("/api/schema/?format=json").json()

    stats = schema["components"]["schemas"]["CampaignStats"]
    assert "skipped" in stats["required"]
    assert stats["properties"]["skipped"]["type"] == "integer"
    recipients = next(
        p
        for p in schema["paths"]["/api/campaigns/{id}/recipients"]["get"]["parameters"]
        if p["name"] == "status"
    )
    assert "skipped" in recipients["schema"]["enum"]
