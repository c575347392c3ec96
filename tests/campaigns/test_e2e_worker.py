"""End to end: real Celery workers (subprocesses) deliver a campaign to a real SMTP server (aiosmtpd).

Data is committed in a fresh tenant created for this module and dropped afterwards, because the
workers are other processes and see only committed rows.
"""

import email
import email.policy
import subprocess
import time
import uuid
from collections import Counter

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import connection
from django.utils import timezone
from django_tenants.utils import schema_context

from campaigns import editing
from campaigns.models import Campaign, CampaignRecipient
from campaigns.tasks import reclaim_expired_leases
from customers.models import Customer
from segments.models import Segment, SegmentMember
from tenancy.models import Tenant
from tests import processes
from tests.conftest import (
    make_api_client,
    require_service,
    throwaway_tenant_create,
    throwaway_tenant_drop,
    verified_sender_domain,
)

QUEUE = settings.CELERY_TASK_DEFAULT_QUEUE  # the queue this test run's tasks go to
BATCH = 5
LEASE = 3


@pytest.fixture(scope="module")
def sink():
    """An SMTP server that keeps every message; `delay` makes it slow so a worker can die mid-batch."""
    with processes.smtp_sink() as handler:
        yield handler


@pytest.fixture(scope="module")
def live(django_db_setup, django_db_blocker):
    """A committed tenant of its own (schema, domain, admin), dropped with everything in it afterwards."""
    require_service("redis")
    with django_db_blocker.unblock():
        created = throwaway_tenant_create("e2e", send_rate_per_second=10000)
        with schema_context(created.tenant.schema_name):
            verified_sender_domain("shop.example")  # the campaigns send from news@shop.example
        connection.set_schema_to_public()
    yield created.tenant
    with django_db_blocker.unblock():
        throwaway_tenant_drop(created.tenant)


@pytest.fixture(scope="module")
def blocker(django_db_blocker):
    return django_db_blocker


def _worker_env(sink):
    return {
        "EMAIL_HOST": "127.0.0.1",
        "EMAIL_PORT": str(sink.port),
        "MAIL_MAILER": "smtp",
        "CAMPAIGN_BATCH_SIZE": str(BATCH),
        "CAMPAIGN_LEASE_SECONDS": str(LEASE),
        "CAMPAIGN_SEND_CONCURRENCY": "2",
        "CAMPAIGN_TASK_SECONDS": "2",
        "DB_CONN_MAX_AGE": "0",
    }


class Workers(processes.CeleryWorkers):
    """Workers sending to the sink, with small batches and a short lease."""

    def __init__(self, sink):
        super().__init__(queue=QUEUE)
        self.sink = sink

    def start(self, concurrency=2):
        return super().start(env=_worker_env(self.sink), concurrency=concurrency, stderr=subprocess.PIPE)


@pytest.fixture
def workers(sink, live):
    processes.purge_queue(QUEUE)  # nothing left over from an earlier run
    sink.clear()
    sink.delay = 0.0
    pool = Workers(sink)
    yield pool
    pool.stop_all()


def _setup_campaign(live, blocker, *, n, extra=True, name="E2E"):
    """n marketable customers in a static segment (plus unsubscribed and no-consent ones); a draft."""
    tag = uuid.uuid4().hex[:6]
    with blocker.unblock(), schema_context(live.schema_name):
        customers = [
            Customer(
                email=f"r{i}-{tag}@example.com", first_name=f"Name{i}", last_name="E2E", email_marketing=True
            )
            for i in range(n)
        ]
        if extra:
            customers += [
                Customer(
                    email=f"unsub-{tag}@example.com", email_marketing=True, unsubscribed_at=timezone.now()
                ),
                Customer(email=f"noconsent-{tag}@example.com", email_marketing=False),
            ]
        customers = Customer.objects.bulk_create(customers)
        segment = Segment.objects.create(name=f"seg {tag}", kind="static")
        SegmentMember.objects.bulk_create([SegmentMember(segment=segment, customer=c) for c in customers])
        campaign = editing.campaign_create(
            name=name,
            subject="Hello {{ customer.first_name }}",
            html_body="<html><body><p>Dear {{ customer.first_name }} {{ customer.last_name }}</p>"
            '<a href="https://shop.example/new">New</a></body></html>',
            segment=segment,
            from_email="news@shop.example",
            from_name="Shop",
        )
    connection.set_schema_to_public()
    expected = {f"r{i}-{tag}@example.com" for i in range(n)}
    return campaign, expected, tag


def _campaign_state(live, blocker, campaign_id):
    with blocker.unblock(), schema_context(live.schema_name):
        status = Campaign.objects.get(pk=campaign_id).status
        rows = list(
            CampaignRecipient.objects.filter(campaign_id=campaign_id).values("email", "status", "message_id")
        )
    connection.set_schema_to_public()
    return status, rows


