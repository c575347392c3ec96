"""The roll-up: unprocessed hits become first open/click times, counters, interactions and events.

Set-based SQL: each batch is the same handful of statements over a temp table whatever its size, so
the cost per hit stays flat however many hits a send brings.
"""

from dataclasses import dataclass, field

from django.db import connection, transaction
from django.utils import timezone

from campaigns.models import Campaign, recipient_email_erased
from customers.hooks import customers_changed_note
from customers.models import Interaction
from events.services import event_emit

from .models import IMPLIED_OPEN, Hit, HitKind

# Periodic work (tenancy/work.py): a tenant with hits to roll up.
ROLLUP_WORK = "tracking.rollup"

ROLLUP_LOCK_NAMESPACE = 7_100_001  # pg advisory lock key (namespace, hash of the schema)
ROLLUP_BATCH_SIZE = 2000


@dataclass
class RollupResult:
    hits: int = 0
    batches: int = 0
    new_opens: int = 0
    new_clicks: int = 0
    locked_out: bool = False
    campaigns: set = field(default_factory=set)


def hits_rollup(*, batch_size=ROLLUP_BATCH_SIZE, max_batches=None):
    """Roll unprocessed hits of the current tenant up, batch by batch, until none are left.

    Each batch is one transaction: its hits are marked processed together with every effect they
    have, so a crash repeats a batch whole or not at all. A transaction-level advisory lock per
    schema keeps two roll-ups of one tenant from overlapping (the second one returns at once).
    """
    result = RollupResult()
    while max_batches is None or result.batches < max_batches:
        with transaction.atomic():
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT pg_try_advisory_xact_lock(%s, hashtext(current_schema()))",
                    [ROLLUP_LOCK_NAMESPACE],
                )
                if not cursor.fetchone()[0]:
                    result.locked_out = True
                    return result
            done = _rollup_batch(batch_size=batch_size, result=result)
        if done < batch_size:
            break
    return result


_BATCH_TABLE_SQL = """
CREATE TEMP TABLE IF NOT EXISTS tracking_batch (
    id bigint, kind char(1), campaign_id bigint, recipient_id bigint, link_id bigint,
    is_machine boolean, occurred_at timestamptz
) ON COMMIT DELETE ROWS;
TRUNCATE tracking_batch;
"""

_CLAIM_SQL = """
WITH claimed AS (
    UPDATE tracking_hits h SET processed_at = %(now)s
    WHERE h.id IN (
        SELECT id FROM tracking_hits WHERE processed_at IS NULL ORDER BY id LIMIT %(limit)s
    )
    RETURNING h.id, h.kind, h.campaign_id, h.recipient_id, h.link_id, h.is_machine, h.occurred_at
)
INSERT INTO tracking_batch SELECT * FROM claimed
"""

# Hits carry no foreign keys (see Hit): those of a campaign, recipient or link deleted since are
# marked processed and counted nowhere.
_ORPHANS_SQL = """
DELETE FROM tracking_batch b
WHERE NOT EXISTS (SELECT 1 FROM campaign_recipients r WHERE r.id = b.recipient_id AND r.campaign_id = b.campaign_id)
   OR (b.link_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM campaign_links l WHERE l.id = b.link_id))
"""

# The sender and the webhooks change recipient rows too; taking this batch's rows in id order first
# means two multi-row writers wait for each other instead of deadlocking.
_LOCK_RECIPIENTS_SQL = """
SELECT 1 FROM campaign_recipients
WHERE id IN (SELECT recipient_id FROM tracking_batch WHERE NOT is_machine)
ORDER BY id FOR NO KEY UPDATE
"""

