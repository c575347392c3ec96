"""Row 9: flows. (a) N customers enter one flow at once (bulk events, `flows.services.events_record`)
and reach its first email: dispatch and sending on a real Celery worker to Postfix's smtp-sink,
against row 4's campaign sender delivering the same number of messages to the same sink in the same
run. (b) The dispatcher's tick (`flows.engine.flows_dispatch`) with W waiting runs, none due, against
the bare index probe it rests on."""

import os
import statistics
import time

from django.conf import settings
from django.db import connection
from django.utils import timezone
from django_tenants.utils import schema_context

from bench import services
from bench.core import Check, Row
from bench.workloads import w4_send
from campaigns.lifecycle import campaign_send_now
from campaigns.models import Campaign, EmailTemplate
from customers.models import Customer
from flows import engine
from flows import services as flows
from flows.models import Flow

TARGET_SEND = "≥ 80% of row 4's msg/s"
TARGET_TICK = "a tick < 50 ms"
HTML = w4_send.HTML + "<p>{{ event.properties.total }}</p>"
# Row 9b's baseline: the due runs of the active flows as an expert reads them, without the claim's
# locks or transaction: one probe of the partial (flow_id, due_at) index per active flow.
BARE_PROBE = """
SELECT r.id FROM flows f
CROSS JOIN LATERAL (
    SELECT r.id, r.due_at FROM flow_runs r
    WHERE r.flow_id = f.id AND r.status = 'active' AND r.due_at <= statement_timestamp()
    ORDER BY r.due_at LIMIT 500
) r
WHERE f.status = 'active'
ORDER BY r.due_at LIMIT 500
"""


def _flow(ctx):
    with schema_context(ctx.data_schema):
        # An earlier run's flow (kept data) would enter the same events a second time.
        Flow.objects.filter(name="bench: flow", status="active").update(status="paused")
        # ... and its runs would make this run's entry slower than a first run's: the re-entry policy
        # reads each entering customer's runs of every flow (runs_enter), a hundred thousand more per
        # earlier run. Its messages stay (sent, the carrier's), as a campaign's recipients do.
        with connection.cursor() as cursor:
            cursor.execute(
                "DELETE FROM flow_step_logs WHERE flow_id IN (SELECT id FROM flows WHERE name = 'bench: flow')"
            )
            cursor.execute(
                "DELETE FROM flow_runs WHERE flow_id IN (SELECT id FROM flows WHERE name = 'bench: flow')"
            )
        template = EmailTemplate.objects.create(
            name="bench: flow", subject=w4_send.SUBJECT, html_body=HTML, text_body=w4_send.TEXT
        )
        flow = flows.flow_create(
            name="bench: flow",
            trigger={"type": "event", "name": "bench.entered"},
            steps=[{"id": "first", "type": "email", "template": template.pk}],
            frequency_cap_hours=0,
            reentry="always",
            from_email=settings.MAIL_FROM_ADDRESS,
            from_name="Bench Shop",
        )
        return flows.flow_activate(flow=flow)


def _customer_ids(count):
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT id FROM customers_customer WHERE email_marketing AND unsubscribed_at IS NULL "
            "AND erased_at IS NULL ORDER BY id LIMIT %s",
            [count],
        )
        return [row[0] for row in cursor.fetchall()]


def _flow_sent(flow_id):
    """{status: count} of the flow's messages: once, at the end (a count over them all)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT r.status, count(*) FROM campaign_recipients r JOIN flow_carriers fc ON fc.campaign_id = r.campaign_id "
            "WHERE fc.flow_id = %s GROUP BY r.status",
            [flow_id],
        )
        return dict(cursor.fetchall())


# The poll while the flow runs: as cheap as the baseline's (one campaign row) or it would take the
# database's time from what it measures (a count over every message, ten times a second, did).
# Index probes only: a run of the flow still active (flow_run_flow_status), a message of its carriers
# still pending or sending (recipient_campaign_status).
PROGRESS_SQL = """
SELECT EXISTS (SELECT 1 FROM flow_runs WHERE flow_id = %(flow)s AND status = 'active'),
       EXISTS (SELECT 1 FROM flow_carriers fc JOIN campaign_recipients r ON r.campaign_id = fc.campaign_id
               WHERE fc.flow_id = %(flow)s AND r.status IN ('pending', 'sending'))
