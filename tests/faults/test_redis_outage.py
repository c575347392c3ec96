"""Redis stopped: the API answers and tracking keeps recording (the cache fails soft); sending pauses
and resumes by itself once Redis is back, nobody sent twice or skipped."""

import subprocess
import time
from collections import Counter
from datetime import timedelta
from urllib.parse import urlsplit

import pytest
from django.conf import settings
from django.core.cache import cache
from django.db import connection
from django.db.models import Count
from django.utils import timezone
from django_tenants.utils import schema_context

from campaigns import editing, lifecycle
from campaigns.models import Campaign, CampaignRecipient
from campaigns.tasks import resume_stalled_campaigns
from campaigns.tokens import make_token
from crm_project.celery import app
from customers.models import Customer
from events.models import OutboxEvent
from segments.models import Segment, SegmentMember
from tenancy.models import Tenant
from tests.conftest import verified_sender_domain
from tests.faults.conftest import require_root_control
from tracking.models import Hit

# Each test stops a server every test process shares: they run alone, after the parallel phase.
pytestmark = pytest.mark.serial


def _port():
    return urlsplit(settings.REDIS_URL).port or 6379


def _redis_start():
    subprocess.run(
        [
            "redis-server",
            "--daemonize",
            "yes",
            "--bind",
            "127.0.0.1",
            "--port",
            str(_port()),
            "--save",
            "",
            "--appendonly",
            "no",
        ],
        check=True,
    )


def _redis_up():
    result = subprocess.run(["redis-cli", "-p", str(_port()), "ping"], capture_output=True, text=True)
    return result.stdout.strip() == "PONG"


def _redis_stop():
    subprocess.run(["redis-cli", "-p", str(_port()), "shutdown", "nosave"], capture_output=True)


def _redis_restart():
    _redis_start()
    for _ in range(50):
        if _redis_up():
            return
        time.sleep(0.1)


def _wait(predicate, *, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def test_it_keeps_serving_the_api_and_tracking_without_redis(
    committed_tenant, gunicorn_server, redis_service
):
    require_root_control("redis-server")
    gunicorn_server.login("ops@fault.example", "fault-pass-123")
    with schema_context(committed_tenant.schema_name):
        customer = Customer.objects.create(email="reader@fault.example", email_marketing=True)
        campaign = Campaign.objects.create(name="Outage", subject="Hi", status="sent")
        recipient = CampaignRecipient.objects.create(
            campaign=campaign,
            customer=customer,
            email=customer.email,
            status="sent",
            sent_at=timezone.now() - timedelta(hours=1),
        )
        open_token = make_token("o", recipient.id)
    _redis_stop()
    try:
        time.sleep(0.5)
        assert not _redis_up()
        assert gunicorn_server.get("/api/customers").status_code == 200
        pixel = gunicorn_server.get(
            f"/t/o/{open_token}", headers={"User-Agent": "Mozilla/5.0 (Windows NT 10.0)"}
        )
        assert pixel.status_code == 200 and pixel.headers["Content-Type"] == "image/gif"
        with schema_context(committed_tenant.schema_name):
            assert Hit.objects.filter(recipient_id=recipient.id).count() == 1
        health = gunicorn_server.get("/healthz")
        assert health.status_code == 503 and health.json()["checks"]["redis"]["ok"] is False
        assert cache.get("anything", "fallback") == "fallback"
    finally:
        _redis_restart()
    assert _redis_up()
    assert gunicorn_server.get("/healthz").status_code == 200


@pytest.mark.django_db  # also makes pytest-django set up the test database when this module runs alone
def test_it_stops_the_broker_and_the_rate_reservations_with_one_redis():
    """The premise of the sending test below: one Redis is both the Celery broker and the cache that
    keeps the send-rate reservations, so stopping it takes both away."""
    assert settings.CELERY_BROKER_URL == settings.REDIS_URL
    assert settings.CACHES["default"]["LOCATION"] == settings.REDIS_URL
    assert settings.CACHES["default"]["BACKEND"] == "core.cache.FailSoftRedisCache"


RECIPIENTS = 300
RATE = 20  # messages per second for the tenant: the campaign takes ~15 s of sending
BATCH = 10  # half a second of sending per batch at RATE
STALL_SECONDS = 2  # the workers' quiet window before a campaign counts as stalled (30 s in production)


def _campaign_setup(tenant):
    Tenant.objects.filter(pk=tenant.pk).update(send_rate_per_second=RATE)
    with schema_context(tenant.schema_name):
        customers = Customer.objects.bulk_create(
            Customer(email=f"r{i}@outage.example", first_name=f"R{i}", email_marketing=True)
            for i in range(RECIPIENTS)
        )
        segment = Segment.objects.create(name="Outage audience", kind="static")
        SegmentMember.objects.bulk_create(SegmentMember(segment=segment, customer=c) for c in customers)
        verified_sender_domain("outage.example")
        campaign = editing.campaign_create(
            name="Outage",
            subject="Hello {{ customer.first_name }}",
            html_body="<p>Dear {{ customer.first_name }}</p>",
            segment=segment,
            from_email="news@outage.example",
        )
    return campaign


def _settled_count(sink, *, quiet, timeout):
    """The sink's count once it has not changed for `quiet` seconds."""
    deadline = time.monotonic() + timeout
    count, since = sink.count(), time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.05)
        if sink.count() != count:
            count, since = sink.count(), time.monotonic()
        elif time.monotonic() - since >= quiet:
            return count
    raise AssertionError(f"deliveries went on for {timeout} s after Redis stopped")


