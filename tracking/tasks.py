"""Beat work of the tracking app: each tick visits only the tenants that have hits (tenancy/work.py).

A hit marks its tenant (`ROLLUP_WORK`); the beat task hands each marked tenant's roll-up to a task of
its own in that tenant's schema, so a tenant with a large backlog never delays another's roll-up.
"""

import logging
import time
from datetime import timedelta

from celery import shared_task
from django.utils import timezone

from tenancy.work import work_done, work_fan_out, work_hold, work_mark, work_run

from .hits import PRUNE_WORK, hits_prune, hits_prune_due
from .rollup import ROLLUP_WORK, hits_rollup

logger = logging.getLogger(__name__)

# One task's turn: a tenant with a large backlog goes on as a fresh task at the back of the queue
# after this long, so the other tenants' roll-ups (and sends) get their turn in between.
TENANT_BUDGET_SECONDS = 5.0
BATCHES_PER_TURN = 50
LOCKED_OUT_RETRY_SECONDS = 5


@shared_task(ignore_result=True)
def rollup_all_tenants():
    """Beat, every 15 s: a roll-up task for each tenant with new hits. One statement per tick."""
    return work_fan_out(ROLLUP_WORK, rollup_tenant_hits)


@shared_task(ignore_result=True)
def rollup_tenant_hits(claim):
    """Roll up this tenant's new hits for one turn; a backlog left goes on as a new task."""
    started = time.monotonic()
    hits = 0
    while True:
        result = hits_rollup(max_batches=BATCHES_PER_TURN)
        hits += result.hits
        if result.locked_out:  # another roll-up of this tenant runs; it takes what is there
            work_done(
                ROLLUP_WORK, claim, again_at=timezone.now() + timedelta(seconds=LOCKED_OUT_RETRY_SECONDS)
            )
            break
        if result.batches < BATCHES_PER_TURN:
            work_done(ROLLUP_WORK, claim)
            break
        if time.monotonic() - started >= TENANT_BUDGET_SECONDS:
            if work_hold(ROLLUP_WORK, claim):
                rollup_tenant_hits.apply_async(kwargs={"claim": claim})
            break
    if hits:
        # Counted hits are pruned once past their retention: a marker for then (the earliest stays).
        due = hits_prune_due()
        if due is not None:
            work_mark(PRUNE_WORK, due_at=due)
    return hits


@shared_task(ignore_result=True)
def prune_hits_all_tenants():
    """Beat, hourly: prune the raw hits of each tenant that has hits past their retention."""
    return work_fan_out(PRUNE_WORK, prune_tenant_hits)


@shared_task(ignore_result=True)
def prune_tenant_hits(claim):
    """Delete this tenant's counted raw hits past their retention; due again when the oldest left is."""

    def work():
        deleted = hits_prune()
        if deleted:
            logger.info("tracking: pruned %s raw hits", deleted)
        return hits_prune_due()

    work_run(PRUNE_WORK, claim, work)
