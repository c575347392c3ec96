"""Writes of the tracking app: hits, their roll-up, unsubscribes, preferences and delivery events."""

import logging
import re
from collections import Counter
from dataclasses import dataclass, field
from datetime import timedelta

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone

from campaigns.models import ERASED_EMAIL_DOMAIN, Campaign, CampaignRecipient, recipient_email_erased
from campaigns.privacy import suppression_add
from customers.models import Customer, Interaction
from customers.services import customer_resubscribe, customer_unsubscribe, customer_update, interaction_add
from events.services import event_emit
from tenancy.work import work_mark_soon

from .machine import is_machine_agent
from .models import IMPLIED_OPEN, CampaignStats, Hit, HitKind

logger = logging.getLogger(__name__)

USER_AGENT_MAX = 512

# Periodic work of this app (tenancy/work.py): a tenant with hits to roll up, a tenant with raw hits
# that will pass their retention.
ROLLUP_WORK = "tracking.rollup"
PRUNE_WORK = "tracking.prune"

# --- the hit path -------------------------------------------------------------------------------
# One round trip each. A lost hit costs one count, a slow one costs every hit behind it, so the
# commit does not wait for the WAL flush (synchronous_commit off for this implicit transaction
# only: a crash of PostgreSQL itself may lose the last fraction of a second of hits, nothing else).
# The recipient's delivery time (the ESP's, else when we sent it) decides in the same statement
# whether the hit came too soon after arriving to be a person, and whether its recipient was erased
# (GDPR): then the hit is still counted, but its address and browser string are not stored.

_OPEN_SQL = f"""
SET LOCAL synchronous_commit TO OFF;
INSERT INTO tracking_hits (kind, campaign_id, recipient_id, customer_id, link_id, is_machine, ip, user_agent, occurred_at)
SELECT '{HitKind.OPEN}', r.campaign_id, r.id, r.customer_id, NULL,
       %(machine)s OR r.sent_at IS NULL
           OR %(at)s < GREATEST(r.sent_at, r.delivered_at) + %(window)s * interval '1 second',
       CASE WHEN r.email LIKE %(erased)s THEN NULL ELSE %(ip)s::inet END,
       CASE WHEN r.email LIKE %(erased)s THEN '' ELSE %(agent)s END, %(at)s
FROM campaign_recipients r
WHERE r.id = %(recipient)s
"""

_CLICK_SQL = f"""
SET LOCAL synchronous_commit TO OFF;
WITH target AS (
    SELECT r.id, r.campaign_id, r.customer_id, r.sent_at, r.delivered_at, l.id AS link_id, l.url,
           r.email LIKE %(erased)s AS erased
    FROM campaign_recipients r
    JOIN campaign_links l ON l.campaign_id = r.campaign_id
    WHERE r.id = %(recipient)s AND l.id = %(link)s
), hit AS (
    INSERT INTO tracking_hits (kind, campaign_id, recipient_id, customer_id, link_id, is_machine, ip, user_agent, occurred_at)
    SELECT '{HitKind.CLICK}', t.campaign_id, t.id, t.customer_id, t.link_id,
           %(machine)s OR t.sent_at IS NULL
               OR %(at)s < GREATEST(t.sent_at, t.delivered_at) + %(window)s * interval '1 second',
           CASE WHEN t.erased THEN NULL ELSE %(ip)s::inet END,
           CASE WHEN t.erased THEN '' ELSE %(agent)s END, %(at)s
    FROM target t
)
SELECT url FROM target
"""


def _hit_params(*, tenant, recipient_id, ip, user_agent, occurred_at, machine=False):
    agent = (user_agent or "").replace("\x00", "")[:USER_AGENT_MAX]
    return {
        "recipient": recipient_id,
        "machine": machine or is_machine_agent(user_agent=agent, ip=ip),
        "window": tenant.machine_open_window_seconds,
        "ip": ip,
        "agent": agent,
        "at": occurred_at or timezone.now(),
        "erased": f"%@{ERASED_EMAIL_DOMAIN}",
    }