def _campaign_state(tenant, campaign_id):
    """(campaign status, {recipient status: count})."""
    with schema_context(tenant.schema_name):
        status = Campaign.objects.get(pk=campaign_id).status
        counts = dict(
            CampaignRecipient.objects.filter(campaign_id=campaign_id)
            .values_list("status")
            .annotate(n=Count("id"))
            .values_list("status", "n")
        )
    return status, counts


@pytest.mark.timeout(120)  # the sequence itself is bounded below 60 s; this also covers creating the tenant
def test_it_pauses_sending_while_redis_is_down_and_resumes_when_it_is_back(
    committed_tenant, redis_service, smtp_sink, celery_workers
):
    """A real Celery worker sends a 300-recipient campaign at 20 messages/s to an aiosmtpd sink; Redis
    (broker and rate reservations) is stopped mid-campaign and restarted empty, losing every queued
    task message. Beat is not run: once Redis is back and the worker has reconnected (and, with
    nothing queued any more, sent nothing), the test calls the beat task `resume_stalled_campaigns`
    itself (`.delay()`, as beat does every 20 s), with the workers' quiet window shortened to 2 s so
    the test does not wait out the production 30 s."""
    require_root_control("redis-server")

    started = time.monotonic()
    campaign = _campaign_setup(committed_tenant)
    celery_workers.start(
        env={
            "EMAIL_HOST": "127.0.0.1",
            "EMAIL_PORT": str(smtp_sink.port),
            "MAIL_MAILER": "smtp",
            "CAMPAIGN_BATCH_SIZE": str(BATCH),
            "CAMPAIGN_SEND_CONCURRENCY": "2",
            "CAMPAIGN_TASK_SECONDS": "5",
            "CAMPAIGN_STALL_SECONDS": str(STALL_SECONDS),
            "DB_CONN_MAX_AGE": "0",
        },
    )
    try:
        with schema_context(committed_tenant.schema_name):
            lifecycle.campaign_send_now(campaign=campaign)  # autocommit: the batch tasks go out at once
        connection.set_schema_to_public()
        _wait(lambda: smtp_sink.count() >= 60, timeout=20, what="the first 60 deliveries")

        _redis_stop()
        try:
            assert not _redis_up()
            at_stop = smtp_sink.count()
            # Batches already reserved finish (2 workers x BATCH messages, ~1 s at RATE), then each
            # sender finds Redis unreachable and gives its claims back.
            settled = _settled_count(smtp_sink, quiet=1.0, timeout=8)
            time.sleep(3.0)
            assert smtp_sink.count() == settled  # nothing more while Redis is down
            assert 60 <= at_stop <= settled <= at_stop + 2 * BATCH < RECIPIENTS
            status, counts = _campaign_state(committed_tenant, campaign.pk)
            # Every delivered message is recorded as sent; nothing is held under a lease.
            assert (status, counts) == ("sending", {"sent": settled, "pending": RECIPIENTS - settled})
        finally:
            _redis_restart()
        assert _redis_up()

        _wait(lambda: app.control.ping(timeout=0.5), timeout=20, what="the worker to reconnect")
        time.sleep(1.0)
        # The queued batch tasks were lost with Redis: nothing resumes on its own.
        assert smtp_sink.count() == settled
        assert _campaign_state(committed_tenant, campaign.pk)[1] == {
            "sent": settled,
            "pending": RECIPIENTS - settled,
        }
        resume_stalled_campaigns.delay()  # what beat does every 20 s
        _wait(
            lambda: _campaign_state(committed_tenant, campaign.pk)[0] == "sent",
            timeout=30,
            what="the campaign to be sent",
        )
        assert time.monotonic() - started < 60

        status, counts = _campaign_state(committed_tenant, campaign.pk)
        assert (status, counts) == ("sent", {"sent": RECIPIENTS})
        delivered = smtp_sink.by_address()
        assert delivered == Counter({f"r{i}@outage.example": 1 for i in range(RECIPIENTS)})
        assert smtp_sink.count() == RECIPIENTS
    finally:
        celery_workers.stop_all()
        connection.set_schema_to_public()
        OutboxEvent.objects.filter(tenant=committed_tenant.schema_name).delete()
