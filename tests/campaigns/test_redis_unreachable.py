"""Redis unreachable: senders stop before claiming anything; beat's stall check resumes the campaign."""

import logging
from collections import Counter
from datetime import timedelta

import pytest
from django.core import mail
from django.core.cache import cache
from django.db import connection
from django.utils import timezone
from kombu.exceptions import OperationalError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from campaigns import jobs, lifecycle, sender, tasks
from campaigns.models import Campaign, CampaignRecipient
from campaigns.ratelimit import RateLimiter, RateUnavailable
from crm_project.celery import app as celery_app
from customers.models import Interaction
from tenancy.work import work_mark

from .conftest import make_campaign, make_customers, static_segment

FAST = RateLimiter(rate_per_second=100000)
PAUSED = "sending paused: Redis unreachable"


@pytest.fixture(autouse=True)
def isolated(settings, locmem_mail):
    """Mail to locmem; the cache (stall markers, rate fallback) in this process, not in a shared Redis."""
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
            "LOCATION": "redis-unreachable-tests",
            "KEY_FUNCTION": "django_tenants.cache.make_key",
            "REVERSE_KEY_FUNCTION": "django_tenants.cache.reverse_key",
        }
    }
    settings.CAMPAIGN_SEND_CONCURRENCY = 2
    settings.CAMPAIGN_STALL_SECONDS = 30

    cache.clear()


@pytest.fixture
def enqueued(monkeypatch):
    """Batch tasks sent to the broker, as (args, kwargs)."""
    calls = []
    monkeypatch.setattr(
        tasks.send_campaign_batches, "apply_async", lambda args, **kwargs: calls.append((args, kwargs))
    )
    return calls


@pytest.fixture
def resume(run_on_commit):
    """`campaigns_resume_stalled`, its after-commit enqueueing run as a commit would."""

    def call(**kwargs):
        with run_on_commit(execute=True):
            return jobs.campaigns_resume_stalled(**kwargs)

    return call


class RedisGoneAfter:
    """A rate limiter whose Redis answers `ok` reservations, then raises `error`."""

    def __init__(self, error, ok=0):
        self.error, self.ok = error, ok

    def reserve(self, n):
        limiter = self

        class Gone(RateLimiter):
            def _reserve_redis(self, n):
                if limiter.ok <= 0:
                    raise limiter.error
                limiter.ok -= 1
                return 0.0, "0"

        return Gone(rate_per_second=100000).reserve(n)


def _rows(campaign):
    return list(
        CampaignRecipient.objects.filter(campaign=campaign)
        .order_by("id")
        .values_list("email", "status", "attempts", "lease_until")
    )


def _sending_campaign(n, prefix="c"):
    campaign = make_campaign(static_segment(make_customers(n, prefix=prefix)))
    lifecycle.campaign_send_now(campaign=campaign)
    return campaign


def test_it_reports_an_unreachable_redis_when_reserving(settings):
    settings.CACHES = {
        "default": {
            "BACKEND": "core.cache.FailSoftRedisCache",
            "LOCATION": "redis://127.0.0.1:1/0",  # nothing listens on port 1: connection refused
            "OPTIONS": {"socket_connect_timeout": 1, "socket_timeout": 1},
        }
    }
    with pytest.raises(RateUnavailable, match="ConnectionError"):
        RateLimiter(rate_per_second=10, key="unreachable").reserve(5)


@pytest.mark.parametrize(
    "error", [RedisConnectionError("Connection refused"), RedisTimeoutError("Timeout reading")]
)
def test_it_claims_nothing_and_stops_when_the_rate_reservation_fails(tenant, caplog, error):
    campaign = _sending_campaign(3)
    before = _rows(campaign)
    assert [(status, attempts, lease) for _, status, attempts, lease in before] == [("pending", 0, None)] * 3

    with caplog.at_level(logging.WARNING, logger="campaigns.sender"):
        outcome = sender.campaign_batches_send(campaign_id=campaign.pk, limiter=RedisGoneAfter(error))

    assert (outcome.redis_unreachable, outcome.more, outcome.sent, outcome.batches) == (True, False, 0, 0)
    assert _rows(campaign) == before  # pending, no attempt counted, due at once: nobody waits out a lease
    assert mail.outbox == []
    assert Interaction.objects.filter(kind="email_sent").count() == 0
    assert Campaign.objects.get(pk=campaign.pk).status == "sending"
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert warnings[0].startswith(f"{PAUSED} ({type(error).__name__}: {error}); campaign {campaign.pk} in ")
    assert warnings[0].endswith(
        "claimed nothing more and resumes when the stall check finds it after Redis is back"
    )


