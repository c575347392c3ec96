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

# How many times the tenant's dispatcher looks again for due runs after letting go of its lock.
RECHECKS = 3


def flows_tenant_work():
    """One tenant's flow work (the connection's current tenant): check the segment flows for the
    customers written since the last tick, advance due runs, reclaim what dead senders held. Returns
    the engine's outcome, or None when another dispatcher of the tenant is at work.

    One dispatcher per tenant (engine.dispatcher_lock): a task kicked while another works returns at
    once, and the one at work looks for due runs again after it let go, so a run whose kick found it
    busy does not wait for the next tick. (A few times at most: runs another transaction holds are
    due but not claimable, and that transaction kicks after its commit; beat comes within a tick
    anyway, since whatever makes a run due marks the tenant's work due.) Customers noted for the
    segment check wait for the next tick, as before: a tick does not re-check those its own tag
    steps noted."""
    for _ in range(RECHECKS + 1):
        with engine.dispatcher_lock() as held:
            if not held:
                return None
            outcome = _dispatch()
        if outcome.more or not engine.runs_due():
            break
    if outcome.more:
        dispatch_flows_tenant.apply_async(headers={"_schema_name": connection.schema_name}, retry=False)
    return outcome


def _dispatch():
    # Runs it enters perform their first steps as they enter; any still due are dispatched below.
    _, segments_left = triggers.segment_changes_check()
    outcome = engine.flows_dispatch()
    if segments_left:
        outcome.more = True
    reclaimed = sender.leases_reclaim_expired()
    if reclaimed:
        logger.warning(
            "flows: %s messages of a dead sender are pending again in %s", reclaimed, connection.schema_name
        )
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
        if outcome is None:  # the tenant's dispatcher is at work (and kicks the senders): due again next tick
            return timezone.now()
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
    engine.sender_kick_taken()
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
