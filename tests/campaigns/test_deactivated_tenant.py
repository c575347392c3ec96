"""A deactivated tenant sends nothing more: batch tasks already queued do nothing, a run stops between
batches, and the beat loops leave it alone; once active again, sending goes on."""

from datetime import timedelta

import pytest
from django.core import mail
from django.db import connection
from django.utils import timezone

from campaigns import lifecycle, sender, tasks
from campaigns.models import Campaign, CampaignRecipient
from campaigns.ratelimit import RateLimiter
from tenancy.services import tenant_activate, tenant_deactivate
from tenancy.work import work_mark

from .conftest import claim_order, make_campaign, make_customers, static_segment

FAST = RateLimiter(rate_per_second=100000)


pytestmark = pytest.mark.usefixtures("locmem_mail")


@pytest.fixture
def enqueued(monkeypatch):
    calls = []
    monkeypatch.setattr(
        tasks.send_campaign_batches, "apply_async", lambda args, **kwargs: calls.append((args, kwargs))
    )
    return calls


def _sending(n, prefix="c"):
    campaign = make_campaign(static_segment(make_customers(n, prefix=prefix)))
    lifecycle.campaign_send_now(campaign=campaign)
    return campaign


def _statuses(campaign):
    return list(
        CampaignRecipient.objects.filter(campaign=campaign).order_by("id").values_list("status", flat=True)
    )


def test_it_makes_a_queued_batch_task_of_a_deactivated_tenant_do_nothing(tenant, enqueued):
    campaign = _sending(3)
    tenant_deactivate(tenant=tenant)

    assert tasks.send_campaign_batches(campaign.pk) == {"sent": 0, "failed": 0, "retried": 0}

    assert mail.outbox == []
    assert enqueued == []  # and it does not come back
    assert _statuses(campaign) == ["pending"] * 3
    assert Campaign.objects.get(pk=campaign.pk).status == "sending"


def test_it_stops_between_batches_when_the_tenant_is_deactivated_and_goes_on_once_active(tenant):
    campaign = _sending(4)

    class DeactivatedMidBatch:
        def __init__(self):
            self.sent = []

        def send(self, message):
            if not self.sent:
                tenant_deactivate(tenant=tenant)  # by an operator, while this batch is in flight
            self.sent.append(message.to[0])

        def reset(self):
            pass

        close = reset

    messenger = DeactivatedMidBatch()
    outcome = sender.campaign_batches_send(
        campaign_id=campaign.pk, batch_size=2, limiter=FAST, messenger=messenger
    )

    order = claim_order(campaign)
    assert (outcome.sent, outcome.batches, outcome.more) == (2, 1, False)
    assert messenger.sent == order[:2]  # the batch in flight, nothing more
    assert _statuses(campaign) == ["sent", "sent", "pending", "pending"]

    tenant_activate(tenant=tenant)
    outcome = sender.campaign_batches_send(
        campaign_id=campaign.pk, batch_size=2, limiter=FAST, messenger=messenger
    )
    assert (outcome.sent, outcome.finished) == (2, True)
    assert messenger.sent == order


def test_it_leaves_a_deactivated_tenant_out_of_the_beat_loops(
    tenant, enqueued, run_on_commit, beat_in_process
):
    due = make_campaign(static_segment(make_customers(1, prefix="due")))
    lifecycle.campaign_schedule(campaign=due, scheduled_at=timezone.now() + timedelta(minutes=5))
    Campaign.objects.filter(pk=due.pk).update(scheduled_at=timezone.now() - timedelta(seconds=1))
    stalled = _sending(2, prefix="st")
    Campaign.objects.filter(pk=stalled.pk).update(started_at=timezone.now() - timedelta(hours=1))
    held = _sending(1, prefix="held")
    CampaignRecipient.objects.filter(campaign=held).update(
        status="sending", lease_until=timezone.now() - timedelta(seconds=1)
    )
    for kind in (lifecycle.DISPATCH_WORK, lifecycle.STALL_WORK, lifecycle.LEASES_WORK):
        work_mark(kind, due_at=timezone.now() - timedelta(seconds=1))  # all of it due
    tenant_deactivate(tenant=tenant)

    connection.set_schema_to_public()  # beat runs in public and visits the serving tenants
    with run_on_commit(execute=True):
        tasks.dispatch_due_campaigns()
        tasks.resume_stalled_campaigns()
        tasks.reclaim_expired_leases()
    connection.set_tenant(tenant)

    assert Campaign.objects.get(pk=due.pk).status == "scheduled"
    assert CampaignRecipient.objects.filter(campaign=due).count() == 0
    assert enqueued == []
    assert _statuses(held) == ["sending"]
    assert mail.outbox == []