def hit_record_open(*, tenant, recipient_id, ip=None, user_agent="", occurred_at=None):
    """Append one open hit; False when the recipient does not exist (nothing is written then)."""
    params = _hit_params(
        tenant=tenant, recipient_id=recipient_id, ip=ip, user_agent=user_agent, occurred_at=occurred_at
    )
    with connection.cursor() as cursor:
        cursor.execute(_OPEN_SQL, params)
        cursor.cursor.nextset()
        stored = cursor.rowcount == 1
    if stored:
        # At most one more statement per second per tenant and process (tenancy.work.work_mark_soon).
        work_mark_soon(ROLLUP_WORK)
    return stored


def hit_record_click(
    *, tenant, recipient_id, link_id, ip=None, user_agent="", occurred_at=None, machine=False
):
    """Append one click hit and return the link's URL, or None (nothing written) when the link is not
    one of the recipient's campaign. `machine` marks a hit known to be a machine's (a HEAD request)."""
    params = _hit_params(
        tenant=tenant,
        recipient_id=recipient_id,
        ip=ip,
        user_agent=user_agent,
        occurred_at=occurred_at,
        machine=machine,
    )
    params["link"] = link_id
    with connection.cursor() as cursor:
        cursor.execute(_CLICK_SQL, params)
        cursor.cursor.nextset()
        row = cursor.fetchone()
    if row is None:
        return None
    work_mark_soon(ROLLUP_WORK)
    return row[0]


# --- the roll-up ----------------------------------------------------------------------------------
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


HIT_PRUNE_CHUNK = 10000

# The oldest hits come first in id order, so each chunk is a short walk from the start of the primary
# key; a chunk that deletes nothing means the oldest rows are too young (or not counted yet): done.
_PRUNE_SQL = """
DELETE FROM tracking_hits WHERE id IN (
    SELECT id FROM (SELECT id, processed_at, occurred_at FROM tracking_hits ORDER BY id LIMIT %(chunk)s) oldest
    WHERE processed_at IS NOT NULL AND occurred_at < %(cutoff)s
)
"""


def hits_rollup_due():
    """When this tenant has hits to roll up (now), or None: the sweep's probe (tenancy/work.py)."""
    return timezone.now() if Hit.objects.filter(processed_at__isnull=True).exists() else None


def hits_prune_due():
    """When this tenant's oldest raw hit passes its retention, or None (no hits): the prune's next run.
    The oldest hits come first in id order (see _PRUNE_SQL), so this reads one row of the primary key."""
    oldest = Hit.objects.order_by("id").values_list("occurred_at", flat=True).first()
    if oldest is None:
        return None
    return oldest + timedelta(days=settings.TRACKING_HIT_RETENTION_DAYS)


def hits_prune(*, older_than=None, chunk=HIT_PRUNE_CHUNK):
    """Delete raw hits of the current tenant that were counted and are older than the retention
    period (TRACKING_HIT_RETENTION_DAYS). Counters, first open/click times and link clicks stay."""
    from datetime import timedelta

    from django.conf import settings

    cutoff = timezone.now() - (older_than or timedelta(days=settings.TRACKING_HIT_RETENTION_DAYS))
    total = 0
    while True:
        with connection.cursor() as cursor:
            cursor.execute(_PRUNE_SQL, {"chunk": chunk, "cutoff": cutoff})
            deleted = cursor.rowcount
        total += deleted
        if deleted < chunk:
            return total


# --- unsubscribe and preferences ------------------------------------------------------------------
@transaction.atomic
def recipient_unsubscribe(*, recipient, source="link"):
    """Unsubscribe a recipient's customer from marketing through this campaign's link.

    Idempotent: a second call changes nothing, logs nothing and emits nothing.
    Returns True when something changed.
    """
    now = timezone.now()
    first_time = CampaignRecipient.objects.filter(pk=recipient.pk, unsubscribed_at__isnull=True).update(
        unsubscribed_at=now
    )
    if first_time:
        _stats_add(campaign_id=recipient.campaign_id, unsubscribes=1)
    changed = customer_unsubscribe(
        customer_id=recipient.customer_id,
        now=now,
        source=source,
        data={"campaign_id": recipient.campaign_id, "recipient_id": recipient.pk},
    )
    return bool(first_time) or changed