# A recipient's first human open or click sets first_opened_at (a click counts as an open). When that
# first sign is a click, the click also stands for one open (IMPLIED_OPEN in the batch), in its hour.
_FIRST_OPENS_SQL = f"""
WITH firsts AS (
    SELECT recipient_id,
           min(occurred_at) AS first_at,
           min(occurred_at) FILTER (WHERE kind = '{HitKind.OPEN}') AS first_pixel,
           min(occurred_at) FILTER (WHERE kind = '{HitKind.CLICK}') AS first_click
    FROM tracking_batch WHERE NOT is_machine GROUP BY recipient_id
), opened AS (
    UPDATE campaign_recipients r SET first_opened_at = f.first_at
    FROM firsts f
    WHERE r.id = f.recipient_id AND r.first_opened_at IS NULL
    RETURNING r.id, r.campaign_id, r.customer_id, r.email, f.first_at,
              (f.first_pixel IS NULL OR f.first_click < f.first_pixel) AS implied
), implied AS (
    INSERT INTO tracking_batch (id, kind, campaign_id, recipient_id, link_id, is_machine, occurred_at)
    SELECT 0, '{IMPLIED_OPEN}', campaign_id, id, NULL, false, first_at FROM opened WHERE implied
), counted AS (
    INSERT INTO tracking_campaign_stats AS s (campaign_id, unique_opens)
    SELECT campaign_id, count(*) FROM opened GROUP BY campaign_id
    ON CONFLICT (campaign_id) DO UPDATE SET unique_opens = s.unique_opens + EXCLUDED.unique_opens
)
SELECT id, campaign_id, customer_id, email, first_at FROM opened
"""

_FIRST_CLICKS_SQL = f"""
WITH firsts AS (
    SELECT recipient_id, min(occurred_at) AS first_at
    FROM tracking_batch WHERE kind = '{HitKind.CLICK}' AND NOT is_machine GROUP BY recipient_id
), clicked AS (
    UPDATE campaign_recipients r SET first_clicked_at = f.first_at
    FROM firsts f
    WHERE r.id = f.recipient_id AND r.first_clicked_at IS NULL
    RETURNING r.campaign_id
)
INSERT INTO tracking_campaign_stats AS s (campaign_id, unique_clicks)
SELECT campaign_id, count(*) FROM clicked GROUP BY campaign_id
ON CONFLICT (campaign_id) DO UPDATE SET unique_clicks = s.unique_clicks + EXCLUDED.unique_clicks
"""

# Per (recipient, link): the first human click of each link is a new unique click of that link
# (xmax = 0 tells a fresh insert from an update of an existing row).
_LINK_CLICKS_SQL = f"""
WITH agg AS (
    SELECT recipient_id, link_id, campaign_id, min(occurred_at) AS first_at, count(*) AS n
    FROM tracking_batch WHERE kind = '{HitKind.CLICK}' AND NOT is_machine
    GROUP BY recipient_id, link_id, campaign_id
), upserted AS (
    INSERT INTO tracking_link_clicks AS lc (recipient_id, link_id, campaign_id, first_clicked_at, clicks)
    SELECT recipient_id, link_id, campaign_id, first_at, n FROM agg
    ON CONFLICT (recipient_id, link_id) DO UPDATE SET clicks = lc.clicks + EXCLUDED.clicks
    RETURNING lc.recipient_id, lc.link_id, lc.campaign_id, lc.first_clicked_at, (lc.xmax = 0) AS inserted
), link_counted AS (
    INSERT INTO tracking_link_stats AS s (link_id, campaign_id, clicks, unique_clicks)
    SELECT u.link_id, u.campaign_id, sum(a.n), count(*) FILTER (WHERE u.inserted)
    FROM upserted u JOIN agg a ON a.recipient_id = u.recipient_id AND a.link_id = u.link_id
    GROUP BY u.link_id, u.campaign_id
    ON CONFLICT (link_id) DO UPDATE SET clicks = s.clicks + EXCLUDED.clicks,
                                        unique_clicks = s.unique_clicks + EXCLUDED.unique_clicks
)
SELECT u.recipient_id, u.campaign_id, r.customer_id, r.email, l.url, u.first_clicked_at, u.link_id
FROM upserted u
JOIN campaign_recipients r ON r.id = u.recipient_id
JOIN campaign_links l ON l.id = u.link_id
WHERE u.inserted
"""

_TOTALS_SQL = f"""
WITH totals AS (
    INSERT INTO tracking_campaign_stats AS s (campaign_id, opens, machine_opens, clicks, updated_at)
    SELECT campaign_id,
           count(*) FILTER (WHERE kind IN ('{HitKind.OPEN}', '{IMPLIED_OPEN}') AND NOT is_machine),
           count(*) FILTER (WHERE kind = '{HitKind.OPEN}' AND is_machine),
           count(*) FILTER (WHERE kind = '{HitKind.CLICK}' AND NOT is_machine),
           %(now)s
    FROM tracking_batch GROUP BY campaign_id
    ON CONFLICT (campaign_id) DO UPDATE SET opens = s.opens + EXCLUDED.opens,
                                            machine_opens = s.machine_opens + EXCLUDED.machine_opens,
                                            clicks = s.clicks + EXCLUDED.clicks,
                                            updated_at = EXCLUDED.updated_at
    RETURNING s.campaign_id
)
INSERT INTO tracking_hourly_stats AS h (campaign_id, hour, opens, clicks)
SELECT campaign_id, date_trunc('hour', occurred_at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC',
       count(*) FILTER (WHERE kind IN ('{HitKind.OPEN}', '{IMPLIED_OPEN}')), count(*) FILTER (WHERE kind = '{HitKind.CLICK}')
FROM tracking_batch WHERE NOT is_machine
GROUP BY 1, 2
ON CONFLICT (campaign_id, hour) DO UPDATE SET opens = h.opens + EXCLUDED.opens,
                                              clicks = h.clicks + EXCLUDED.clicks
"""