def test_it_records_the_batch_handed_to_smtp_before_redis_went_away_and_sends_nobody_twice(tenant):
    campaign = _sending_campaign(5)

    outcome = sender.campaign_batches_send(
        campaign_id=campaign.pk, batch_size=2, limiter=RedisGoneAfter(RedisConnectionError("gone"), ok=1)
    )

    assert (outcome.redis_unreachable, outcome.sent, outcome.batches) == (True, 2, 1)
    rows = _rows(campaign)
    assert [(status, attempts, lease) for _, status, attempts, lease in rows] == [
        ("sent", 1, None),
        ("sent", 1, None),
        ("pending", 0, None),
        ("pending", 0, None),
        ("pending", 0, None),
    ]
    assert [m.to[0] for m in mail.outbox] == [rows[0][0], rows[1][0]]

    outcome = sender.campaign_batches_send(
        campaign_id=campaign.pk, batch_size=2, limiter=FAST
    )  # Redis is back

    assert (outcome.redis_unreachable, outcome.sent, outcome.finished) == (False, 3, True)
    assert Counter(m.to[0] for m in mail.outbox) == Counter({email: 1 for email, *_ in rows})
    assert Campaign.objects.get(pk=campaign.pk).status == "sent"


def test_it_resumes_a_campaign_whose_sender_stopped_for_redis_after_the_quiet_window(
    tenant, enqueued, resume
):
    campaign = _sending_campaign(3)
    sender.campaign_batches_send(
        campaign_id=campaign.pk, limiter=RedisGoneAfter(RedisConnectionError("gone"))
    )
    now = timezone.now()

    assert resume(now=now + timedelta(seconds=20)) == []  # still quiet
    assert enqueued == []
    assert resume(now=now + timedelta(seconds=31)) == [campaign.pk]
    assert enqueued == [((campaign.pk,), {"countdown": 0})] * 2  # CAMPAIGN_SEND_CONCURRENCY tasks


def test_it_does_not_pile_up_tasks_on_a_campaign_until_one_of_its_tasks_starts(
    tenant, enqueued, resume, run_on_commit, monkeypatch
):
    campaign = _sending_campaign(3)
    later = timezone.now() + timedelta(seconds=31)

    assert resume(now=later) == [campaign.pk]
    # Its tasks wait behind a busy queue: the campaign still looks stalled, nothing more is enqueued.
    assert resume(now=later + timedelta(seconds=60)) == []
    with run_on_commit(execute=True):
        assert jobs.leases_reclaim_expired(now=later + timedelta(seconds=60)) == []
    assert enqueued == [((campaign.pk,), {"countdown": 0})] * 2
    assert [status for _, status, *_ in _rows(campaign)] == ["pending"] * 3

    monkeypatch.setattr(
        sender, "campaign_batches_send", lambda campaign_id: sender.RunOutcome()
    )  # starts, then dies
    tasks.send_campaign_batches(campaign.pk)

    assert resume(now=later + timedelta(seconds=90)) == [campaign.pk]
    assert enqueued == [((campaign.pk,), {"countdown": 0})] * 4


def test_it_leaves_a_campaign_holding_a_live_lease_alone(tenant, enqueued, resume):
    campaign = _sending_campaign(3)
    batch = sender.Store(campaign.pk).claim(limit=1, lease_seconds=300)
    before = _rows(campaign)

    assert resume(now=timezone.now() + timedelta(seconds=60)) == []
    assert enqueued == []
    assert _rows(campaign) == before
    assert [row[1] for row in before] == ["sending", "pending", "pending"]
    assert len(batch.claims) == 1


