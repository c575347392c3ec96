"""Reads of the tracking app: what a link's token names, campaign stats."""

from datetime import timedelta
from decimal import ROUND_HALF_UP, Decimal

from django.db import connection

from campaigns.abtests import ab_summary
from campaigns.models import Campaign, CampaignRecipient
from campaigns.selectors import recipient_status_counts
from campaigns.tokens import TokenKind, read_token
from customers.attribution import attributed_revenue
from customers.models import Customer

from .models import CampaignStats, HourlyStats
from .ratelimit import hits_not_stored


def recipient_for_token(*, token):
    """The recipient an unsubscribe token names (with customer and campaign), or None."""
    ids = read_token(TokenKind.UNSUBSCRIBE, token)
    if not ids or len(ids) != 1:
        return None
    return (
        CampaignRecipient.objects.select_related("customer", "campaign")
        .filter(pk=ids[0], customer__erased_at__isnull=True)
        .first()
    )


def recipient_for_web_version(*, token):
    """The recipient a web version token names (customer, campaign and its template), or None
    (also when the customer was erased: the page would show their personal data)."""
    ids = read_token(TokenKind.WEB_VERSION, token)
    if not ids or len(ids) != 1:
        return None
    return (
        CampaignRecipient.objects.select_related("customer", "campaign", "campaign__template")
        .filter(pk=ids[0], customer__erased_at__isnull=True)
        .first()
    )


def customer_for_token(*, token):
    """The customer a preferences token names, or None (also for erased customers)."""
    ids = read_token(TokenKind.PREFERENCES, token)
    if not ids or len(ids) != 1:
        return None
    return Customer.objects.filter(pk=ids[0], erased_at__isnull=True).first()


# Recipient states as the stats count them: everything that left us was sent; a complaint means the
# message arrived, so it counts as delivered too.
_SENT_STATES = ("sent", "delivered", "bounced", "complained")
_DELIVERED_STATES = ("delivered", "complained")


def _status_counts(campaign_id):
    # One pass over the (campaign, status) index; no heap access once the table is vacuumed.
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT status, count(*) FROM campaign_recipients WHERE campaign_id = %s GROUP BY status",
            [campaign_id],
        )
        return dict(cursor.fetchall())


def _links(campaign_id):
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT l.url, COALESCE(s.clicks, 0), COALESCE(s.unique_clicks, 0)
            FROM campaign_links l LEFT JOIN tracking_link_stats s ON s.link_id = l.id
            WHERE l.campaign_id = %s
            ORDER BY COALESCE(s.clicks, 0) DESC, l.url, l.id
            """,
            [campaign_id],
        )
        return [{"url": url, "clicks": clicks, "unique_clicks": unique} for url, clicks, unique in cursor]


def _timeline(campaign_id):
    """Every hour from the first to the last with activity (UTC), quiet hours as zeros."""
    rows = list(
        HourlyStats.objects.filter(campaign_id=campaign_id)
        .order_by("hour")
        .values_list("hour", "opens", "clicks")
    )
    if not rows:
        return []
    by_hour = {hour: (opens, clicks) for hour, opens, clicks in rows}
    hour, last = rows[0][0], rows[-1][0]
    timeline = []
    while hour <= last:
        opens, clicks = by_hour.get(hour, (0, 0))
        timeline.append({"hour": hour, "opens": opens, "clicks": clicks})
        hour += timedelta(hours=1)
    return timeline


CENT = Decimal("0.01")


def _rate(part, whole):
    return min(1.0, part / whole) if whole else 0.0


def _money(value):
    return str(Decimal(value).quantize(CENT, rounding=ROUND_HALF_UP))


def revenue_figures(*, campaign_id, base):
    """Attributed orders and revenue of a campaign, over `base` (delivered, else sent) recipients."""
    figures = attributed_revenue(campaign_ids=[campaign_id]).get(campaign_id)
    figures = figures or {"orders": 0, "revenue": Decimal("0.00"), "customers": 0}
    return {
        "orders": figures["orders"],
        "revenue": _money(figures["revenue"]),
        "conversion_rate": _rate(figures["customers"], base),
        "revenue_per_recipient": _money(figures["revenue"] / base if base else 0),
    }


def campaign_stats(*, campaign, settled_counts_cached=False):
    """The numbers of PRODUCT.md's stats: recipient states, human opens and clicks, per link, per hour.

    Rates are unique human events over `delivered`, or over `sent` while no delivery data came in.
    `settled_counts_cached` (the admin's page): the recipient states of a campaign sent a while ago may
    come from the cache, up to a minute old (campaigns.selectors.recipient_status_counts); the API
    always counts.
    """
    if settled_counts_cached:
        statuses = recipient_status_counts(campaigns=[campaign])[campaign.pk]
    else:
        statuses = _status_counts(campaign.pk)
    counters = CampaignStats.objects.filter(pk=campaign.pk).first() or CampaignStats(campaign_id=campaign.pk)
    sent = sum(statuses.get(state, 0) for state in _SENT_STATES)
    delivered = sum(statuses.get(state, 0) for state in _DELIVERED_STATES)
    base = delivered or sent
    return {
        "status": campaign.status,
        "recipients": sum(statuses.values()),
        "pending": statuses.get("pending", 0) + statuses.get("sending", 0) + statuses.get("held", 0),
        "sent": sent,
        "delivered": delivered,
        "failed": statuses.get("failed", 0),
        "bounced": statuses.get("bounced", 0),
        "complained": statuses.get("complained", 0),
        "cancelled": statuses.get("cancelled", 0),
        "skipped": statuses.get("skipped", 0),
        "opens": counters.opens,
        "unique_opens": counters.unique_opens,
        "machine_opens": counters.machine_opens,
        "clicks": counters.clicks,
        "unique_clicks": counters.unique_clicks,
        "unsubscribes": counters.unsubscribes,
        "hits_not_stored": hits_not_stored(campaign_id=campaign.pk),
        "open_rate": _rate(counters.unique_opens, base),
        "click_rate": _rate(counters.unique_clicks, base),
        "click_to_open_rate": _rate(counters.unique_clicks, counters.unique_opens),
        "links": _links(campaign.pk),
        "timeline": _timeline(campaign.pk),
        **revenue_figures(campaign_id=campaign.pk, base=base),
        **_ab_figures(campaign),
    }


def _ab_figures(campaign):
    summary = ab_summary(campaign=campaign)
    for variant in summary["variants"]:
        variant["revenue"] = _money(variant["revenue"])
    return summary


def campaign_for_stats(*, campaign_id):
    return Campaign.objects.filter(pk=campaign_id).first()
