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
    _tenant_job(
        lifecycle.DISPATCH_WORK,
        claim,
        jobs.campaigns_dispatch_due,
        next_due=selectors.campaigns_next_start,
        note=(logging.INFO, "campaigns: started %s in %s"),
    )


@shared_task(ignore_result=True)
def resume_stalled_campaigns():
    """Beat, every 20 s: sending campaigns nobody works on (their task messages were lost with a Redis
    restart, or their worker died between batches) get fresh batch tasks. Only tenants with a campaign
    sending have a marker."""
    return work_fan_out(lifecycle.STALL_WORK, resume_tenant_stalled_campaigns)


@shared_task(ignore_result=True)
def resume_tenant_stalled_campaigns(claim):
    _tenant_job(
        lifecycle.STALL_WORK,
        claim,
        jobs.campaigns_resume_stalled,
        next_due=selectors.campaigns_stall_check_due,
        note=(logging.WARNING, "campaigns: resumed stalled %s in %s"),
    )


@shared_task(ignore_result=True)
def reclaim_expired_leases():
    """Beat: recipients held by a worker that died go back to pending, and their campaign resumes.
    Only tenants whose workers hold leases (or that have campaigns sending) have a marker."""
    return work_fan_out(lifecycle.LEASES_WORK, reclaim_tenant_expired_leases)


@shared_task(ignore_result=True)
def reclaim_tenant_expired_leases(claim):
    _tenant_job(
        lifecycle.LEASES_WORK,
        claim,
        jobs.leases_reclaim_expired,
        next_due=selectors.leases_reclaim_due,
        note=(logging.WARNING, "campaigns: reclaimed expired leases of %s in %s"),
    )


@shared_task(ignore_result=True)
def decide_ab_tests():
    """Beat, every 30 s: a task for each tenant with an A/B test running (tenancy/work.py)."""
    return work_fan_out(lifecycle.AB_WORK, decide_tenant_ab_tests)


@shared_task(ignore_result=True)
def decide_tenant_ab_tests(claim):
    """Tests whose wait is over get their winner (and the rest of the audience is released to it);
    running ones note each variant's probability of being best for the chart."""
    _tenant_job(
        lifecycle.AB_WORK,
        claim,
        abtests.ab_tests_decide,
        next_due=abtests.ab_tests_next_due,
        note=(logging.INFO, "campaigns: A/B tests decided for %s in %s"),
    )


def _tenant_job(kind, claim, job, *, next_due, note):
    """One tenant's turn of a beat job under its work marker: run `job`, log what it did (`note`: level
    and message), leave the marker due when `next_due` says."""

    def work():
        done = job()
        if done:
            logger.log(note[0], note[1], done, connection.schema_name)
        return next_due()

    work_run(kind, claim, work)
