"""Periodic work visits only the tenants that have work (tenancy/work.py): markers written when work
appears, one statement per tick whatever the number of idle tenants, a busy tenant never delaying
another, and the sweep repairing a lost marker so that no work is lost."""

from datetime import timedelta

import pytest
from django.conf import settings
from django.db import connection
from django.db.models import Max
from django.utils import timezone
from django_tenants.utils import schema_context

from campaigns import lifecycle, sender
from campaigns import tasks as campaign_tasks
from campaigns.models import Campaign, CampaignRecipient
from crm_project.celery import app
from tenancy.models import Tenant, TenantWork
from tenancy.tasks import sweep_periodic_work
from tenancy.work import (
    COALESCE_SECONDS,
    GRACE_SECONDS,
    KINDS,
    work_claim_due,
    work_done,
    work_fan_out,
    work_mark,
    work_mark_soon,
    work_pending,
    work_sweep,
)
from tests.campaigns.conftest import make_campaign, make_customers, static_segment
from tests.tracking.conftest import HUMAN_AGENT, make_sent_campaign
from tracking import tasks as tracking_tasks
from tracking.hits import PRUNE_WORK, hit_record_open
from tracking.models import CampaignStats, Hit
from tracking.rollup import ROLLUP_WORK

BEAT_TASKS = (
    campaign_tasks.dispatch_due_campaigns,
    campaign_tasks.resume_stalled_campaigns,
    campaign_tasks.reclaim_expired_leases,
    tracking_tasks.rollup_all_tenants,
    tracking_tasks.prune_hits_all_tenants,
)


def _in_public(fn, *args, **kwargs):
    """Call `fn` as beat does (from the public schema) and come back to the tenant."""
    tenant = connection.tenant
    connection.set_schema_to_public()
    try:
        return fn(*args, **kwargs)
    finally:
        connection.set_tenant(tenant)


