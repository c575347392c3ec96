"""Celery tasks of AI assistance: thin, id-taking, safe to run twice (STYLE 4)."""

import logging
from datetime import timedelta

from celery import shared_task
from django.db import connection
from django.utils import timezone
from django_tenants.utils import tenant_context

from campaigns.models import Campaign

from . import services
from .models import SummaryDue

logger = logging.getLogger(__name__)

DUE_BATCH = 200
# A summary handed to a worker comes due again after this long unless the worker wrote it.
RETRY_AFTER = timedelta(hours=1)


@shared_task(ignore_result=True, acks_late=True)
def write_campaign_summary(campaign_id, final=False):
    """Write one campaign's summary in the tenant the message names; `final` is the day-after one."""
    campaign = Campaign.objects.filter(pk=campaign_id).first()
    if campaign is not None:
        services.campaign_summary_write(campaign=campaign, tenant=connection.tenant)
    if final:
        SummaryDue.objects.filter(tenant_id=connection.tenant.pk, campaign_id=campaign_id).delete()


@shared_task(ignore_result=True)
def write_due_summaries():
    """Beat, every 5 minutes: hand every summary that came due to a worker, in its tenant.

    One indexed read of the public table; each row is claimed by moving its due time an hour on with
    a conditional UPDATE (of two overlapping ticks exactly one enqueues it)."""
    now = timezone.now()
    due = list(
        SummaryDue.objects.filter(due_at__lte=now).select_related("tenant").order_by("due_at")[:DUE_BATCH]
    )
    for row in due:
        if not row.tenant.is_active:
            row.delete()
            continue
        claimed = SummaryDue.objects.filter(pk=row.pk, due_at=row.due_at).update(due_at=now + RETRY_AFTER)
        if claimed != 1:
            continue
        with tenant_context(row.tenant):
            write_campaign_summary.delay(row.campaign_id, final=True)
    return len(due)
