"""Celery tasks of the campaigns app: thin, id-taking, safe to run twice (STYLE 4).

`send_campaign_batches` runs in the tenant's schema (tenant-schemas-celery carries it in the message).
The beat tasks run in public and hand a task to each tenant that has work of their kind (tenancy/work.py):
a tenant with nothing scheduled or sending costs them nothing.
"""

import logging

from celery import shared_task
from django.db import connection
from kombu.exceptions import OperationalError

from tenancy.work import work_fan_out, work_run

from . import abtests, jobs, lifecycle, selectors, sender

logger = logging.getLogger(__name__)


@shared_task(ignore_result=True, acks_late=True)
def send_campaign_batches(campaign_id):
    """Send batches of one campaign for a while, then re-enqueue itself while work is left."""
    jobs.campaign_resume_arrived(campaign_id=campaign_id)
    outcome = sender.campaign_batches_send(campaign_id=campaign_id)
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


@shared_task(ignore_result=True)
def dispatch_due_campaigns():
    """Beat, every 15 s: a task for each tenant with a scheduled campaign whose time has come (one
    statement per tick, whatever the number of tenants: tenancy/work.py)."""
    return work_fan_out(lifecycle.DISPATCH_WORK, dispatch_tenant_campaigns)


@shared_task(ignore_result=True)
def dispatch_tenant_campaigns(claim):
    """Start this tenant's scheduled campaigns whose time has come; due again at the next one's time."""

    def work():
        started = jobs.campaigns_dispatch_due()
        if started:
            logger.info("campaigns: started %s in %s", started, connection.schema_name)
        return selectors.campaigns_next_start()

    work_run(lifecycle.DISPATCH_WORK, claim, work)


@shared_task(ignore_result=True)
def resume_stalled_campaigns():
    """Beat, every 20 s: sending campaigns nobody works on (their task messages were lost with a Redis
    restart, or their worker died between batches) get fresh batch tasks. Only tenants with a campaign
    sending have a marker."""
    return work_fan_out(lifecycle.STALL_WORK, resume_tenant_stalled_campaigns)


@shared_task(ignore_result=True)
def resume_tenant_stalled_campaigns(claim):
    def work():
        campaign_ids = jobs.campaigns_resume_stalled()
        if campaign_ids:
            logger.warning("campaigns: resumed stalled %s in %s", campaign_ids, connection.schema_name)
        return selectors.campaigns_stall_check_due()

    work_run(lifecycle.STALL_WORK, claim, work)


@shared_task(ignore_result=True)
def reclaim_expired_leases():
    """Beat: recipients held by a worker that died go back to pending, and their campaign resumes.
    Only tenants whose workers hold leases (or that have campaigns sending) have a marker."""
    return work_fan_out(lifecycle.LEASES_WORK, reclaim_tenant_expired_leases)


@shared_task(ignore_result=True)
def reclaim_tenant_expired_leases(claim):
    def work():
        campaign_ids = jobs.leases_reclaim_expired()
        if campaign_ids:
            logger.warning(
                "campaigns: reclaimed expired leases of %s in %s", campaign_ids, connection.schema_name
            )
        return selectors.leases_reclaim_due()

    work_run(lifecycle.LEASES_WORK, claim, work)


@shared_task(ignore_result=True)
def decide_ab_tests():
    """Beat, every 30 s: a task for each tenant with an A/B test running (tenancy/work.py)."""
    return work_fan_out(lifecycle.AB_WORK, decide_tenant_ab_tests)


@shared_task(ignore_result=True)
def decide_tenant_ab_tests(claim):
    """Tests whose wait is over get their winner (and the rest of the audience is released to it);
    running ones note each variant's probability of being best for the chart."""

    def work():
        decided = abtests.ab_tests_decide()
        if decided:
            logger.info("campaigns: A/B tests decided for %s in %s", decided, connection.schema_name)
        return abtests.ab_tests_next_due()

    work_run(lifecycle.AB_WORK, claim, work)
