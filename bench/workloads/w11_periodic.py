"""Row 11: periodic work with many idle tenants and 10 active ones.

Each per-tenant beat task's tick (the product's `crm_project/celery.py` schedule) is timed and its
statements counted with N idle tenants (clones of the template, as row 7 makes them) beside 10 active
ones (hits arriving, a campaign sending, a campaign scheduled); the baseline is the same tick with the
10 active tenants alone (the idle ones deactivated, so no code path sees them). The old way, a loop
over every serving tenant's schema, is timed in the same run for the "before" figure. Then the beat
schedule runs for real (each beat task at its period, its per-tenant tasks executed in this process as
a worker would) and the active tenants' work is timed against its promise: roll-up ≤ 15 s, a scheduled
start ≤ 60 s, a stalled campaign resumed ≤ 20 s (+ its quiet window).
"""

import time
from datetime import timedelta
from importlib import import_module

from django.conf import settings
from django.db import connection
from django.test.utils import CaptureQueriesContext, override_settings
from django.utils import timezone
from django_tenants.utils import schema_context, tenant_context

from bench import data
from bench.core import Check, GrowthPoint, Row, median
from campaigns import editing, lifecycle
from campaigns.jobs import campaigns_resume_stalled
from campaigns.lifecycle import DISPATCH_WORK
from campaigns.models import Campaign, CampaignRecipient
from crm_project.celery import app
from customers.models import Customer
from segments.models import Segment, SegmentMember
from tenancy.models import Tenant, TenantWork
from tenancy.work import work_mark
from tracking.hits import hit_record_open
from tracking.models import Hit
from tracking.rollup import hits_rollup

ACTIVE = 10
TICKS = 15  # timed ticks per beat task and size
PROMISE_SECONDS = 45  # how long the real schedule runs in the promise phase
TICK_TARGET_MS = 20.0
SCHEDULE = {  # beat task -> period in seconds (crm_project/celery.py)
    "tracking.tasks.rollup_all_tenants": 15.0,
    "campaigns.tasks.dispatch_due_campaigns": 15.0,
    "campaigns.tasks.resume_stalled_campaigns": 20.0,
    "campaigns.tasks.reclaim_expired_leases": 120.0,
    "campaigns.transactional.requeue_transactional_emails": 60.0,
    "events.tasks.publish_outbox": 10.0,
    "tracking.tasks.prune_hits_all_tenants": 3600.0,
    "tenancy.tasks.sweep_periodic_work": 3600.0,
}
PER_TENANT = (
    "tracking.tasks.rollup_all_tenants",
    "campaigns.tasks.dispatch_due_campaigns",
    "campaigns.tasks.resume_stalled_campaigns",
    "campaigns.tasks.reclaim_expired_leases",
    "tracking.tasks.prune_hits_all_tenants",
)


def _task(name):
    module, attribute = name.rsplit(".", 1)
    return getattr(import_module(module), attribute)


def _idle_prefix(ctx):
    return f"{ctx.prefix}-idle"


def _active_prefix(ctx):
    return f"{ctx.prefix}-act"


def _tenants(prefix):
    return list(Tenant.objects.filter(schema_name__startswith=prefix.replace("-", "_") + "_").order_by("pk"))


def _grow_idle(ctx, count):
    have = len(_tenants(_idle_prefix(ctx)))
    if have < count:
        started = time.perf_counter()
        data.bulk_tenants_create(prefix=_idle_prefix(ctx), count=count - have, start=have + 1)
        ctx.log(f"row 11: {count - have} idle tenants cloned in {time.perf_counter() - started:.1f} s")


def _set_idle_serving(ctx, serving, count=None):
    """The first `count` idle tenants serve (all of them by default), or none when `serving` is False."""
    connection.set_schema_to_public()
    idle = Tenant.objects.filter(schema_name__startswith=_idle_prefix(ctx).replace("-", "_") + "_")
    idle.update(is_active=False)
    if serving:
        first = list(idle.order_by("pk").values_list("pk", flat=True)[:count])
        Tenant.objects.filter(pk__in=first).update(is_active=True)


