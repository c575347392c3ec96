"""What enters customers into flows and what wakes waiting runs.

Orders come through customers' hooks (after commit); custom events from `services.event_record`;
customers created, segments entered and dates from the periodic sweep (`flow_triggers_sweep`: one set-based
query per flow). Segments entered also promptly: a customer whose data a segment can read is written
(customers' services, orders, the CSV import, flows' tag steps, a static list, the roll-up of opens
and clicks) is noted in `flow_segment_changes` by one statement per batch in the writer's
transaction (customers.hooks.customers_changed_note), and the next dispatcher tick checks the
segment flows for the noted customers only (`segment_changes_check`); the sweep stays the repair
path (rules about time, a lost note).

A waiting run is woken by setting its `due_at` to now (one UPDATE); the engine then checks what
happened since it started waiting, so a lost wake-up only costs the timeout, never a wrong answer."""

import logging
from datetime import timedelta
from decimal import Decimal

from django.db import connection, transaction
from django.db.models import QuerySet
from django.utils import timezone

from customers import hooks
from customers.models import Customer, Order
from segments.models import Segment
from segments.rules import RuleError
from segments.selectors import segment_customers
from segments.services import segment_delete_refuse_while_used
from tenancy.work import work_mark_soon

from .definitions import ORDER_PLACED
from .entry import dispatcher_kick, runs_enter
from .models import Flow, FlowRun, FlowSegmentChange
from .work import DISPATCH_WORK, SEGMENT_TRIGGER

logger = logging.getLogger(__name__)

SWEEP_OVERLAP = timedelta(minutes=5)
# Customers a tick checks against the segment flows at most (the rest wait for the next tick).
SEGMENT_CHECK_BATCH = 10_000


def awaited_events(flows):
    """The events (custom event names, ORDER_PLACED) a wait_for step of these flows waits for."""
    return {
        step.get("event")
        for flow in flows
        for step in flow.steps or ()
        if isinstance(step, dict) and step.get("type") == "wait_for"
    }


