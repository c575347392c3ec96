"""Reads of the flows app: lists, runs, and the per-step stats (one aggregate query each)."""

from decimal import Decimal

from django.db import connection
from django.db.models import Count, Q

from campaigns.models import CampaignRecipient
from customers.attribution import attributed_revenue

from .models import Flow, FlowRun, FlowStepLog

SENT_STATUSES = ("sent", "delivered", "bounced", "complained")


def flows_list(*, status=None):
    flows = Flow.objects.all()
    if status:
        flows = flows.filter(status=status)
    return flows


def flow_runs(*, flow, customer=None, status=None):
    runs = (
        FlowRun.objects.filter(flow=flow)
        .exclude(entry_key="baseline")
        .select_related("customer")
        .prefetch_related("steps__recipient")
        .order_by("-entered_at", "-id")
    )
    if customer is not None:
        runs = runs.filter(customer_id=customer)
    if status:
        runs = runs.filter(status=status)
    return runs


def flow_stats(*, flow):
    """{"entered", "active", "completed", "exited", "steps": [...]} (PRODUCT.md), steps in the order of
    the current version; opens and clicks come from the messages' recipient rows (the tracking roll-up)."""
    totals = (
        FlowRun.objects.filter(flow=flow)
        .exclude(entry_key="baseline")
        .aggregate(
            entered=Count("id"),
            active=Count("id", filter=Q(status="active")),
            completed=Count("id", filter=Q(status="completed")),
            exited=Count("id", filter=Q(status="exited")),
        )
    )
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            SELECT l.step_id, count(*),
                   count(r.id) FILTER (WHERE r.status = ANY(%s)),
                   count(*) FILTER (WHERE l.status = 'skipped' OR r.status = 'skipped'),
                   count(r.first_opened_at), count(r.first_clicked_at)
            FROM {FlowStepLog._meta.db_table} AS l
            LEFT JOIN {CampaignRecipient._meta.db_table} AS r ON r.id = l.recipient_id
            WHERE l.flow_id = %s
            GROUP BY l.step_id
            """,
            [list(SENT_STATUSES), flow.pk],
        )
        per_step = {row[0]: row[1:] for row in cursor.fetchall()}
    waiting = dict(
        FlowRun.objects.filter(flow=flow, status="active")
        .values_list("step_id")
        .annotate(n=Count("id"))
        .values_list("step_id", "n")
    )
    # Orders attributed to each step's email (customers/attribution.py), cancelled and refunded left out.
    revenue = attributed_revenue(flow_id=flow.pk)
    steps = []
    for step in flow.steps:
        reached, sent, skipped, opens, clicks = per_step.get(step.get("id"), (0, 0, 0, 0, 0))
        earned = revenue.get((flow.pk, step.get("id")), {"orders": 0, "revenue": Decimal("0.00")})
        steps.append(
            {
                "id": step.get("id"),
                "type": step.get("type"),
                "reached": reached,
                "waiting": waiting.get(step.get("id"), 0),
                "sent": sent,
                "skipped": skipped,
                "unique_opens": opens,
                "unique_clicks": clicks,
                "orders": earned["orders"],
                "revenue": earned["revenue"],
            }
        )
    return {**totals, "steps": steps}