def _stats_add(*, campaign_id, **deltas):
    stats, _ = CampaignStats.objects.get_or_create(campaign_id=campaign_id)
    CampaignStats.objects.filter(pk=stats.pk).update(
        **{name: F(name) + value for name, value in deltas.items()}, updated_at=timezone.now()
    )


@transaction.atomic
def customer_preferences_update(*, customer, email_marketing, email_transactional, source="preferences"):
    """Set a customer's own email choices (the preference centre). Returns the names that changed.

    Turning marketing off is an unsubscribe (`customer.unsubscribed`); turning it on again or changing
    transactional email is a customer update (`customer.updated`, through customers' own service).
    """
    now = timezone.now()
    changed = []
    if not email_marketing and customer_unsubscribe(customer_id=customer.pk, now=now, source=source):
        changed += ["email_marketing", "unsubscribed_at"]
    customer = Customer.objects.get(pk=customer.pk)
    updates = {}
    if email_transactional != customer.email_transactional:
        updates["email_transactional"] = email_transactional
    if email_marketing and customer.unsubscribed_at is not None:
        # The person themselves: the one resubscribe that needs no one else's reason.
        changed += customer_resubscribe(
            customer=customer,
            source=source,
            reason="The customer turned marketing email on again.",
            also=updates,
        )
        customer = Customer.objects.get(pk=customer.pk)
    else:
        if email_marketing and not customer.email_marketing:
            updates["email_marketing"] = True  # a first opt-in
        if updates:
            customer, updated = customer_update(customer=customer, data=updates, source=source)
            changed += updated
    resubscribed = email_marketing and "unsubscribed_at" in changed
    if (updates or resubscribed) and changed:
        interaction_add(
            customer=customer,
            kind="preferences",
            body="Email preferences: marketing {}, transactional {}.".format(
                "on" if email_marketing else "off", "on" if email_transactional else "off"
            ),
            data={"source": source, "changed": sorted(set(changed))},
            occurred_at=now,
        )
    return sorted(set(changed))


# --- ESP delivery events --------------------------------------------------------------------------
DELIVERED, BOUNCED, SOFT_BOUNCED, COMPLAINED, REJECTED, UNSUBSCRIBED = (
    "delivered",
    "bounced",
    "soft_bounced",
    "complained",
    "rejected",
    "unsubscribed",
)
# From which recipient states each outcome may move a recipient (never back from a final bad one).
_FROM_STATES = {
    DELIVERED: ("pending", "sending", "sent"),
    BOUNCED: ("pending", "sending", "sent", "delivered"),
    SOFT_BOUNCED: ("pending", "sending", "sent"),
    COMPLAINED: ("pending", "sending", "sent", "delivered"),
    REJECTED: ("pending", "sending", "sent"),
}
_STATUS_FOR = {
    DELIVERED: "delivered",
    BOUNCED: "bounced",
    SOFT_BOUNCED: "bounced",
    COMPLAINED: "complained",
    REJECTED: "failed",
}
_SUPPRESSION_FOR = {BOUNCED: "hard_bounce", COMPLAINED: "complaint"}


@dataclass
class DeliveryOutcome:
    recipient_id: int | None = None
    status_changed: bool = False
    suppressed: bool = False
    counted: Counter = field(default_factory=Counter)


# campaigns.messages.message_id: "<c{campaign}.r{recipient}.{digest}@domain>"; reading the ids out of it
# finds the row by primary key, where a search by message_id alone would scan the table.
_OUR_MESSAGE_ID_RE = re.compile(r"^c(\d{1,18})\.r(\d{1,18})\.[0-9a-f]+@")