def _rollup_batch(*, batch_size, result):
    now = timezone.now()
    with connection.cursor() as cursor:
        cursor.execute(_BATCH_TABLE_SQL)
        cursor.execute(_CLAIM_SQL, {"now": now, "limit": batch_size})
        claimed = cursor.rowcount
        if claimed == 0:
            return 0
        cursor.execute(_ORPHANS_SQL)
        cursor.execute(_LOCK_RECIPIENTS_SQL)
        cursor.execute(_FIRST_OPENS_SQL)
        opened = cursor.fetchall()
        cursor.execute(_FIRST_CLICKS_SQL)
        cursor.execute(_LINK_CLICKS_SQL)
        clicked = cursor.fetchall()
        cursor.execute(_TOTALS_SQL, {"now": now})
        cursor.execute("SELECT DISTINCT campaign_id FROM tracking_batch")
        campaign_ids = {row[0] for row in cursor.fetchall()}
    _interactions_and_events(opened=opened, clicked=clicked)
    # A first open or click can bring a customer into a segment (opened_campaign, clicked_campaign):
    # one note for the batch's customers, for flows' segment triggers.
    customers = {row[2] for row in opened} | {row[2] for row in clicked}
    customers_changed_note(customer_ids=sorted(customers - {None}))
    result.hits += claimed
    result.batches += 1
    result.new_opens += len(opened)
    result.new_clicks += len(clicked)
    result.campaigns |= campaign_ids
    return claimed


def _interactions_and_events(*, opened, clicked):
    """One `email_opened` interaction and `email.opened` event per recipient's first human open;
    one `email_clicked` interaction and `email.clicked` event per recipient's first click of each link.
    None for an erased customer's recipient (GDPR): the hits count in the campaign's figures only."""
    opened = [row for row in opened if not recipient_email_erased(row[3])]
    clicked = [row for row in clicked if not recipient_email_erased(row[3])]
    campaign_ids = {row[1] for row in opened} | {row[1] for row in clicked}
    names = dict(Campaign.objects.filter(pk__in=campaign_ids).values_list("pk", "name"))
    interactions = []
    for recipient_id, campaign_id, customer_id, email, first_at in opened:
        name = names.get(campaign_id, "")
        interactions.append(
            Interaction(
                customer_id=customer_id,
                kind="email_opened",
                body=f"Opened “{name}”",
                data={"campaign_id": campaign_id, "campaign": name, "recipient_id": recipient_id},
                occurred_at=first_at,
            )
        )
        event_emit(
            type="email.opened",
            data={"campaign_id": campaign_id, "customer_id": customer_id, "email": email},
            occurred_at=first_at,
        )
    for recipient_id, campaign_id, customer_id, email, url, first_at, link_id in clicked:
        name = names.get(campaign_id, "")
        interactions.append(
            Interaction(
                customer_id=customer_id,
                kind="email_clicked",
                body=f"Clicked {url} in “{name}”",
                data={
                    "campaign_id": campaign_id,
                    "campaign": name,
                    "recipient_id": recipient_id,
                    "link_id": link_id,
                    "url": url,
                },
                occurred_at=first_at,
            )
        )
        event_emit(
            type="email.clicked",
            data={"campaign_id": campaign_id, "customer_id": customer_id, "email": email, "url": url},
            occurred_at=first_at,
        )
    Interaction.objects.bulk_create(interactions, batch_size=1000)


def hits_rollup_due():
    """When this tenant has hits to roll up (now), or None: the sweep's probe (tenancy/work.py)."""
    return timezone.now() if Hit.objects.filter(processed_at__isnull=True).exists() else None