def test_it_leaves_a_campaign_that_sent_within_the_quiet_window_alone(tenant, enqueued, resume):
    campaign = _sending_campaign(3)
    sender.campaign_batches_send(campaign_id=campaign.pk, batch_size=1, max_batches=1, limiter=FAST)
    now = timezone.now()

    assert resume(now=now + timedelta(seconds=20)) == []
    assert enqueued == []
    assert resume(now=now + timedelta(seconds=31)) == [campaign.pk]


def test_it_leaves_paused_campaigns_and_recipients_waiting_for_a_retry_alone(tenant, enqueued, resume):
    paused = _sending_campaign(2, prefix="p")
    lifecycle.campaign_pause(campaign=paused)
    waiting = _sending_campaign(1, prefix="w")  # its only recipient waits for a retry an hour away
    CampaignRecipient.objects.filter(campaign=waiting).update(lease_until=timezone.now() + timedelta(hours=1))

    assert resume(now=timezone.now() + timedelta(minutes=5)) == []
    assert enqueued == []


def test_it_resumes_stalled_campaigns_of_every_tenant_from_beat(
    tenant, enqueued, run_on_commit, beat_in_process
):
    campaign = _sending_campaign(2)
    # Five minutes pass: the campaign is quiet, and its stall check (marked when it started) is due.
    Campaign.objects.filter(pk=campaign.pk).update(started_at=timezone.now() - timedelta(minutes=5))
    work_mark(lifecycle.STALL_WORK, due_at=timezone.now() - timedelta(seconds=1))

    connection.set_schema_to_public()  # beat runs in public; the task visits every serving tenant
    with run_on_commit(execute=True):
        tasks.resume_stalled_campaigns()
    connection.set_tenant(tenant)

    assert enqueued == [((campaign.pk,), {"countdown": 0})] * 2


def test_it_schedules_the_stall_check_often_enough_to_resume_within_about_a_minute(settings):
    entry = celery_app.conf.beat_schedule["campaigns-resume-stalled"]
    assert entry == {"task": "campaigns.tasks.resume_stalled_campaigns", "schedule": 20.0}
    assert entry["task"] in celery_app.tasks
    assert entry["schedule"] + settings.CAMPAIGN_STALL_SECONDS <= 60


def test_it_stops_quietly_when_the_broker_is_down_after_a_batch(tenant, monkeypatch, caplog, settings):
    settings.CAMPAIGN_BATCH_SIZE = 1
    settings.CAMPAIGN_TASK_SECONDS = 0  # one batch, then the task would re-enqueue itself
    campaign = _sending_campaign(2)

    def broker_down(*args, **kwargs):
        raise OperationalError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")

    monkeypatch.setattr(tasks.send_campaign_batches, "apply_async", broker_down)
    with caplog.at_level(logging.WARNING, logger="campaigns.tasks"):
        result = tasks.send_campaign_batches(campaign.pk)

    assert result == {"sent": 1, "failed": 0, "retried": 0}
    assert [(status, attempts) for _, status, attempts, _ in _rows(campaign)] == [("sent", 1), ("pending", 0)]
    assert [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING] == [
        f"{PAUSED} (Error 111 connecting to 127.0.0.1:6379. Connection refused.); campaign {campaign.pk} "
        f"in {tenant.schema_name} resumes when the stall check finds it after Redis is back"
    ]


def test_it_does_not_re_enqueue_a_sender_that_paused_for_redis(tenant, monkeypatch, enqueued):
    campaign = _sending_campaign(2)
    run = sender.campaign_batches_send
    monkeypatch.setattr(
        sender,
        "campaign_batches_send",
        lambda campaign_id: run(
            campaign_id=campaign_id, limiter=RedisGoneAfter(RedisConnectionError("gone"))
        ),
    )

    assert tasks.send_campaign_batches(campaign.pk) == {"sent": 0, "failed": 0, "retried": 0}
    assert enqueued == []
    assert [(status, attempts) for _, status, attempts, _ in _rows(campaign)] == [("pending", 0)] * 2