def _active_setup(ctx):
    """10 active tenants: each with a sent campaign (its recipients' hits arrive), one with a campaign
    scheduled, one with a campaign sending that nobody works on (stalled)."""
    if not _tenants(_active_prefix(ctx)):
        data.bulk_tenants_create(prefix=_active_prefix(ctx), count=ACTIVE)
    world = []
    for tenant in _tenants(_active_prefix(ctx)):
        with tenant_context(tenant):
            customers = Customer.objects.bulk_create(
                [
                    Customer(email=f"p{i}@example.com", first_name=f"P{i}", email_marketing=True)
                    for i in range(5)
                ]
            )
            sent = Campaign.objects.create(
                name="Sent", subject="Hi", html_body="<p>Hi</p>", status="sent", sent_at=timezone.now()
            )
            recipients = CampaignRecipient.objects.bulk_create(
                [
                    CampaignRecipient(
                        campaign=sent,
                        customer=c,
                        email=c.email,
                        status="sent",
                        sent_at=timezone.now() - timedelta(hours=1),
                    )
                    for c in customers
                ]
            )
            segment = Segment.objects.create(name="All", kind="static")
            SegmentMember.objects.bulk_create([SegmentMember(segment=segment, customer=c) for c in customers])
            world.append({"tenant": tenant, "recipients": [r.pk for r in recipients], "segment": segment})
    # One scheduled (due a few seconds into the promise phase), one sending and stalled.
    first, second = world[0], world[1]
    with tenant_context(first["tenant"]):
        campaign = editing.campaign_create(
            name="Scheduled", subject="Hello", html_body="<p>Hello</p>", segment=first["segment"]
        )
        lifecycle.campaign_schedule(campaign=campaign, scheduled_at=timezone.now() + timedelta(minutes=10))
        first["scheduled"] = campaign.pk
    with tenant_context(second["tenant"]):
        campaign = editing.campaign_create(
            name="Sending", subject="Hello", html_body="<p>Hello</p>", segment=second["segment"]
        )
        lifecycle.campaign_start(campaign=campaign, enqueue=False)  # its batch tasks were lost
        second["sending"] = campaign.pk
    connection.set_schema_to_public()
    return world


def _hits(world, per_tenant=3):
    for entry in world:
        with tenant_context(entry["tenant"]):
            for recipient_id in entry["recipients"][:per_tenant]:
                hit_record_open(
                    tenant=entry["tenant"], recipient_id=recipient_id, user_agent="Mozilla/5.0 (X11)"
                )
    connection.set_schema_to_public()


def _release_claims():
    """Between timed ticks: the claims a tick took are let go (as if its tasks had run and found more
    work), so that every timed tick hands out the active tenants' tasks again."""
    TenantWork.objects.update(claim=None, claimed_at=None, claimed_until=None, due_at=timezone.now())


def _time_ticks(name, *, release):
    """(median ms, max statements) of TICKS ticks of the beat task `name`, from the public schema."""
    task = _task(name)
    times, statements = [], []
    connection.set_schema_to_public()
    for _ in range(TICKS):
        if release:
            _release_claims()
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")  # the search path is set before the count starts
        with CaptureQueriesContext(connection) as queries:
            started = time.perf_counter()
            task()
            times.append(time.perf_counter() - started)
        statements.append(len(queries))
        connection.set_schema_to_public()
    return median(times) * 1000, max(statements)


def _old_loop_ms(ctx):
    """The former beat tasks' shape: every serving tenant's schema visited each tick (the roll-up and
    the stall check: what the old tasks ran in each tenant). Median ms of 3 ticks."""
    results = {}
    for label, work in (
        ("roll-up", lambda: hits_rollup(max_batches=50)),
        ("stall check", campaigns_resume_stalled),
    ):
        times = []
        for _ in range(3):
            started = time.perf_counter()
            for tenant in Tenant.objects.serving().only("pk", "schema_name"):
                with tenant_context(tenant):
                    work()
            times.append(time.perf_counter() - started)
            connection.set_schema_to_public()
        results[label] = median(times) * 1000
    return results


