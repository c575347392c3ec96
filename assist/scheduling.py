"""What happens to a campaign when it is sent: its summary now, and again a day later.

`summaries_schedule` is plugged into campaigns.hooks.campaign_sent (assist/apps.py): it runs inside
the transaction that marks the campaign sent, so the day-after marker exists exactly when the
campaign is sent; the first summary is enqueued after commit (a worker cannot see the row before).
"""

import logging
from datetime import timedelta

from django.db import connection, transaction
from django.utils import timezone

from .models import SummaryDue
from .tasks import write_campaign_summary

logger = logging.getLogger(__name__)

SECOND_SUMMARY_AFTER = timedelta(hours=24)


def summaries_schedule(*, campaign_id):
    SummaryDue.objects.update_or_create(
        tenant_id=connection.tenant.pk,
        campaign_id=campaign_id,
        defaults={"due_at": timezone.now() + SECOND_SUMMARY_AFTER},
    )
    # robust: with the broker down the first summary is skipped (logged); the day-after one is a row.
    transaction.on_commit(lambda: write_campaign_summary.delay(campaign_id), robust=True)
