"""Raw hits: the pixel's and the redirect's one-statement writes, their retention and their erasure."""

from datetime import timedelta

from django.conf import settings
from django.db import connection
from django.utils import timezone

from campaigns.models import ERASED_EMAIL_DOMAIN
from tenancy.work import work_mark_soon

from .machine import is_machine_agent
from .models import Hit, HitKind
from .rollup import ROLLUP_WORK

USER_AGENT_MAX = 512

# Periodic work (tenancy/work.py): a tenant with raw hits that will pass their retention.
PRUNE_WORK = "tracking.prune"

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


HIT_PRUNE_CHUNK = 10000

# The oldest hits come first in id order, so each chunk is a short walk from the start of the primary
# key; a chunk that deletes nothing means the oldest rows are too young (or not counted yet): done.
_PRUNE_SQL = """
DELETE FROM tracking_hits WHERE id IN (
    SELECT id FROM (SELECT id, processed_at, occurred_at FROM tracking_hits ORDER BY id LIMIT %(chunk)s) oldest
    WHERE processed_at IS NOT NULL AND occurred_at < %(cutoff)s
)
"""


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
    cutoff = timezone.now() - (older_than or timedelta(days=settings.TRACKING_HIT_RETENTION_DAYS))
    total = 0
    while True:
        with connection.cursor() as cursor:
            cursor.execute(_PRUNE_SQL, {"chunk": chunk, "cutoff": cutoff})
            deleted = cursor.rowcount
        total += deleted
        if deleted < chunk:
            return total


def hits_erase(*, customer_id, **_):
    """GDPR erase: the raw hits of the customer's messages keep no address or browser string."""
    Hit.objects.filter(recipient__customer_id=customer_id).update(ip=None, user_agent="")