def runs_wake(*, customer_ids, event, active_flows):
    """Runs of these customers waiting for `event` are due now. Nothing is written when none of
    `active_flows` (the tenant's active flows, which the caller has read) waits for `event`: a bulk of
    events no flow waits for costs no UPDATE probing every customer's runs."""
    if event not in awaited_events(active_flows):
        return 0
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            UPDATE {FlowRun._meta.db_table} AS r SET due_at = clock_timestamp()
            FROM {Flow._meta.db_table} AS f
            WHERE r.customer_id = ANY(%s) AND r.status = 'active' AND r.waiting_since IS NOT NULL
              AND f.id = r.flow_id AND f.status = 'active'
              AND EXISTS (SELECT 1 FROM jsonb_array_elements(f.steps) AS s
                          WHERE s->>'id' = r.step_id AND s->>'type' = 'wait_for' AND s->>'event' = %s)
            """,
            [list(customer_ids), event],
        )
        return cursor.rowcount


def flows_triggered(trigger_type, active_flows=None):
    active_flows = Flow.objects.filter(status="active") if active_flows is None else active_flows
    return [flow for flow in active_flows if flow.trigger.get("type") == trigger_type]


def events_arrived(*, events):
    """Custom events newly stored: (customer id, event id, name, properties, occurred_at). Enter the
    flows they trigger (occurred at or after activation) and wake the runs waiting for them."""
    active_flows = list(Flow.objects.filter(status="active"))
    entered = 0
    for flow in flows_triggered("event", active_flows):
        entries = [
            (
                customer_id,
                f"event:{event_id}",
                {"event": {"id": event_id, "name": name, "properties": properties}},
            )
            for customer_id, event_id, name, properties, occurred_at in events
            if name == flow.trigger.get("name") and occurred_at >= flow.activated_at
        ]
        entered += len(runs_enter(flow=flow, entries=entries))
    woken = 0
    for name in {event[2] for event in events}:
        woken += runs_wake(
            customer_ids=[e[0] for e in events if e[2] == name], event=name, active_flows=active_flows
        )
    if woken:  # runs_enter kicks what the runs it entered need
        dispatcher_kick()
    return entered


def _order_matches(flow, order):
    trigger = flow.trigger
    if order.placed_at < flow.activated_at or order.status in ("cancelled", "refunded"):
        return False
    if trigger.get("min_total") is not None and order.total < Decimal(str(trigger["min_total"])):
        return False
    if trigger.get("sku") and not order.items.filter(sku__iexact=trigger["sku"]).exists():
        return False
    return True


def order_recorded(*, order_id, created):
    """customers.hooks.order_recorded: order_placed triggers, and runs waiting for an order."""
    if not created:
        return
    order = Order.objects.filter(pk=order_id).first()
    if order is None:
        return
    with transaction.atomic():
        active_flows = list(Flow.objects.filter(status="active"))
        for flow in flows_triggered("order_placed", active_flows):
            if _order_matches(flow, order):
                runs_enter(flow=flow, entries=[(order.customer_id, f"order:{order.pk}", {"order": order.pk})])
        woken = runs_wake(customer_ids=[order.customer_id], event=ORDER_PLACED, active_flows=active_flows)
        # Its totals moved: segments may match now (through customers' note, so a bulk request's
        # orders are noted in one statement).
        hooks.customers_changed_note(customer_ids=[order.customer_id])
        if woken:
            dispatcher_kick()


def order_status_changed(*, order_id, old, new):
    """customers.hooks.order_status_changed: order_status triggers."""
    order = Order.objects.filter(pk=order_id).first()
    if order is None:
        return
    with transaction.atomic():
        for flow in flows_triggered("order_status"):
            if flow.trigger.get("status") == new:
                runs_enter(
                    flow=flow, entries=[(order.customer_id, f"order:{order.pk}:{new}", {"order": order.pk})]
                )
        hooks.customers_changed_note(customer_ids=[order.customer_id])  # a cancelled order changes its totals


def _enter_from_queryset(flow, customers, key):
    """Set-based entry of the customers a queryset selects (one INSERT ... SELECT)."""
    ids = list(customers.values_list("pk", flat=True)[:100_000])
    return len(runs_enter(flow=flow, entries=[(pk, key, {}) for pk in ids])) if ids else 0


def flow_triggers_sweep(*, now=None):
    """The periodic triggers of the current tenant: customers created, segments entered, dates.
    One query per flow. Returns how many runs entered."""
    now = now or timezone.now()
    entered = 0
    for flow in Flow.objects.filter(status="active"):
        kind = flow.trigger.get("type")
        if kind not in ("customer_created", "segment_entered", "date"):
            continue
        since = max(flow.activated_at, (flow.swept_at or flow.activated_at) - SWEEP_OVERLAP)
        with transaction.atomic():
            if kind == "customer_created":
                customers = Customer.objects.filter(
                    created_at__gte=since, created_at__lte=now, erased_at__isnull=True
                )
                entered += _enter_from_queryset(flow, customers, "created")
            elif kind == SEGMENT_TRIGGER:
                matching = _segment_matching(flow)
                if matching is None:
                    pass
                elif _segment_baseline_pending(flow):
                    # The first sweep only notes who matches already: activation never reaches back.
                    _enter_baseline(flow, matching)
                else:
                    entered += _enter_segment(flow, matching, now)
            elif kind == "date":
                entered += _enter_dates(flow, now)
            Flow.objects.filter(pk=flow.pk).update(swept_at=now)
    return entered


def _segment_matching(flow):
    """The customers matching the flow's segment now (a queryset), or None when it is gone."""
    segment = Segment.objects.filter(pk=flow.trigger.get("segment")).first()
    if segment is None:
        return None
    try:
        return segment_customers(segment=segment)
    except RuleError as exc:
        logger.warning("flow %s: segment no longer compiles: %s", flow.pk, exc)
        return Customer.objects.none()


def _segment_baseline_pending(flow):
    """True until the first sweep noted who matched at activation (unless the flow takes them all)."""
    return not flow.trigger.get("backfill") and flow.swept_at is None


def _enter_segment(flow, matching, now):
    """Customers of `matching` who never entered: they "started matching" since the last look."""
    fresh = matching.exclude(flow_runs__flow=flow)
    return _enter_from_queryset(flow, fresh, f"segment:{now.date().isoformat()}")