def _settle():
    """django-tenants sets the search path lazily, with the next statement: set it before counting."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")


def _raw_hit(recipient):
    """A hit as the hit path writes it, without its marker: the process died between the two."""
    return Hit.objects.create(
        kind="o", campaign_id=recipient.campaign_id, recipient_id=recipient.pk, user_agent=HUMAN_AGENT
    )


def _idle_tenants(count):
    """Tenant rows without schemas: a tick that visited any of them would fail on the missing schema."""
    Tenant.objects.bulk_create(
        [Tenant(schema_name=f"idle_{number:04d}", name=f"Idle {number}") for number in range(count)]
    )


# --- markers are written when work appears ---------------------------------------------------------


def test_it_marks_the_roll_up_when_a_hit_is_recorded(tenant):
    sent = make_sent_campaign()
    assert work_pending() == {}
    before = timezone.now()
    assert hit_record_open(tenant=tenant, recipient_id=sent.recipients[0].pk, user_agent=HUMAN_AGENT)
    pending = work_pending()
    assert list(pending) == [ROLLUP_WORK]
    assert before - timedelta(seconds=1) < pending[ROLLUP_WORK] <= timezone.now()


def test_it_marks_a_scheduled_campaigns_start_and_keeps_the_earliest(tenant):
    later, sooner = timezone.now() + timedelta(days=2), timezone.now() + timedelta(hours=3)
    first = make_campaign(static_segment(make_customers(1)))
    lifecycle.campaign_schedule(campaign=first, scheduled_at=later)
    assert work_pending() == {lifecycle.DISPATCH_WORK: later}
    second = make_campaign(static_segment(make_customers(1, prefix="s")))
    lifecycle.campaign_schedule(campaign=second, scheduled_at=sooner)
    assert work_pending() == {lifecycle.DISPATCH_WORK: sooner}
    lifecycle.campaign_schedule(
        campaign=make_campaign(static_segment(make_customers(1, prefix="t"))), scheduled_at=later
    )
    assert work_pending() == {lifecycle.DISPATCH_WORK: sooner}


def test_it_marks_the_stall_check_and_the_reclaimer_when_a_campaign_starts_sending(tenant):
    campaign = make_campaign(static_segment(make_customers(2)))
    lifecycle.campaign_send_now(campaign=campaign)
    pending = work_pending()
    assert set(pending) == {lifecycle.STALL_WORK, lifecycle.LEASES_WORK}
    assert all(due <= timezone.now() for due in pending.values())  # the next ticks look at it


def test_it_marks_the_reclaimer_for_when_a_claims_lease_could_run_out(tenant):
    campaign = make_campaign(static_segment(make_customers(2)))
    lifecycle.campaign_send_now(campaign=campaign)
    TenantWork.objects.all().delete()
    before = timezone.now()
    batch = sender.Store(campaign.pk).claim(limit=2, lease_seconds=90)
    assert len(batch.claims) == 2
    due = work_pending()[lifecycle.LEASES_WORK]
    held_until = CampaignRecipient.objects.filter(campaign=campaign).aggregate(m=Max("lease_until"))["m"]
    assert before + timedelta(seconds=90) < due and held_until < due < held_until + timedelta(seconds=5)


def test_it_marks_each_tenant_for_itself(tenant, other_tenant):
    work_mark(ROLLUP_WORK)
    assert work_pending(tenant=other_tenant) == {}
    with schema_context(other_tenant.schema_name):
        work_mark(PRUNE_WORK)
    assert set(work_pending(tenant=tenant)) == {ROLLUP_WORK}
    assert set(work_pending(tenant=other_tenant)) == {PRUNE_WORK}


def test_it_writes_the_hit_paths_marker_at_most_once_a_second_per_process(
    tenant, django_capture_on_commit_callbacks, django_assert_num_queries
):
    now = [1000.0]
    clock = lambda: now[0]  # noqa: E731
    _settle()
    with django_capture_on_commit_callbacks(execute=True):
        with django_assert_num_queries(1):
            assert work_mark_soon(ROLLUP_WORK, clock=clock)
    for step in (0.2, 0.5, 0.9):
        now[0] = 1000.0 + step * COALESCE_SECONDS
        with django_assert_num_queries(0):
            assert not work_mark_soon(ROLLUP_WORK, clock=clock)
    now[0] = 1000.0 + COALESCE_SECONDS
    with django_capture_on_commit_callbacks(execute=True), django_assert_num_queries(1):
        assert work_mark_soon(ROLLUP_WORK, clock=clock)


def test_it_writes_the_marker_again_when_the_first_one_was_rolled_back(tenant):
    # Inside the test's transaction nothing commits: a mark never remembered is never skipped.
    assert work_mark_soon(ROLLUP_WORK, clock=lambda: 5.0)
    assert work_mark_soon(ROLLUP_WORK, clock=lambda: 5.1)


# --- ticks: one statement, whatever the number of idle tenants ------------------------------------


def test_a_tick_over_idle_tenants_is_one_statement_and_visits_none_of_them(
    tenant, django_assert_max_num_queries
):
    _idle_tenants(300)
    connection.set_schema_to_public()
    _settle()
    for beat_task in BEAT_TASKS:
        with django_assert_max_num_queries(1):
            assert beat_task() == 0, beat_task.name
    connection.set_tenant(tenant)


def test_a_tick_costs_the_same_statement_with_active_tenants_among_idle_ones(
    tenant, other_tenant, django_assert_max_num_queries, monkeypatch
):
    _idle_tenants(300)
    work_mark(ROLLUP_WORK)
    with schema_context(other_tenant.schema_name):
        work_mark(ROLLUP_WORK)
    sent = []
    monkeypatch.setattr(
        tracking_tasks.rollup_tenant_hits, "apply_async", lambda **kwargs: sent.append(kwargs["headers"])
    )
    connection.set_schema_to_public()
    _settle()
    with django_assert_max_num_queries(1):
        assert tracking_tasks.rollup_all_tenants() == 2
    with django_assert_max_num_queries(1):
        assert tracking_tasks.rollup_all_tenants() == 0  # claimed: no second task while the first runs
    connection.set_tenant(tenant)
    assert sorted(headers["_schema_name"] for headers in sent) == [
        tenant.schema_name,
        other_tenant.schema_name,
    ]


def test_it_leaves_deactivated_tenants_markers_waiting(tenant, other_tenant):
    with schema_context(other_tenant.schema_name):
        work_mark(ROLLUP_WORK)
    Tenant.objects.filter(pk=other_tenant.pk).update(is_active=False)
    assert _in_public(work_claim_due, ROLLUP_WORK) == []
    Tenant.objects.filter(pk=other_tenant.pk).update(is_active=True)
    assert [claim.schema_name for claim in _in_public(work_claim_due, ROLLUP_WORK)] == [
        other_tenant.schema_name
    ]


# --- runs clear their marker only when nothing new came meanwhile ---------------------------------


def _claim_later(kind, seconds):
    """Claim as a tick `seconds` from now would (the marker's own write is then that long ago)."""
    (claim,) = _in_public(work_claim_due, kind, now=timezone.now() + timedelta(seconds=seconds))
    return claim


def test_it_clears_the_marker_after_a_run_that_saw_all_the_work(tenant):
    work_mark(ROLLUP_WORK)
    claim = _claim_later(ROLLUP_WORK, GRACE_SECONDS + 1)
    work_done(ROLLUP_WORK, claim.token)
    assert work_pending() == {}


def test_it_keeps_a_marker_written_while_the_run_worked(tenant):
    work_mark(ROLLUP_WORK)
    claim = _claim_later(ROLLUP_WORK, GRACE_SECONDS + 1)
    marked = TenantWork.objects.get().marked_at
    TenantWork.objects.update(marked_at=marked + timedelta(seconds=GRACE_SECONDS + 2))  # a hit mid-run
    work_done(ROLLUP_WORK, claim.token)
    row = TenantWork.objects.get()
    assert (row.claim, row.claimed_until) == (None, None)
    assert row.due_at == row.marked_at + timedelta(seconds=GRACE_SECONDS)


def test_it_keeps_a_marker_written_just_before_the_claim(tenant):
    """A hit whose own mark was coalesced away may land after the claim: the run may not have seen it."""
    work_mark(ROLLUP_WORK)
    (claim,) = _in_public(work_claim_due, ROLLUP_WORK)
    work_done(ROLLUP_WORK, claim.token)
    row = TenantWork.objects.get()
    assert row.due_at == row.marked_at + timedelta(seconds=GRACE_SECONDS)


def test_it_re_arms_the_marker_for_the_next_work_the_run_knows_of(tenant):
    work_mark(lifecycle.DISPATCH_WORK)
    claim = _claim_later(lifecycle.DISPATCH_WORK, GRACE_SECONDS + 1)
    next_start = timezone.now() + timedelta(hours=5)
    work_done(lifecycle.DISPATCH_WORK, claim.token, again_at=next_start)
    assert work_pending() == {lifecycle.DISPATCH_WORK: next_start}


def test_a_run_whose_claim_lapsed_changes_nothing(tenant):
    work_mark(ROLLUP_WORK)
    old = _claim_later(ROLLUP_WORK, GRACE_SECONDS + 1)
    new = _claim_later(ROLLUP_WORK, GRACE_SECONDS + 1000)  # the first claim's lease ran out
    work_done(ROLLUP_WORK, old.token)
    assert str(TenantWork.objects.get().claim) == new.token


# --- no work is lost -------------------------------------------------------------------------------


def test_the_sweep_repairs_a_marker_lost_between_a_hit_and_its_marker(tenant, beat_in_process):
    sent = make_sent_campaign()
    _raw_hit(sent.recipients[0])
    _raw_hit(sent.recipients[1])
    assert _in_public(tracking_tasks.rollup_all_tenants) == 0  # nobody knows of the hits
    assert Hit.objects.filter(processed_at__isnull=True).count() == 2

    assert _in_public(sweep_periodic_work) >= 1
    assert ROLLUP_WORK in work_pending()
    assert _in_public(tracking_tasks.rollup_all_tenants) == 1
    assert not Hit.objects.filter(processed_at__isnull=True).exists()
    assert CampaignStats.objects.get(pk=sent.campaign.pk).unique_opens == 2
    assert ROLLUP_WORK not in work_pending() or work_pending()[ROLLUP_WORK] > timezone.now()


def test_the_sweep_repairs_every_kind_of_lost_marker(tenant):
    sent = make_sent_campaign()
    _raw_hit(sent.recipients[0])
    scheduled = make_campaign(static_segment(make_customers(1)))
    start = timezone.now() + timedelta(hours=1)
    lifecycle.campaign_schedule(campaign=scheduled, scheduled_at=start)
    sending = make_campaign(static_segment(make_customers(1, prefix="x")))
    lifecycle.campaign_send_now(campaign=sending)
    TenantWork.objects.all().delete()  # every marker lost

    assert _in_public(work_sweep) >= 5
    pending = work_pending()
    assert set(pending) == {
        ROLLUP_WORK,
        PRUNE_WORK,
        lifecycle.DISPATCH_WORK,
        lifecycle.STALL_WORK,
        lifecycle.LEASES_WORK,
    }
    assert pending[lifecycle.DISPATCH_WORK] == start


def test_the_sweep_marks_nothing_for_an_idle_tenant(tenant):
    _in_public(work_sweep)
    assert work_pending() == {}


def test_a_task_lost_with_its_message_runs_again_once_its_claim_lapses(tenant, beat_in_process):
    """Redis flushed after a tick: the claimed marker's task never runs. The marker is in PostgreSQL;
    once its claim lapses a tick sends the task again and the work is done."""
    sent = make_sent_campaign()
    hit_record_open(tenant=tenant, recipient_id=sent.recipients[0].pk, user_agent=HUMAN_AGENT)
    assert len(_in_public(work_claim_due, ROLLUP_WORK)) == 1  # a tick whose task message was lost
    assert _in_public(tracking_tasks.rollup_all_tenants) == 0  # held by the lost task's claim
    lapsed = timezone.now() + timedelta(seconds=KINDS[ROLLUP_WORK].lease_seconds + 1)
    assert _in_public(work_fan_out, ROLLUP_WORK, tracking_tasks.rollup_tenant_hits, now=lapsed) == 1
    assert not Hit.objects.filter(processed_at__isnull=True).exists()
    assert CampaignStats.objects.get(pk=sent.campaign.pk).opens == 1


def test_a_scheduled_campaign_starts_from_its_marker_and_re_arms_for_the_next(
    tenant, beat_in_process, django_capture_on_commit_callbacks
):
    first = make_campaign(static_segment(make_customers(1)))
    lifecycle.campaign_schedule(campaign=first, scheduled_at=timezone.now() + timedelta(minutes=1))
    second = make_campaign(static_segment(make_customers(1, prefix="n")))
    next_start = timezone.now() + timedelta(days=1)
    lifecycle.campaign_schedule(campaign=second, scheduled_at=next_start)
    Campaign.objects.filter(pk=first.pk).update(scheduled_at=timezone.now() - timedelta(seconds=5))
    due = timezone.now() + timedelta(minutes=1, seconds=GRACE_SECONDS + 1)  # the first one's minute passed
    assert (
        _in_public(work_fan_out, lifecycle.DISPATCH_WORK, campaign_tasks.dispatch_tenant_campaigns, now=due)
        == 1
    )
    assert Campaign.objects.get(pk=first.pk).status == "sending"
    assert Campaign.objects.get(pk=second.pk).status == "scheduled"
    assert work_pending()[lifecycle.DISPATCH_WORK] == next_start


def _drain(queue):
    """(task name, schema) of every task message waiting on the broker's queue, taken off it."""
    taken = []
    with app.connection_for_read() as conn, conn.SimpleQueue(queue) as messages:
        while True:
            try:
                message = messages.get(block=False)
            except messages.Empty:
                return taken
            taken.append((message.headers["task"], message.headers["_schema_name"]))
            message.ack()


def test_a_tick_sends_each_tenants_task_to_the_broker_in_its_schema(tenant, other_tenant):
    """A real broker, no eager mode: the tick's tasks go out in one batch (kombu's Producer.batch,
    a Redis pipeline) and every one of them arrives, each with its tenant's schema."""
    queue = settings.CELERY_TASK_DEFAULT_QUEUE
    _drain(queue)  # what an earlier run left there
    for each in (tenant, other_tenant):
        work_mark(ROLLUP_WORK, tenant=each.pk)

    assert _in_public(tracking_tasks.rollup_all_tenants) == 2

    assert sorted(_drain(queue)) == sorted(
        (tracking_tasks.rollup_tenant_hits.name, each.schema_name) for each in (tenant, other_tenant)
    )


# --- a busy tenant never delays another --------------------------------------------------------------


def test_a_tenant_with_a_huge_backlog_does_not_delay_another_tenants_roll_up(
    tenant, other_tenant, monkeypatch
):
    """One worker, FIFO queue: the busy tenant's task takes one turn (bounded by TENANT_BUDGET_SECONDS,
    well within the 15-second promise) and goes to the back of the queue; the other tenant's roll-up
    runs next, long before the backlog is through."""
    busy = make_sent_campaign()
    with connection.cursor() as cursor:  # 6,000 hits: three batches of the roll-up
        cursor.execute(
            "INSERT INTO tracking_hits (kind, campaign_id, recipient_id, is_machine, user_agent, occurred_at) "
            "SELECT 'o', %s, %s, false, '', now() FROM generate_series(1, 6000)",
            [busy.campaign.pk, busy.recipients[0].pk],
        )
    work_mark(ROLLUP_WORK)
    with schema_context(other_tenant.schema_name):
        quiet = make_sent_campaign(name="Quiet", emails=("q@example.com",))
        hit_record_open(tenant=other_tenant, recipient_id=quiet.recipients[0].pk, user_agent=HUMAN_AGENT)
    monkeypatch.setattr(tracking_tasks, "BATCHES_PER_TURN", 1)
    monkeypatch.setattr(tracking_tasks, "TENANT_BUDGET_SECONDS", 0.0)  # a turn is one batch here
    queue = []
    monkeypatch.setattr(
        tracking_tasks.rollup_tenant_hits,
        "apply_async",
        lambda kwargs, headers=None, **options: queue.append(
            (kwargs, headers or {"_schema_name": connection.schema_name})
        ),
    )

    assert _in_public(tracking_tasks.rollup_all_tenants) == 2
    assert [headers["_schema_name"] for _, headers in queue] == [tenant.schema_name, other_tenant.schema_name]
    turns = []
    while queue:
        kwargs, headers = queue.pop(0)
        tracking_tasks.rollup_tenant_hits.apply(kwargs=kwargs, headers=headers)
        turns.append(headers["_schema_name"])
        connection.set_tenant(tenant)
    assert turns[:2] == [tenant.schema_name, other_tenant.schema_name]  # one turn of the backlog, then B
    assert turns.count(tenant.schema_name) == 4  # 2,000 hits a turn, the last turn finds it empty
    with schema_context(other_tenant.schema_name):
        assert CampaignStats.objects.get(pk=quiet.campaign.pk).opens == 1
    assert CampaignStats.objects.get(pk=busy.campaign.pk).opens == 6000
    assert ROLLUP_WORK not in work_pending() or work_pending()[ROLLUP_WORK] > timezone.now()


def test_the_sweep_is_scheduled_hourly():
    entry = app.conf.beat_schedule["tenancy-sweep-periodic-work"]
    assert entry["task"] == sweep_periodic_work.name
    assert entry["task"] in app.tasks
    assert entry["schedule"].minute == {53}


@pytest.mark.parametrize("beat_task", BEAT_TASKS, ids=lambda task: task.name)
def test_every_per_tenant_beat_task_is_in_the_schedule(beat_task):
    assert beat_task.name in {entry["task"] for entry in app.conf.beat_schedule.values()}
