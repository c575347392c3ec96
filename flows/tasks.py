"""Celery tasks of the flows app: thin, safe to run twice (STYLE 4).

`dispatch_flows` (beat, every FLOW_TICK_SECONDS) hands `dispatch_flows_tenant` to the tenants whose
flow work is due (flows/work.py: one statement a tick, however many tenants sleep); the per-tenant
task advances due runs, then sends what is queued. A tenant whose dispatch ran out of time gets its
own task to go on. The periodic triggers work the same way, once a minute per tenant that has them."""

import logging

from celery import shared_task
from django.db import connection
from django.utils import timezone

from tenancy.work import work_fan_out, work_run

from . import engine, sender, triggers, work

logger = logging.getLogger(__name__)


def flows_tenant_work():
    """One tenant's flow work (the connection's current tenant): check the segment flows for the
    customers written since the last tick, advance due runs, then send what is queued if nobody else
    is. Returns the engine's outcome."""
    _, segments_left = triggers.segment_changes_check()  # runs it enters are due now: dispatched below
    outcome = engine.flows_dispatch()
    if segments_left:
        outcome.more = True
    reclaimed = sender.leases_reclaim_expired()
    if reclaimed:
        logger.warning(
            "flows: %s messages of a dead sender are pending again in %s", reclaimed, connection.schema_name
        )
    if outcome.more:
        dispatch_flows_tenant.apply_async(headers={"_schema_name": connection.schema_name}, retry=False)
    return outcome


@shared_task(ignore_result=True)
def dispatch_flows():
    """Beat: a task for each tenant whose flow work is due."""
    return work_fan_out(work.DISPATCH_WORK, dispatch_flows_tenant)


@shared_task(ignore_result=True, acks_late=True)
def dispatch_flows_tenant(claim=None):
    """One tenant's flow work (in its schema): from beat with a claim on its marker, or kicked right
    after runs entered or woke. Leaves the marker due when the tenant's next run is."""
    if not getattr(connection.tenant, "is_active", True):
        return

    def run():
        outcome = flows_tenant_work()
        if sender.carriers_with_work():
            send_flow_messages.apply_async(headers={"_schema_name": connection.schema_name}, retry=False)
        return timezone.now() if outcome.more else work.flows_next_due()

    if claim is None:
        run()
    else:
        work_run(work.DISPATCH_WORK, claim, run)


@shared_task(ignore_result=True, acks_late=True)
def send_flow_messages():
    """Send the tenant's queued flow emails for a while; re-enqueue while work is left."""
    outcome = sender.flow_messages_send()
    if outcome.more:
        send_flow_messages.apply_async(
            headers={"_schema_name": connection.schema_name}, countdown=outcome.delay, retry=False
        )
    return {"sent": outcome.sent, "failed": outcome.failed, "skipped": outcome.skipped}


@shared_task(ignore_result=True)
def sweep_flow_triggers():
    """Beat: the periodic triggers (customers created, segments entered, dates) of each tenant that
    has an active flow with one, once a minute."""
    return work_fan_out(work.SWEEP_WORK, sweep_flow_triggers_tenant)


@shared_task(ignore_result=True, acks_late=True)
def sweep_flow_triggers_tenant(claim):
    def run():
        triggers.flow_triggers_sweep()
        due = work.flows_sweep_due()
        return due + work.SWEEP_EVERY if due else None

    work_run(work.SWEEP_WORK, claim, run)