def _purge_queue():
    try:
        with app.connection_for_write() as conn:
            conn.default_channel.queue_purge(app.conf.task_default_queue)
    except Exception:
        pass


def _promise_phase(ctx, world):
    """The real schedule for PROMISE_SECONDS: hits arrive, the scheduled campaign comes due, the stalled
    campaign waits; per-tenant tasks run in this process (Celery eager) as a worker would."""
    first, second = world[0], world[1]
    with tenant_context(first["tenant"]):
        due = timezone.now() + timedelta(seconds=5)
        Campaign.objects.filter(pk=first["scheduled"]).update(scheduled_at=due)
        work_mark(DISPATCH_WORK, due_at=due)  # rescheduled for then (as campaign_update marks it)
    with tenant_context(second["tenant"]):
        Campaign.objects.filter(pk=second["sending"]).update(started_at=timezone.now() - timedelta(hours=1))
    connection.set_schema_to_public()
    t0 = time.monotonic()
    _hits(world)
    rolled, started_at, resumed_at = {}, None, None
    next_run = dict.fromkeys(SCHEDULE, 0.0)
    cpu = 0.0
    before = app.conf.task_always_eager
    app.conf.task_always_eager = True
    try:
        with override_settings(EMAIL_BACKEND="django.core.mail.backends.locmem.EmailBackend"):
            while time.monotonic() - t0 < PROMISE_SECONDS:
                now = time.monotonic() - t0
                for name, period in SCHEDULE.items():
                    if name.endswith("sweep_periodic_work") or name.endswith("prune_hits_all_tenants"):
                        continue  # hourly: not within this window
                    if now >= next_run[name]:
                        connection.set_schema_to_public()
                        tick = time.process_time()
                        try:
                            _task(name)()
                        except Exception as exc:  # e.g. the outbox with RabbitMQ down: noted, not fatal
                            ctx.log(f"row 11: {name} raised {exc!r}")
                        cpu += time.process_time() - tick
                        next_run[name] = now + period
                connection.set_schema_to_public()
                for entry in world:
                    key = entry["tenant"].schema_name
                    if key not in rolled:
                        with schema_context(key):
                            if not Hit.objects.filter(processed_at__isnull=True).exists():
                                rolled[key] = time.monotonic() - t0
                with schema_context(first["tenant"].schema_name):
                    if (
                        started_at is None
                        and Campaign.objects.filter(pk=first["scheduled"])
                        .exclude(status="scheduled")
                        .exists()
                    ):
                        started_at = time.monotonic() - t0 - 5
                with schema_context(second["tenant"].schema_name):
                    if (
                        resumed_at is None
                        and not CampaignRecipient.objects.filter(
                            campaign_id=second["sending"], status="pending"
                        ).exists()
                    ):
                        resumed_at = time.monotonic() - t0
                connection.set_schema_to_public()
                if len(rolled) == len(world) and started_at is not None and resumed_at is not None:
                    break
                time.sleep(0.25)
    finally:
        app.conf.task_always_eager = before
        connection.set_schema_to_public()
    return {
        "rolled": rolled,
        "rollup_max": max(rolled.values()) if len(rolled) == len(world) else None,
        "start_late": started_at,
        "resumed": resumed_at,
    }