"""


def _events_unpublished(schema):
    """The tenant's outbox rows not yet published (through the partial index outbox_unpublished)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM public.events_outboxevent WHERE published_at IS NULL AND tenant = %s",
            [schema],
        )
        return cursor.fetchone()[0]


def _flow_progress(flow_id):
    """(runs still to move, messages still to send)."""
    with connection.cursor() as cursor:
        cursor.execute(PROGRESS_SQL, {"flow": flow_id})
        return cursor.fetchone()


def _enter(flow_id, ids, tag):
    """Bulk events, 1,000 per call (what POST /api/events at a webshop's scale amounts to)."""
    now = timezone.now()
    for start in range(0, len(ids), 1000):
        flows.events_record(
            events=[
                {
                    "event_id": f"{tag}-{pk}",
                    "name": "bench.entered",
                    "customer_id": pk,
                    "occurred_at": now,
                    "properties": {"total": "59.80"},
                }
                for pk in ids[start : start + 1000]
            ]
        )


def _send_rows(ctx):
    count = ctx.scale.flow_entrants
    row = Row(
        key="9a",
        workload=f"{count:,} customers enter a flow at once and get its first email",
        target=TARGET_SEND,
    )
    sink_program = services.ensure_debian_package(
        program_names=services.SMTP_SINK_PATHS, package="postfix", log=ctx.log
    )
    if not sink_program:
        row.status, row.note = (
            "not available",
            "Postfix's smtp-sink is not installed (Debian package postfix)",
        )
        return row
    concurrency = max(1, settings.CAMPAIGN_SEND_CONCURRENCY)
    port = services.free_port()
    sink_args = [sink_program, *(["-u", "nobody"] if os.geteuid() == 0 else []), f"127.0.0.1:{port}", "1000"]
    campaign = w4_send._campaign(ctx, count)
    flow = _flow(ctx)
    with services.Process(sink_args, log_path=ctx.work_dir / "smtp-sink-9.log") as sink:
        if not services.wait_for_port(port):
            raise RuntimeError(f"smtp-sink did not start: {sink.log_text()[-500:]}")
        w4_send._purge_queue()
        with w4_send._worker(ctx, port, concurrency) as worker:
            if not worker.wait_for_log("ready.", timeout=60):
                raise RuntimeError(f"the Celery worker did not start: {worker.log_text()[-1500:]}")
            # Row 4's path on this sink, in this run: the campaign sender's messages/s.
            started = time.perf_counter()
            with schema_context(ctx.data_schema):
                campaign_send_now(campaign=campaign)
                deadline = time.monotonic() + max(600, count / 10)
                while time.monotonic() < deadline:
                    if Campaign.objects.filter(pk=campaign.pk).values_list("status", flat=True)[0] == "sent":
                        break
                    time.sleep(0.1)
            campaign_seconds = time.perf_counter() - started
            # Ours: the events, the dispatcher (kicked after each batch of entries), the flow sender.
            with schema_context(ctx.data_schema):
                ids = _customer_ids(count)
                started = time.perf_counter()
                _enter(flow.pk, ids, f"bench-{int(time.time())}")
                entered_seconds = time.perf_counter() - started
                dispatched_seconds = None
                deadline = time.monotonic() + max(600, count / 10)
                while time.monotonic() < deadline:
                    moving, unsent = _flow_progress(flow.pk)
                    if dispatched_seconds is None and not moving:
                        dispatched_seconds = time.perf_counter() - started
                    if not moving and not unsent:
                        break
                    time.sleep(0.1)
                flow_seconds = time.perf_counter() - started
                states = _flow_sent(flow.pk)
                # Not part of the measure (the campaign emits no event per message), but said: how
                # much of the flow's flow.entered / flow.completed was still to publish, and when it was out.
                backlog = _events_unpublished(ctx.data_schema)
                while backlog and time.monotonic() < deadline:
                    time.sleep(0.1)
                    if not _events_unpublished(ctx.data_schema):
                        break
                published_seconds = time.perf_counter() - started
    ours, base = len(ids) / flow_seconds, count / campaign_seconds
    ctx.log(
        f"row 9a: flow {len(ids):,} in {flow_seconds:.1f} s ({ours:,.0f}/s); campaign {count:,} in {campaign_seconds:.1f} s ({base:,.0f}/s)"
    )
    row.unit, row.sense = "msg/s", "higher"
    row.ours, row.baseline = ours, base
    row.rule = lambda ours, baseline, ratio: ratio >= 0.8
    row.checks = [Check("every entrant's message sent", states.get("sent", 0), len(ids))]
    row.note = (
        f"{concurrency} worker processes for both; ours from the first bulk event to the last message sent "
        f"(entry, dispatch, carrier rows, sending), the baseline is row 4's campaign from the send call to `sent`; "
        f"events stored and runs entered after {entered_seconds:.1f} s, every message queued after "
        f"{dispatched_seconds or 0:.1f} s, all sent after {flow_seconds:.1f} s; flow messages: {states}; "
        f"flow events still to publish then: {backlog:,} batch rows, all published after {published_seconds:.1f} s"
    )
    return row


