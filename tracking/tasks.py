"""Beat work of the tracking app."""

import logging
import time

from celery import shared_task
from django_tenants.utils import tenant_context

from tenancy.models import Tenant

from .services import hits_prune, hits_rollup

logger = logging.getLogger(__name__)

# A tenant with a large backlog yields after this long, so every tenant gets its turn each run.
TENANT_BUDGET_SECONDS = 10.0
BATCHES_PER_TURN = 50


@shared_task(ignore_result=True)
def rollup_all_tenants():
    """Roll up every serving tenant's new hits (beat, every 15 s). Safe to overlap with itself."""
    totals = {"tenants": 0, "hits": 0}
    for tenant in Tenant.objects.serving().only("pk", "schema_name"):
        started = time.monotonic()
        with tenant_context(tenant):
            while time.monotonic() - started < TENANT_BUDGET_SECONDS:
                try:
                    result = hits_rollup(max_batches=BATCHES_PER_TURN)
                except Exception:  # one tenant's failure must not stop the others; its hits wait
                    logger.exception("tracking roll-up failed for %s", tenant.schema_name)
                    break
                totals["hits"] += result.hits
                if result.locked_out or result.batches < BATCHES_PER_TURN:
                    break
        totals["tenants"] += 1
    return totals


@shared_task(ignore_result=True)
def prune_hits_all_tenants():
    """Delete counted raw hits past their retention in every serving tenant (beat, hourly)."""
    deleted = 0
    for tenant in Tenant.objects.serving().only("pk", "schema_name"):
        with tenant_context(tenant):
            try:
                deleted += hits_prune()
            except Exception:
                logger.exception("pruning tracking hits failed for %s", tenant.schema_name)
    return deleted