def run(ctx):
    rows, points = [], []
    world = _active_setup(ctx)
    counts = list(ctx.scale.idle_tenants)
    per_size = {}
    for count in counts:
        _grow_idle(ctx, count)
        _set_idle_serving(ctx, True, count)
        _hits(world)
        measured = {}
        for name in PER_TENANT:
            ours_ms, ours_statements = _time_ticks(name, release=True)
            measured[name] = (ours_ms, ours_statements)
        idle_only = {}
        for name in PER_TENANT:
            idle_only[name] = _time_ticks(name, release=False)  # claims held: the idle tenants' cost alone
        _set_idle_serving(ctx, False)
        baseline = {name: _time_ticks(name, release=True) for name in PER_TENANT}
        _set_idle_serving(ctx, True, count)
        old = _old_loop_ms(ctx) if count == counts[-1] else None
        _purge_queue()
        per_size[count] = (measured, baseline, idle_only, old)
        tick_total = sum(ms for ms, _ in measured.values())
        idle_total = sum(ms for ms, _ in idle_only.values())
        points.append(GrowthPoint("11 beat ticks, 10 active + idle tenants", count, tick_total / 1000))
        points.append(GrowthPoint("11 beat ticks, idle tenants only", count, idle_total / 1000))
        described = ", ".join(f"{n.rsplit('.', 1)[-1]} {ms:.1f} ms/{q} q" for n, (ms, q) in measured.items())
        ctx.log(f"row 11 @ {count} idle: ticks {described}")

    largest = counts[-1]
    measured, baseline, idle_only, old = per_size[largest]
    promise = _promise_phase(ctx, world)
    _purge_queue()
    core_share = sum(idle_only[name][0] / 1000 / SCHEDULE[name] for name in PER_TENANT)
    for index, name in enumerate(PER_TENANT):
        ours_ms, statements = measured[name]
        base_ms, _ = baseline[name]
        growth = " → ".join(f"{per_size[c][0][name][0]:.1f}" for c in counts)
        rows.append(
            Row(
                key="11" + "abcde"[index],
                workload=f"tick of {name.split('.')[-1]} with {largest:,} idle + {ACTIVE} active tenants",
                unit="ms",
                ours=ours_ms,
                baseline=base_ms,
                target=f"< {TICK_TARGET_MS:.0f} ms, a few statements",
                rule=lambda o, b, r, q=statements: o < TICK_TARGET_MS and q <= 3,
                note=f"{statements} statement(s) per tick; median of {TICKS}; a tick claims the due markers and "
                "sends one task per active tenant with work of its kind (in one batch to the broker, a Redis "
                "pipeline; the same with the active tenants alone); ms per tick at "
                f"{', '.join(f'{c:,}' for c in counts)} idle tenants: {growth}; baseline: the same tick with "
                f"the {ACTIVE} active tenants alone (idle ones deactivated)",
                checks=[Check(f"statements per tick of {name}", statements <= 3, True)],
            )
        )
    old_note = ""
    if old:
        old_note = (
            f"; before (every serving tenant visited each tick, {largest + ACTIVE:,} tenants): roll-up "
            f"{old['roll-up']:.0f} ms, stall check {old['stall check']:.0f} ms per tick"
        )
    rows.append(
        Row(
            key="11f",
            workload=f"the whole beat schedule's per-tenant ticks with {largest:,} idle tenants, share of one core",
            unit="%",
            ours=core_share * 100,
            baseline=None,
            target="< 1% of a core",
            rule=lambda o, b, r: o < 1.0,
            note="sum over the per-tenant beat tasks of tick time / period, ticks with no due work (ms per tick: "
            + ", ".join(f"{name.rsplit('.', 1)[-1]} {idle_only[name][0]:.1f}" for name in PER_TENANT)
            + ")"
            + old_note,
        )
    )
    rollup = promise["rollup_max"]
    start_late = promise["start_late"]
    resumed = promise["resumed"]
    stall_window = settings.CAMPAIGN_STALL_SECONDS
    rows.append(
        Row(
            key="11g",
            workload=f"active tenants' work with {largest:,} idle tenants: roll-up / scheduled start / stall resume",
            unit="s",
            ours=rollup,
            baseline=None,
            target="roll-up ≤ 15 s, start ≤ 60 s, resume ≤ 20 s",
            rule=lambda o, b, r: (
                rollup is not None
                and rollup <= 15
                and start_late is not None
                and start_late <= 60
                and resumed is not None
                and resumed <= 20
            ),
            note=(
                f"the real schedule run for up to {PROMISE_SECONDS} s, per-tenant tasks in-process: every "
                f"active tenant's hits rolled up {rollup if rollup is None else f'{rollup:.1f}'} s after they "
                f"arrived; the scheduled campaign started {start_late if start_late is None else f'{start_late:.1f}'} s "
                f"after its time; the stalled campaign (quiet for an hour, CAMPAIGN_STALL_SECONDS {stall_window}) "
                f"sent {resumed if resumed is None else f'{resumed:.1f}'} s after the first tick"
            ),
        )
    )
    return rows, points