def _tick_row(ctx):
    waiting = ctx.scale.flow_waiting_runs
    row = Row(
        key="9b",
        workload=f"the dispatcher's tick with {waiting:,} waiting runs, none due",
        target=TARGET_TICK,
    )
    with schema_context(ctx.data_schema):
        flow = Flow.objects.filter(name="bench: flow").first() or _flow(ctx)
        # A customer has at most one active run per flow (flow_run_one_active): with fewer customers
        # than waiting runs, the runs are spread over active copies of the flow, one run per customer
        # in each (row 9a's runs in the flow itself are left alone).
        customers = Customer.objects.count()
        copies = [
            Flow.objects.create(
                name=f"bench: waiting {index}",
                status="active",
                trigger={"type": "event", "name": "bench.never"},
                steps=flow.steps,
                reentry="always",
                frequency_cap_hours=0,
                activated_at=flow.activated_at,
            ).pk
            for index in range(-(-waiting // customers))
        ]
        with connection.cursor() as cursor:
            cursor.execute("DELETE FROM flow_runs WHERE entry_key LIKE 'waiting-%%'")
            cursor.execute(
                """
                WITH ids AS (SELECT array_agg(id ORDER BY id) AS a FROM customers_customer)
                INSERT INTO flow_runs (flow_id, customer_id, entry_key, entry_number, version, status, step_id,
                                       due_at, context, exit_reason, entered_at, updated_at)
                SELECT (%s::bigint[])[1 + (g - 1) / cardinality(ids.a)], ids.a[1 + (g - 1) %% cardinality(ids.a)],
                       'waiting-' || g, 1, 1, 'active', 'first',
                       now() + make_interval(secs => 3600 + g %% 86400), '{}'::jsonb, '', now(), now()
                FROM generate_series(1, %s) AS g, ids
                """,
                [copies, waiting],
            )
            cursor.execute("ANALYZE flow_runs")
        ticks, probes = [], []
        for _ in range(30):
            started = time.perf_counter()
            engine.flows_dispatch()
            ticks.append(time.perf_counter() - started)
            started = time.perf_counter()
            with connection.cursor() as cursor:
                cursor.execute(BARE_PROBE)
                cursor.fetchall()
            probes.append(time.perf_counter() - started)
        with connection.cursor() as cursor:
            cursor.execute("DELETE FROM flow_runs WHERE entry_key LIKE 'waiting-%%'")
        Flow.objects.filter(pk__in=copies).delete()
    ours, base = statistics.median(ticks) * 1000, statistics.median(probes) * 1000
    ctx.log(f"row 9b: tick {ours:.2f} ms, bare probe {base:.2f} ms with {waiting:,} waiting runs")
    row.unit, row.sense = "ms", "lower"
    row.ours, row.baseline = ours, base
    row.rule = lambda ours, baseline, ratio: ours < 50
    row.note = "medians of 30; the tick is one claim statement (a range scan of the partial index flow_run_due per active flow) in a transaction"
    return row


def run(ctx):
    return [_send_rows(ctx), _tick_row(ctx)]
