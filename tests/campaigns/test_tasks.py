"""Beat tasks (due campaigns, lease reclaiming) and the per-tenant rate limit shared through Redis."""

import time
import uuid
from datetime import timedelta

from django.db import connection
from django.utils import timezone

from campaigns import jobs, lifecycle, tasks
from campaigns.models import Campaign, CampaignRecipient
from campaigns.ratelimit import Pacer, RateLimiter
from tenancy.work import work_mark

from .conftest import make_campaign, make_customers, static_segment


def test_it_starts_due_campaigns_across_tenants_from_beat(tenant, run_on_commit, beat_in_process):
    campaign = make_campaign(static_segment(make_customers(2)))
    lifecycle.campaign_schedule(campaign=campaign, scheduled_at=timezone.now() + timedelta(minutes=5))
    later = make_campaign(static_segment(make_customers(1, prefix="l")))
    lifecycle.campaign_schedule(campaign=later, scheduled_at=timezone.now() + timedelta(days=1))
    # Five minutes pass: the campaign and its marker are due.
    due = timezone.now() - timedelta(seconds=1)
    Campaign.objects.filter(pk=campaign.pk).update(scheduled_at=due)
    work_mark(lifecycle.DISPATCH_WORK, due_at=due)

    connection.set_schema_to_public()  # beat runs in public; a task for each tenant with due work
    assert tasks.dispatch_due_campaigns() == 1
    connection.set_tenant(tenant)

    assert Campaign.objects.get(pk=campaign.pk).status == "sending"
    assert CampaignRecipient.objects.filter(campaign=campaign).count() == 2
    assert Campaign.objects.get(pk=later.pk).status == "scheduled"
    assert CampaignRecipient.objects.filter(campaign=later).count() == 0


def test_it_reclaims_expired_leases_from_beat_and_finishes_forgotten_campaigns(tenant, beat_in_process):
    campaign = make_campaign(static_segment(make_customers(2)))
    lifecycle.campaign_send_now(campaign=campaign)
    # A worker claimed the rows and died; its lease ran out (and with it the reclaimer's marker came due).
    expired = timezone.now() - timedelta(seconds=1)
    CampaignRecipient.objects.filter(campaign=campaign).update(status="sending", lease_until=expired)
    work_mark(lifecycle.LEASES_WORK, due_at=expired)
    done = make_campaign(static_segment(make_customers(1, prefix="d")))
    lifecycle.campaign_send_now(campaign=done)
    CampaignRecipient.objects.filter(campaign=done).update(status="sent", sent_at=timezone.now())

    connection.set_schema_to_public()
    tasks.reclaim_expired_leases()
    connection.set_tenant(tenant)

    assert set(CampaignRecipient.objects.filter(campaign=campaign).values_list("status", flat=True)) == {
        "pending"
    }
    assert Campaign.objects.get(pk=campaign.pk).status == "sending"
    assert Campaign.objects.get(pk=done.pk).status == "sent"


def test_it_restarts_a_stalled_campaign_that_holds_no_lease(tenant):
    campaign = make_campaign(static_segment(make_customers(2)))
    lifecycle.campaign_send_now(campaign=campaign)
    Campaign.objects.filter(pk=campaign.pk).update(started_at=timezone.now() - timedelta(hours=1))
    assert jobs.leases_reclaim_expired(now=timezone.now()) == [campaign.pk]
    fresh = make_campaign(static_segment(make_customers(1, prefix="f")))
    lifecycle.campaign_send_now(campaign=fresh)
    assert fresh.pk not in jobs.leases_reclaim_expired(now=timezone.now())  # just started: not stalled


def test_it_paces_messages_within_a_reservation():
    slept = []
    pacer = Pacer(start=10.0, interval=0.5, sleep=slept.append, clock=lambda: 10.2)
    for index in range(3):
        pacer.wait(index)
    assert slept == [0.30000000000000071, 0.8000000000000007]


def test_it_shares_the_rate_across_workers_through_redis(tenant, redis_service):
    key = f"test-rate-{uuid.uuid4().hex}"
    first, second = RateLimiter(rate_per_second=100, key=key), RateLimiter(rate_per_second=100, key=key)
    before = time.monotonic()
    a = first.reserve(50)  # 0.5 s of slots
    b = second.reserve(50)  # the next 0.5 s: another worker waits for them
    assert a.start - before < 0.05
    assert 0.45 < b.start - before < 0.6
    assert a.interval == b.interval == 0.01
