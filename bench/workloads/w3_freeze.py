"""Row 3: freeze a campaign's audience (campaigns.lifecycle.audience_freeze) against one hand-written
INSERT ... SELECT of the same audience into the same table (same indexes, same conflict rule)."""

import time

from django.db import connection, transaction
from django_tenants.utils import schema_context

from bench import data
from bench.core import Check, GrowthPoint, Row, median
from campaigns.lifecycle import audience_freeze
from campaigns.models import Campaign
from segments.models import Segment

TARGET = "≤ 1.5× baseline time"
RULES = {"combinator": "and", "rules": [{"field": "country", "operator": "=", "value": "HU"}]}
# The audience as a person would write it: the segment, consent, not unsubscribed or erased, a
# plausible address, not suppressed; one row per address.
HAND_WRITTEN = r"""
INSERT INTO campaign_recipients (campaign_id, customer_id, email, status, message_id, attempts, error)
SELECT %s, c.id, c.email, 'pending', '', 0, ''
FROM customers_customer c
WHERE lower(c.country) = 'hu'
  AND c.erased_at IS NULL AND c.email_marketing AND c.unsubscribed_at IS NULL AND c.email IS NOT NULL
  AND c.email ~ '^[^@\s]+@[^@\s]+\.[^@\s]+$'
  AND NOT EXISTS (SELECT 1 FROM suppressions s WHERE s.email = c.email)
ON CONFLICT (campaign_id, email) DO NOTHING
"""


def _campaigns(schema):
    with schema_context(schema):
        segment, _ = Segment.objects.get_or_create(name="bench: customers in HU", defaults={"rules": RULES})
        ours, _ = Campaign.objects.get_or_create(
            name="bench: freeze (ours)", defaults={"segment": segment, "status": "sending", "subject": "Hi"}
        )
        baseline, _ = Campaign.objects.get_or_create(
            name="bench: freeze (baseline)",
            defaults={"segment": segment, "status": "sending", "subject": "Hi"},
        )
        return ours, baseline


def _clear(schema, *campaign_ids):
    with schema_context(schema), connection.cursor() as cursor:
        cursor.execute("DELETE FROM campaign_recipients WHERE campaign_id = ANY(%s)", [list(campaign_ids)])
    data.vacuum(schema, "campaign_recipients")


def run(ctx, *, size, main):
    schema = ctx.data_schema
    ours_campaign, base_campaign = _campaigns(schema)
    ours_times, base_times, ours_rows, base_rows = [], [], [], []
    for _ in range(ctx.scale.freeze_runs):
        _clear(schema, ours_campaign.pk, base_campaign.pk)
        with schema_context(schema):
            with transaction.atomic(), connection.cursor() as cursor:
                started = time.perf_counter()
                cursor.execute(HAND_WRITTEN, [base_campaign.pk])
                base_times.append(time.perf_counter() - started)
                base_rows.append(cursor.rowcount)
            _clear(schema, base_campaign.pk)
            with transaction.atomic():
                started = time.perf_counter()
                ours_rows.append(audience_freeze(campaign=ours_campaign))
                ours_times.append(time.perf_counter() - started)
    with schema_context(schema), connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM campaign_recipients WHERE campaign_id = %s", [ours_campaign.pk])
        stored = cursor.fetchone()[0]
    _clear(schema, ours_campaign.pk, base_campaign.pk)
    ours_s, base_s = median(ours_times), median(base_times)
    recipients = ours_rows[-1]
    point = GrowthPoint("3 audience freeze", size, ours_s, base_s)
    ctx.log(
        f"row 3 @ {size:,}: freeze {ours_s:.2f} s, INSERT ... SELECT {base_s:.2f} s ({recipients:,} rows)"
    )
    if not main:
        return point, None
    return point, Row(
        key="3",
        workload=f"freeze the audience of a {recipients:,}-recipient campaign",
        unit="s",
        ours=ours_s,
        baseline=base_s,
        target=TARGET,
        rule=lambda ours, base, ratio: ratio <= 1.5,
        note=f"median of {len(ours_times)}; {recipients / ours_s:,.0f} recipients/s",
        checks=[
            Check("recipients frozen = baseline rows", recipients, base_rows[-1]),
            Check("recipients stored", stored, recipients),
        ],
    )