def _recipient_for(*, recipient_id=None, message_id=None, email=None):
    recipient = _recipient_matching(recipient_id=recipient_id, message_id=message_id, email=email)
    if recipient is None and email:
        # An erased customer's recipient no longer has the address the ESP names.
        recipient = _recipient_matching(recipient_id=recipient_id, message_id=message_id)
        if recipient is not None and not recipient_email_erased(recipient.email):
            return None
    return recipient


def _recipient_matching(*, recipient_id=None, message_id=None, email=None):
    queryset = CampaignRecipient.objects.all()
    if email:
        queryset = queryset.filter(email=email)
    if recipient_id:
        return queryset.filter(pk=recipient_id).first()
    bare = (message_id or "").strip().strip("<>")
    if not bare:
        return None
    candidates = [bare, f"<{bare}>"]
    ours = _OUR_MESSAGE_ID_RE.match(bare)
    if ours:
        campaign_id, recipient_id = map(int, ours.groups())
        return queryset.filter(pk=recipient_id, campaign_id=campaign_id, message_id__in=candidates).first()
    return queryset.filter(message_id__in=candidates).order_by("-id").first()


@transaction.atomic
def delivery_event_apply(
    *, outcome, email=None, message_id=None, recipient_id=None, occurred_at=None, detail=""
):
    """Apply one ESP delivery outcome (delivered, bounced, soft_bounced, complained, rejected,
    unsubscribed) to the recipient it concerns; a hard bounce or complaint suppresses the address
    whether or not the message was a campaign's. Safe to apply twice (ESPs retry webhooks)."""
    now = timezone.now()
    at = occurred_at or now
    email = (email or "").strip().lower() or None
    result = DeliveryOutcome()
    recipient = _recipient_for(recipient_id=recipient_id, message_id=message_id, email=email)
    erased = recipient is not None and recipient_email_erased(recipient.email)
    if recipient is not None:
        result.recipient_id = recipient.pk
        email = email or (None if erased else recipient.email)
    # After an erasure (GDPR) the outcome still counts, but nothing of the person is stored: no
    # server reply (it quotes the address), no interaction, a suppression by the address's hash only.
    detail = "" if erased else (detail or "")[:2000]

    if recipient is not None and outcome in _FROM_STATES:
        updates = {"status": _STATUS_FOR[outcome]}
        if outcome == DELIVERED:
            updates["delivered_at"] = at
        else:
            updates["error"] = f"{outcome.replace('_', ' ')}: {detail}".strip().rstrip(":")
        result.status_changed = bool(
            CampaignRecipient.objects.filter(pk=recipient.pk, status__in=_FROM_STATES[outcome]).update(
                **updates
            )
        )
        if result.status_changed and outcome != DELIVERED and not erased:
            kind = "email_complained" if outcome == COMPLAINED else "email_bounced"
            interaction_add(
                customer=Customer(pk=recipient.customer_id),
                kind=kind,
                body={
                    BOUNCED: "Email bounced (hard).",
                    SOFT_BOUNCED: "Email bounced (soft).",
                    REJECTED: "Email rejected by the sending service.",
                    COMPLAINED: "Marked the email as spam.",
                }[outcome],
                data={
                    "campaign_id": recipient.campaign_id,
                    "recipient_id": recipient.pk,
                    "outcome": outcome,
                    "detail": detail,
                },
                occurred_at=at,
            )

    reason = _SUPPRESSION_FOR.get(outcome)
    if reason and email:
        result.suppressed = suppression_add(email=email, reason=reason, detail=detail)
    if outcome == UNSUBSCRIBED and recipient is not None and not erased:
        recipient_unsubscribe(recipient=recipient, source="esp")
    return result


def hits_erase(*, customer_id, **_):
    """GDPR erase: the raw hits of the customer's messages keep no address or browser string."""
    from .models import Hit

    Hit.objects.filter(recipient__customer_id=customer_id).update(ip=None, user_agent="")
