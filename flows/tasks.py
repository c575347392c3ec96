"""Celery tasks of the flows app: thin, safe to run twice (STYLE 4).

`dispatch_flows` (beat, every FLOW_TICK_SECONDS) visits the tenants and runs `dispatch_flows_tenant`'s
work for each: the per-tenant unit (`engine.dispatch_tenant`, then the sender) is separate so that a
beat which knows which tenants have work (work markers) can call it for those alone. A tenant whose
dispatch ran out of time gets its own task to go on."""

import logging

from celery import shared_task
from django.db import connection
from django_tenants.utils import tenant_context

from tenancy.models import Tenant

from . import engine, sender, triggers

logger = logging.getLogger(__name__)


def flows_tenant_work():
    """One tenant's flow work (the connection's current tenant): advance due runs, then send what is
    queued if nobody else is. Returns the engine's outcome."""
    outcome = engine.dispatch_tenant()
    reclaimed = sender.leases_reclaim()
    if reclaimed:
        logger.warning(
            "flows: %s messages of a dead sender are pending again in %s", reclaimed, connection.schema_name
        )
    if outcome.more:
        dispatch_flows_tenant.apply_async(headers={"_schema_name": connection.schema_name}, retry=False)
    return outcome


def tenants_with_flow_work():
    """The tenants beat visits. Today: every serving tenant (a work-marker read replaces this)."""
    return Tenant.objects.serving()


@shared_task(ignore_result=True)
def dispatch_flows():
    """Beat: each tenant's due runs advance; their queued emails go out."""
    for tenant in tenants_with_flow_work():
        try:
            with tenant_context(tenant):
                flows_tenant_work()
                if sender.carriers_with_work():
                    send_flow_messages.apply_async(headers={"_schema_name": tenant.schema_name}, retry=False)
        except Exception:  # one tenant's trouble never stops the others
            logger.exception("flows: dispatch failed for tenant %s", tenant.schema_name)


@shared_task(ignore_result=True, acks_late=True)
def dispatch_flows_tenant():
    """One tenant's dispatch (runs in its schema): kicked after entries and events, and by itself."""
    if getattr(connection.tenant, "is_active", True):
        flows_tenant_work()


@shared_task(ignore_result=True, acks_late=True)
def send_flow_messages():
    """Send the tenant's queued flow emails for a while; re-enqueue while work is left."""
    outcome = sender.send_due()
    if outcome.more:
        send_flow_messages.apply_async(
            headers={"_schema_name": connection.schema_name}, countdown=1, retry=False
        )
    return {"sent": outcome.sent, "failed": outcome.failed, "skipped": outcome.skipped}


@shared_task(ignore_result=True)
def sweep_flow_triggers():
    """Beat, every minute: customers created, segments entered and dates enter their flows."""
    for tenant in Tenant.objects.serving():
        try:
            with tenant_context(tenant):
                triggers.sweep_tenant()
        except Exception:
            logger.exception("flows: trigger sweep failed for tenant %s", tenant.schema_name)
