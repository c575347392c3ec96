"""The flows' periodic work, handed by beat only to the tenants that have some (tenancy/work.py).

- `flows.dispatch`: a run falls due (entered, woken, its delay over), a flow email waits to be sent,
  or a customer written since was noted for the segment check (marked with `work_mark_soon`).
  Marked due now in the transaction that enters or wakes runs; after a dispatch the marker is re-armed
  for the tenant's next due run, so a run waiting a day costs no tick until its day comes.
- `flows.sweep`: the periodic triggers (customers created, segments entered, dates) of a tenant that
  has an active flow with one; marked when such a flow is activated and re-armed a minute later while
  one stays active.
"""

from datetime import timedelta

from django.conf import settings
from django.db import connection
from django.utils import timezone

from campaigns.models import CampaignRecipient
from tenancy.work import work_kind_register, work_mark

from .models import Flow, FlowCarrier, FlowRun, FlowSegmentChange

DISPATCH_WORK = "flows.dispatch"
SWEEP_WORK = "flows.sweep"
SEGMENT_TRIGGER = "segment_entered"
SWEEP_TRIGGERS = ("customer_created", SEGMENT_TRIGGER, "date")
SWEEP_EVERY = timedelta(minutes=1)


def flows_next_due():
    """When the tenant's earliest flow work is due (a datetime), or None: now for a queued flow email
    or a customer noted for the segment check; else the earliest of the first due run of an active
    flow and the first lease a flow sender holds running out (a sender killed mid-batch leaves its
    messages `sending`: the dispatch that reclaims them must come, even with no run left to move).
    Index probes only: one of the partial index on due runs per active flow, one of the leased
    recipients."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            SELECT CASE WHEN EXISTS (
                       SELECT 1 FROM {FlowCarrier._meta.db_table} fc
                       JOIN {Flow._meta.db_table} f ON f.id = fc.flow_id AND f.status = 'active'
                       JOIN {CampaignRecipient._meta.db_table} r
                         ON r.campaign_id = fc.campaign_id AND r.status = 'pending'
                   ) OR EXISTS (SELECT 1 FROM {FlowSegmentChange._meta.db_table})
                   THEN statement_timestamp() END,
                   (SELECT min(r.due_at) FROM {Flow._meta.db_table} f
                    CROSS JOIN LATERAL (
                        SELECT r.due_at FROM {FlowRun._meta.db_table} r
                        WHERE r.flow_id = f.id AND r.status = 'active' AND r.due_at IS NOT NULL
                        ORDER BY r.due_at LIMIT 1
                    ) r
                    WHERE f.status = 'active'),
                   (SELECT r.lease_until FROM {CampaignRecipient._meta.db_table} r
                    WHERE r.status = 'sending'  -- the partial index recipient_leased, in lease order
                      AND EXISTS (SELECT 1 FROM {FlowCarrier._meta.db_table} fc WHERE fc.campaign_id = r.campaign_id)
                    ORDER BY r.lease_until LIMIT 1)
            """
        )
        sending, due, lease_ends = cursor.fetchone()
    return sending or min((moment for moment in (due, lease_ends) if moment is not None), default=None)


def flows_sweep_due():
    """Now when the tenant has an active flow with a periodic trigger, else None."""
    if Flow.objects.filter(status="active", trigger__type__in=SWEEP_TRIGGERS).exists():
        return timezone.now()
    return None


def flows_dispatch_mark(*, due_at=None):
    """In the transaction that makes runs due (or queues a flow message): the tenant's dispatcher is
    due at `due_at` (default now; the marker keeps the earliest)."""
    work_mark(DISPATCH_WORK, due_at=due_at)


def flows_sweep_mark():
    work_mark(SWEEP_WORK)


def dispatch_claim_seconds():
    """How long a dispatch task holds its tenant's marker: its time budget and a margin. A worker
    killed mid-dispatch leaves the claim behind; the next tick after this takes the tenant again (a
    tick beside a slow live dispatcher steps aside: engine.dispatcher_lock, which a killed worker's
    connection releases). The default claim of 120 s held a killed dispatcher's tenant, and the
    messages its senders held, for two minutes."""
    return settings.FLOW_DISPATCH_SECONDS + 10


def register():
    work_kind_register(DISPATCH_WORK, probe=flows_next_due, lease_seconds=dispatch_claim_seconds())
    work_kind_register(SWEEP_WORK, probe=flows_sweep_due)
