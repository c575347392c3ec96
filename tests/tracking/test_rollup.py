from datetime import timedelta
from unittest import mock

import psycopg
import pytest
from django.db import connection
from django.utils import timezone
from django_tenants.utils import schema_context

from campaigns.models import CampaignRecipient
from crm_project.celery import app
from events.models import OutboxEvent
from tests.processes import database_url
from tracking.hits import hit_record_open, hits_prune
from tracking.models import CampaignStats, Hit
from tracking.rollup import ROLLUP_LOCK_NAMESPACE, hits_rollup
from tracking.tasks import prune_hits_all_tenants, rollup_all_tenants

from .conftest import HUMAN_AGENT, make_sent_campaign


def _open(tenant, recipient, times=1):
    for _ in range(times):
        assert hit_record_open(tenant=tenant, recipient_id=recipient.pk, user_agent=HUMAN_AGENT)


def test_it_counts_repeated_opens_once_as_unique(tenant, sent):
    _open(tenant, sent.recipients[0], times=4)
    _open(tenant, sent.recipients[1])
    result = hits_rollup()
    assert (result.hits, result.new_opens) == (5, 2)
    stats = CampaignStats.objects.get(pk=sent.campaign.pk)
    assert (stats.opens, stats.unique_opens) == (5, 2)
    assert OutboxEvent.objects.filter(type="email.opened").count() == 2


def test_it_works_through_the_backlog_in_batches(tenant, sent):
    _open(tenant, sent.recipients[0], times=5)
    result = hits_rollup(batch_size=2)
    assert (result.hits, result.batches) == (5, 3)
    assert not Hit.objects.filter(processed_at__isnull=True).exists()
    assert CampaignStats.objects.get(pk=sent.campaign.pk).opens == 5


def test_it_steps_aside_while_another_roll_up_of_the_tenant_runs(tenant, sent):
    _open(tenant, sent.recipients[0])
    other = psycopg.connect(database_url(), autocommit=True)
    try:
        other.execute(
            "SELECT pg_advisory_lock(%s, hashtext(%s))", [ROLLUP_LOCK_NAMESPACE, tenant.schema_name]
        )
        result = hits_rollup()
        assert (result.locked_out, result.hits) == (True, 0)
        assert Hit.objects.get().processed_at is None
        assert not CampaignStats.objects.exists()
    finally:
        # Unlock explicitly: closing alone releases the lock only once the server notices.
        other.execute("SELECT pg_advisory_unlock_all()")
        other.close()
    assert hits_rollup().hits == 1


def test_it_keeps_hits_for_the_next_run_when_a_batch_fails(tenant, sent):
    _open(tenant, sent.recipients[0], times=2)
    with mock.patch("tracking.rollup.event_emit", side_effect=RuntimeError("outbox unavailable")):
        with pytest.raises(RuntimeError):
            hits_rollup()
    assert Hit.objects.filter(processed_at__isnull=True).count() == 2
    assert not CampaignStats.objects.exists()
    assert CampaignRecipient.objects.get(pk=sent.recipients[0].pk).first_opened_at is None
    assert hits_rollup().hits == 2
    assert CampaignStats.objects.get(pk=sent.campaign.pk).unique_opens == 1


def test_the_beat_task_rolls_up_every_tenant_with_hits(tenant, other_tenant, sent, beat_in_process):
    _open(tenant, sent.recipients[0])
    with schema_context(other_tenant.schema_name):
        theirs = make_sent_campaign(name="B's", emails=("zed@example.com",))
        _open(other_tenant, theirs.recipients[0], times=2)
    connection.set_schema_to_public()  # beat runs in public
    assert rollup_all_tenants() == 2  # one roll-up task per tenant with hits
    connection.set_tenant(tenant)
    assert not Hit.objects.filter(processed_at__isnull=True).exists()
    assert CampaignStats.objects.get(pk=sent.campaign.pk).opens == 1
    with schema_context(other_tenant.schema_name):
        assert CampaignStats.objects.get(pk=theirs.campaign.pk).opens == 2
        assert OutboxEvent.objects.filter(type="email.opened", tenant=other_tenant.schema_name).count() == 1
    assert connection.schema_name == tenant.schema_name


def test_the_beat_task_is_the_one_the_schedule_names():
    assert app.conf.beat_schedule["tracking-rollup"]["task"] == rollup_all_tenants.name
    assert rollup_all_tenants.name in app.tasks


def test_it_prunes_counted_hits_past_retention_and_keeps_the_rest(tenant, sent):
    old = timezone.now() - timedelta(days=200)
    CampaignRecipient.objects.filter(campaign=sent.campaign).update(sent_at=old - timedelta(hours=1))
    for _ in range(3):
        hit_record_open(
            tenant=tenant, recipient_id=sent.recipients[0].pk, user_agent=HUMAN_AGENT, occurred_at=old
        )
    hits_rollup()
    uncounted_old = hit_record_open(
        tenant=tenant, recipient_id=sent.recipients[1].pk, user_agent=HUMAN_AGENT, occurred_at=old
    )
    assert uncounted_old
    _open(tenant, sent.recipients[2])
    assert hits_prune(older_than=timedelta(days=180), chunk=2) == 3
    assert sorted(Hit.objects.values_list("recipient_id", flat=True)) == [
        sent.recipients[1].pk,
        sent.recipients[2].pk,
    ]
    assert CampaignStats.objects.get(pk=sent.campaign.pk).opens == 3


def test_the_prune_task_is_scheduled(tenant):
    assert app.conf.beat_schedule["tracking-prune-hits"]["task"] == prune_hits_all_tenants.name
    connection.set_schema_to_public()
    assert prune_hits_all_tenants() == 0  # no tenant has hits past their retention


def test_it_skips_hits_of_a_campaign_deleted_since(tenant, sent):
    _open(tenant, sent.recipients[0], times=2)
    other = make_sent_campaign(name="Kept", emails=("kept@example.com",))
    _open(tenant, other.recipients[0])
    sent.campaign.delete()
    result = hits_rollup()
    assert result.hits == 3
    assert not Hit.objects.filter(processed_at__isnull=True).exists()
    assert list(CampaignStats.objects.values_list("campaign_id", "opens")) == [(other.campaign.pk, 1)]
