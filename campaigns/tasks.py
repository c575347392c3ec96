"""Celery tasks of the campaigns app: thin, id-taking, safe to run twice (STYLE 4).

`send_campaign_batches` runs in the tenant's schema (tenant-schemas-celery carries it in the message);
the beat tasks run in public and loop over the serving tenants themselves.
"""

import logging

from celery import shared_task
from django.db import connection
from django_tenants.utils import tenant_context
from kombu.exceptions import OperationalError

from tenancy.models import Tenant

from . import abtests, sender, services

logger = logging.getLogger(__name__)


@shared_task(ignore_result=True, acks_late=True)
def send_campaign_batches(campaign_id):
    """Send batches of one campaign for a while, then re-enqueue itself while work is left."""
    services.campaign_resume_arrived(campaign_id=campaign_id)
    outcome = sender.run(campaign_id=campaign_id)
    if outcome.more:
        try:
            send_campaign_batches.apply_async((campaign_id,), countdown=outcome.delay)
        except OperationalError as exc:  # the broker (Redis) is down; this batch's results are recorded
            logger.warning(
                "sending paused: Redis unreachable (%s); campaign %s in %s resumes when the stall "
                "check finds it after Redis is back",
                exc,
                campaign_id,
                connection.schema_name,
            )
    return {"sent": outcome.sent, "failed": outcome.failed, "retried": outcome.retried}


def _each_tenant(work):
    for tenant in Tenant.objects.serving():
        try:
            with tenant_context(tenant):
                work(tenant)
        except Exception:  # one tenant's trouble never stops the others
            logger.exception("campaigns: periodic work failed for tenant %s", tenant.schema_name)


@shared_task(ignore_result=True)
def dispatch_due_campaigns():
    """Beat, every minute: start every tenant's scheduled campaigns whose time has come."""

    def work(tenant):
        started = services.campaigns_start_due()
        if started:
            logger.info("campaigns: started %s in %s", started, tenant.schema_name)

    _each_tenant(work)


@shared_task(ignore_result=True)
def resume_stalled_campaigns():
    """Beat, every 20 s: sending campaigns nobody works on (their task messages were lost with a Redis
    restart, or their worker died between batches) get fresh batch tasks."""

    def work(tenant):
        campaign_ids = services.campaigns_resume_stalled()
        if campaign_ids:
            logger.warning("campaigns: resumed stalled %s in %s", campaign_ids, tenant.schema_name)

    _each_tenant(work)


@shared_task(ignore_result=True)
def reclaim_expired_leases():
    """Beat: recipients held by a worker that died go back to pending, and their campaign resumes."""

    def work(tenant):
        campaign_ids = services.leases_reclaim()
        if campaign_ids:
            logger.warning(
                "campaigns: reclaimed expired leases of %s in %s", campaign_ids, tenant.schema_name
            )

    _each_tenant(work)


@shared_task(ignore_result=True)
def decide_ab_tests():
    """Beat, every 30 s: A/B tests whose wait is over get their winner (and the rest of the audience
    is released to it); running ones note each variant's probability of being best for the chart."""

    def work(tenant):
        decided = abtests.ab_tests_decide_due()
        if decided:
            logger.info("campaigns: A/B tests decided for %s in %s", decided, tenant.schema_name)

    _each_tenant(work)