def customers_changed(*, customer_ids):
    """customers.hooks.customers_changed, inside the writer's transaction (also called for orders):
    note the customers for the next dispatcher tick's segment check.

    One statement, which writes nothing unless the tenant has an active flow with a segment trigger
    (a handful of rows to look at); the dispatcher is marked due with `work_mark_soon` (at most one
    write a second per process), so a customer write costs one cheap extra statement."""
    if isinstance(customer_ids, QuerySet):
        # A big batch (the CSV import's chunk): its ids are read in this statement, and not at all
        # while the tenant has no segment flow (the EXISTS is a one-time filter before the scan).
        source, params = customer_ids.order_by().values("id").query.sql_with_params()
    elif customer_ids:
        source, params = "SELECT unnest(%s::bigint[])", [sorted(set(customer_ids))]
    else:
        return 0
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            INSERT INTO {FlowSegmentChange._meta.db_table} (customer_id, changed_at)
            SELECT v.id, statement_timestamp() FROM ({source}) AS v (id)
            WHERE EXISTS (SELECT 1 FROM {Flow._meta.db_table} AS f
                          WHERE f.status = 'active' AND f.trigger->>'type' = %s)
            ON CONFLICT (customer_id) DO NOTHING
            """,
            [*params, SEGMENT_TRIGGER],
        )
        noted = cursor.rowcount
    if noted:
        work_mark_soon(DISPATCH_WORK)
    return noted


def segment_changes_check(*, now=None, limit=SEGMENT_CHECK_BATCH):
    """The dispatcher tick's part of the segment triggers: take up to `limit` noted customers (one
    DELETE ... RETURNING; SKIP LOCKED keeps two ticks apart) and, per active segment flow, enter
    those of them who match its segment now and never entered (one INSERT ... SELECT per flow).
    Returns (runs entered, whether noted customers are left for the next tick)."""
    now = now or timezone.now()
    changes = FlowSegmentChange._meta.db_table
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute(
                f"""
                DELETE FROM {changes} WHERE customer_id IN (
                    SELECT customer_id FROM {changes} ORDER BY changed_at LIMIT %s FOR UPDATE SKIP LOCKED
                )
                RETURNING customer_id
                """,
                [limit],
            )
            ids = [row[0] for row in cursor.fetchall()]
        if not ids:
            return 0, False
        entered = 0
        for flow in flows_triggered(SEGMENT_TRIGGER):
            matching = _segment_matching(flow)
            # Before the first sweep nobody enters: it first notes who matched at activation.
            if matching is not None and not _segment_baseline_pending(flow):
                entered += _enter_segment(flow, matching.filter(pk__in=ids), now)
    return entered, len(ids) >= limit


def _enter_baseline(flow, matching):
    """Who matched the segment when the flow was activated is not "entering": mark them as seen with
    an already-finished run (status exited, reason "matched before activation")."""
    ids = list(matching.values_list("pk", flat=True)[:1_000_000])
    if not ids:
        return
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            INSERT INTO {FlowRun._meta.db_table} (flow_id, customer_id, entry_key, entry_number, version, status,
                step_id, context, exit_reason, entered_at, finished_at, updated_at)
            SELECT %s, v.id, 'baseline', 0, %s, 'exited', '', '{{}}'::jsonb, 'matched before activation',
                   clock_timestamp(), clock_timestamp(), clock_timestamp()
            FROM unnest(%s::bigint[]) AS v (id)
            ON CONFLICT DO NOTHING
            """,
            [flow.pk, flow.version, ids],
        )


def _enter_dates(flow, now):
    """Customers whose date (month and day, shifted by offset_days) is today, once a year."""
    attribute = flow.trigger.get("attribute", "")
    offset = int(flow.trigger.get("offset_days", 0))
    day = (now - timedelta(days=offset)).date()
    if attribute == "created_at":
        column = "c.created_at::date"
    else:
        key = attribute.split(".", 1)[1]
        column = f"(CASE WHEN c.attributes->>'{key}' ~ '^\\d{{4}}-\\d{{2}}-\\d{{2}}' THEN left(c.attributes->>'{key}', 10)::date END)"
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            SELECT c.id FROM {Customer._meta.db_table} AS c
            WHERE c.erased_at IS NULL AND extract(month FROM {column}) = %s AND extract(day FROM {column}) = %s
            """,
            [day.month, day.day],
        )
        ids = [row[0] for row in cursor.fetchall()]
    return len(runs_enter(flow=flow, entries=[(pk, f"date:{now.year}", {}) for pk in ids])) if ids else 0


def segment_delete_guard(*, segment):
    """A segment a live flow starts from stays (segments' DELETE_GUARDS): deleting it would leave the
    flow's trigger pointing at nothing. Draft and archived flows don't hold it."""
    segment_delete_refuse_while_used(
        users=Flow.objects.filter(
            status__in=Flow.LIVE_STATUSES, trigger__type=SEGMENT_TRIGGER, trigger__segment=segment.pk
        )
        .order_by("name", "id")
        .values_list("name", flat=True),
        reason="Live flows start when customers enter this segment ({names}): archive them or change their trigger first.",
    )