def _wait(predicate, timeout=30, interval=0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError("timed out waiting")


def _wait_sent(live, blocker, campaign_id, timeout=30):
    return _wait(lambda: _campaign_state(live, blocker, campaign_id)[0] == "sent", timeout=timeout)


def _api(live, blocker):
    with blocker.unblock():
        with schema_context(live.schema_name):
            user = get_user_model().objects.get(
                username=f"admin@{live.schema_name.replace('_', '-')}.localhost"
            )
        client = make_api_client(live, user)
    return client


def _post(client, blocker, path, data=None):
    with blocker.unblock():
        response = client.post(path, data or {}, format="json")
    connection.set_schema_to_public()
    return response


@pytest.mark.django_db  # also makes pytest-django set up the test database when this module runs alone
def test_it_gives_the_workers_a_tenant_of_their_own(live):
    assert Tenant.objects.get(pk=live.pk).send_rate_per_second == 10000


def test_it_delivers_exactly_one_rfc_compliant_personalised_message_per_recipient(
    live, blocker, workers, sink
):
    n = 24
    campaign, expected, tag = _setup_campaign(live, blocker, n=n)
    workers.start()
    client = _api(live, blocker)

    assert _post(client, blocker, f"/api/campaigns/{campaign.pk}/send").status_code == 202
    assert _post(client, blocker, f"/api/campaigns/{campaign.pk}/send").status_code == 409
    _wait_sent(live, blocker, campaign.pk)

    assert sink.by_address() == Counter({address: 1 for address in expected})
    message_ids = set()
    for rcpts, raw in sink.messages:
        parsed = email.parser.BytesParser(policy=email.policy.default).parsebytes(raw)
        assert parsed.defects == []
        assert parsed.get_content_type() == "multipart/alternative"
        assert [p.get_content_type() for p in parsed.iter_parts()] == ["text/plain", "text/html"]
        assert parsed["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        assert (
            parsed["List-Unsubscribe"]
            .strip()
            .startswith(f"<http://{live.schema_name.replace('_', '-')}.localhost:")
        )
        assert parsed["Message-ID"].endswith("@shop.example>")
        number = rcpts[0].split("-")[0][1:]
        assert parsed["Subject"] == f"Hello Name{number}"
        assert f"Dear Name{number} E2E" in parsed.get_body(("html",)).get_content()
        assert f"Dear Name{number} E2E" in parsed.get_body(("plain",)).get_content()
        assert "/t/c/" in parsed.get_body(("html",)).get_content()
        assert "/t/o/" in parsed.get_body(("html",)).get_content()
        message_ids.add(parsed["Message-ID"])
    assert len(message_ids) == n
    status, rows = _campaign_state(live, blocker, campaign.pk)
    assert {row["status"] for row in rows} == {"sent"}
    assert {row["message_id"] for row in rows} == message_ids
    assert f"unsub-{tag}@example.com" not in sink.by_address()
    assert f"noconsent-{tag}@example.com" not in sink.by_address()


def test_it_loses_nobody_when_a_worker_is_killed_mid_batch(live, blocker, workers, sink):
    n = 40
    campaign, expected, _ = _setup_campaign(live, blocker, n=n, extra=False, name="Crash")
    sink.delay = 0.05  # 5 per batch: a batch takes ~0.25 s, so the kill lands inside one
    first = workers.start()
    client = _api(live, blocker)
    assert _post(client, blocker, f"/api/campaigns/{campaign.pk}/send").status_code == 202
    _wait(lambda: len(sink.messages) >= 8, timeout=30, interval=0.02)
    workers.kill(first)
    _, rows = _campaign_state(live, blocker, campaign.pk)
    in_flight = {row["email"] for row in rows if row["status"] == "sending"}
    received_before = sink.by_address()
    assert 0 < sum(received_before.values()) < n
    assert in_flight  # the premise: the worker died holding a batch

    sink.delay = 0.0
    workers.start()
    time.sleep(LEASE + 0.5)  # the killed worker's leases run out
    reclaim_expired_leases.delay()  # what beat does every two minutes
    _wait_sent(live, blocker, campaign.pk)

    _, rows = _campaign_state(live, blocker, campaign.pk)
    assert {row["status"] for row in rows} == {"sent"}
    received = sink.by_address()
    assert set(received) == expected  # nobody skipped
    duplicates = {address for address, count in received.items() if count > 1}
    assert duplicates <= in_flight  # only the killed worker's in-flight batch was sent twice
    assert all(count <= 2 for count in received.values())
    ids_by_address = {}
    for rcpts, raw in sink.messages:
        parsed = email.parser.BytesParser(policy=email.policy.default).parsebytes(raw, headersonly=True)
        ids_by_address.setdefault(rcpts[0], set()).add(parsed["Message-ID"])
    assert all(len(ids) == 1 for ids in ids_by_address.values())  # a resend carries the same Message-ID


def test_it_sends_no_duplicates_with_two_workers_and_pause_resume(live, blocker, workers, sink):
    n = 60
    campaign, expected, _ = _setup_campaign(live, blocker, n=n, extra=False, name="Two workers")
    sink.delay = 0.01
    workers.start()
    workers.start()
    client = _api(live, blocker)
    assert _post(client, blocker, f"/api/campaigns/{campaign.pk}/send").status_code == 202
    _wait(lambda: len(sink.messages) >= 10, interval=0.02)
    assert _post(client, blocker, f"/api/campaigns/{campaign.pk}/pause").status_code == 200
    time.sleep(1.0)  # batches in flight finish; no new batch starts
    paused_count = len(sink.messages)
    time.sleep(0.7)
    assert len(sink.messages) == paused_count < n
    status, _ = _campaign_state(live, blocker, campaign.pk)
    assert status == "paused"

    assert _post(client, blocker, f"/api/campaigns/{campaign.pk}/resume").status_code == 200
    _wait_sent(live, blocker, campaign.pk)
    assert sink.by_address() == Counter({address: 1 for address in expected})


# Exactly once past the lease: 200 recipients, an SMTP server that takes 0.4 s per message, a tenant
# rate of 10 messages/s, batches of 10 under a 2-second lease (every batch takes about twice its
# lease), four batch tasks on two workers, and the reclaimer's beat task run every half second.
SLOW_RECIPIENTS = 200
SLOW_BATCH = 10
SLOW_LEASE = 2
SLOW_RATE = 10
RELAY_SECONDS = 0.4
SLOW_SENDERS = 4


def _reclaim(blocker):
    """What beat runs: every serving tenant's expired leases back to pending (and fresh batch tasks)."""
    with blocker.unblock():
        connection.set_schema_to_public()
        reclaim_expired_leases()
        connection.set_schema_to_public()


def test_it_sends_everyone_exactly_once_when_every_batch_outlives_its_lease(
    live, blocker, workers, sink, settings
):
    assert RELAY_SECONDS * SLOW_BATCH > 1.5 * SLOW_LEASE  # the premise: batches outlive their lease
    settings.CAMPAIGN_SEND_CONCURRENCY = SLOW_SENDERS  # the batch tasks the send call enqueues
    with blocker.unblock():
        Tenant.objects.filter(pk=live.pk).update(send_rate_per_second=SLOW_RATE)
    campaign, expected, _ = _setup_campaign(live, blocker, n=SLOW_RECIPIENTS, extra=False, name="Slow relay")
    sink.delay = RELAY_SECONDS
    env = {
        **_worker_env(sink),
        "CAMPAIGN_BATCH_SIZE": str(SLOW_BATCH),
        "CAMPAIGN_LEASE_SECONDS": str(SLOW_LEASE),
        "CAMPAIGN_SEND_CONCURRENCY": str(SLOW_SENDERS),
        "CAMPAIGN_TASK_SECONDS": "10",
    }
    try:
        for _ in range(2):
            processes.CeleryWorkers.start(workers, env=env, concurrency=2, stderr=subprocess.PIPE)
        client = _api(live, blocker)
        assert _post(client, blocker, f"/api/campaigns/{campaign.pk}/send").status_code == 202

        deadline = time.monotonic() + 180
        status = "sending"
        while status != "sent" and time.monotonic() < deadline:
            _reclaim(blocker)
            time.sleep(0.5)
            status, _ = _campaign_state(live, blocker, campaign.pk)
        time.sleep(SLOW_LEASE)  # a late duplicate would arrive now
    finally:
        with blocker.unblock():
            Tenant.objects.filter(pk=live.pk).update(send_rate_per_second=10000)
        connection.set_schema_to_public()

    received = sink.by_address()
    duplicates = {address: count for address, count in received.items() if count > 1}
    assert duplicates == {}, f"{len(duplicates)} recipients got more than one message"
    assert received == Counter({address: 1 for address in expected})
    message_ids = Counter(
        email.parser.BytesParser(policy=email.policy.default).parsebytes(raw, headersonly=True)["Message-ID"]
        for _, raw in sink.messages
    )
    assert len(message_ids) == SLOW_RECIPIENTS and set(message_ids.values()) == {1}
    status, rows = _campaign_state(live, blocker, campaign.pk)
    assert status == "sent"
    assert Counter(row["status"] for row in rows) == Counter({"sent": SLOW_RECIPIENTS})
    assert {row["message_id"] for row in rows} == set(message_ids)
