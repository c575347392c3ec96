"""Reads behind the marketers' dashboard (the admin's index page on a tenant host).

A handful of aggregate queries, whatever the tenant's size: customers and their growth, the consent
rate, the latest sent campaigns with their human open/click rates, campaigns sending now with their
progress, and the next scheduled sends. Rates follow the stats API: unique human events over
`delivered`, or over `sent` while no delivery data came in.

The customer figures read every customer (450 ms at a million): they are kept in the cache for
CUSTOMER_FIGURES_SECONDS per tenant, or until a customer is added, and shown with the time they were
counted. The campaign rows are live while a campaign sends; the recipient counts of one sent more
than a quarter of an hour ago may be a minute old (campaigns.selectors.recipient_status_counts).
"""

from datetime import timedelta

from django.core.cache import cache
from django.db import transaction
from django.db.models import Count, Q
from django.db.models.functions import TruncDate
from django.utils import timezone

from campaigns.models import Campaign, SenderDomain
from campaigns.selectors import recipient_status_counts
from customers.attribution import revenue_since
from customers.models import Customer
from customers.pagination import planner_rows
from flows.models import Flow
from segments.models import Segment
from tracking.models import CampaignStats

GROWTH_DAYS = 30
REVENUE_DAYS = 30
CUSTOMER_FIGURES_SECONDS = 300
CUSTOMER_FIGURES_KEY = "dashboard:customer-figures"
CUSTOMER_FIGURES_KEEP_SECONDS = 7 * 24 * 3600  # shown while a recount runs, however old
CUSTOMER_RECOUNT_LOCK = "dashboard:customer-figures:recounting"
CUSTOMER_RECOUNT_LOCK_SECONDS = 120
RECOUNT_IN_BACKGROUND_ABOVE = 100_000
RECENT_CAMPAIGNS = 5
UPCOMING_CAMPAIGNS = 5
RECENT_CUSTOMERS = 5
SENDING_STATUSES = ("sending", "paused")
JUST_FINISHED = timedelta(minutes=15)
# Below this many new customers in either period a percentage change is noise (6 vs 12 is not "-50%"):
# the dashboard shows the two counts instead.
GROWTH_PERCENT_MIN = 50
_SENT_STATES = ("sent", "delivered", "bounced", "complained")
_DELIVERED_STATES = ("delivered", "complained")


def _percent(part, whole):
    return round(100 * part / whole, 1) if whole else 0.0


def dashboard_customers(*, now=None):
    """Totals, growth over the last 30 days against the 30 before, consent rate, new per day."""
    now = now or timezone.now()
    since = now - timedelta(days=GROWTH_DAYS)
    before = since - timedelta(days=GROWTH_DAYS)
    live = Customer.objects.filter(erased_at__isnull=True)
    totals = live.aggregate(
        total=Count("id"),
        with_email=Count("id", filter=Q(email__isnull=False)),
        consenting=Count(
            "id", filter=Q(email__isnull=False, email_marketing=True, unsubscribed_at__isnull=True)
        ),
        new=Count("id", filter=Q(created_at__gte=since)),
        new_before=Count("id", filter=Q(created_at__gte=before, created_at__lt=since)),
    )
    per_day = dict(
        live.filter(created_at__gte=since)
        .annotate(day=TruncDate("created_at"))
        .values("day")
        .annotate(n=Count("id"))
        .values_list("day", "n")
    )
    days = _growth_days(since)
    growth = None
    if min(totals["new_before"], totals["new"]) >= GROWTH_PERCENT_MIN:
        growth = round(100 * (totals["new"] - totals["new_before"]) / totals["new_before"], 1)
    return {
        **totals,
        "consent_rate": _percent(totals["consenting"], totals["with_email"]),
        "growth_percent": growth,
        "per_day": [{"day": day, "new": per_day.get(day, 0)} for day in days],
    }


def _growth_days(since):
    first_day = timezone.localtime(since + timedelta(days=1)).date()  # days of the tenant's calendar
    return [first_day + timedelta(days=i) for i in range(GROWTH_DAYS)]


def _counting(now):
    """What the dashboard shows of a big account's customers before their first count is in."""
    days = _growth_days(now - timedelta(days=GROWTH_DAYS))
    return {
        **dict.fromkeys(("total", "with_email", "consenting", "new", "new_before", "consent_rate")),
        "growth_percent": None,
        "per_day": [{"day": day, "new": 0} for day in days],
        "as_of": None,
        "counting": True,
    }


def dashboard_customers_cached():
    """dashboard_customers plus `as_of`, counted at most once per CUSTOMER_FIGURES_SECONDS, and again
    as soon as a customer is added (the figures remember the newest id; the cache adds the schema).

    A small account is recounted on the spot. An account of more than RECOUNT_IN_BACKGROUND_ABOVE
    customers (by the planner's estimate: no rows read) is recounted by a worker while the page shows
    the last figures with the time they were counted (before the first count: "counting"): at a
    million customers the count takes 450 ms, and a webshop adding customers all day would otherwise
    make every visit pay it."""
    newest = Customer.objects.order_by("-id").values_list("id", flat=True).first() or 0
    now = timezone.now()
    figures = cache.get(CUSTOMER_FIGURES_KEY)
    fresh = (
        figures is not None
        and figures.get("newest") == newest
        and now - figures["as_of"] < timedelta(seconds=CUSTOMER_FIGURES_SECONDS)
    )
    if fresh:
        return figures
    if planner_rows(Customer.objects.all()) <= RECOUNT_IN_BACKGROUND_ABOVE:
        return dashboard_customers_count()
    if cache.add(CUSTOMER_RECOUNT_LOCK, 1, CUSTOMER_RECOUNT_LOCK_SECONDS):  # one recount at a time
        from .tasks import dashboard_customers_recount  # noqa: PLC0415  (crm_project.tasks imports this module)

        # The schema travels in the message's headers (tenant_schemas_celery).
        transaction.on_commit(dashboard_customers_recount.delay)
    if figures is None:  # never counted (or the cache lost them): the first count is on its way
        return _counting(now)
    return {**figures, "recounting": True}


def dashboard_customers_count():
    """Count now and keep the figures (the worker's recount, a small account's page)."""
    now = timezone.now()
    newest = Customer.objects.order_by("-id").values_list("id", flat=True).first() or 0
    figures = {**dashboard_customers(now=now), "as_of": now, "newest": newest}
    cache.set(CUSTOMER_FIGURES_KEY, figures, CUSTOMER_FIGURES_KEEP_SECONDS)
    cache.delete(CUSTOMER_RECOUNT_LOCK)
    return figures


def dashboard_recent_campaigns(*, limit=RECENT_CAMPAIGNS):
    """The latest sent campaigns with recipients, human open and click rates (as percentages)."""
    campaigns = list(Campaign.objects.listed().filter(status="sent").order_by("-sent_at", "-id")[:limit])
    ids = [campaign.pk for campaign in campaigns]
    counts = recipient_status_counts(campaigns=campaigns)
    stats = {row.pk: row for row in CampaignStats.objects.filter(pk__in=ids)}
    rows = []
    for campaign in campaigns:
        by_status = counts.get(campaign.pk, {})
        sent = sum(by_status.get(state, 0) for state in _SENT_STATES)
        delivered = sum(by_status.get(state, 0) for state in _DELIVERED_STATES)
        base = delivered or sent
        counters = stats.get(campaign.pk) or CampaignStats(campaign_id=campaign.pk)
        rows.append(
            {
                "campaign": campaign,
                "recipients": sum(by_status.values()),
                "sent": sent,
                "open_rate": min(100.0, _percent(counters.unique_opens, base)),
                "click_rate": min(100.0, _percent(counters.unique_clicks, base)),
                "unsubscribes": counters.unsubscribes,
            }
        )
    return rows


def dashboard_sending(*, now=None):
    """Campaigns sending now (or paused mid-send) with how far they are, and those that finished in
    the last few minutes (so a marketer watching a send sees it reach 100%)."""
    now = now or timezone.now()
    campaigns = list(
        Campaign.objects.listed()
        .filter(Q(status__in=SENDING_STATUSES) | Q(status="sent", sent_at__gte=now - JUST_FINISHED))
        .order_by("started_at", "id")
    )
    counts = recipient_status_counts(campaigns=campaigns)
    rows = []
    for campaign in campaigns:
        by_status = counts.get(campaign.pk, {})
        total = sum(by_status.values())
        done = total - by_status.get("pending", 0) - by_status.get("sending", 0) - by_status.get("held", 0)
        rows.append(
            {
                "campaign": campaign,
                "total": total,
                "done": done,
                "failed": by_status.get("failed", 0),
                "percent": _percent(done, total),
                "finished": campaign.status == "sent",
            }
        )
    rows.sort(key=lambda row: row["finished"])  # still sending first, just finished after
    return rows


def dashboard_upcoming(*, limit=UPCOMING_CAMPAIGNS):
    return list(Campaign.objects.listed().filter(status="scheduled").order_by("scheduled_at", "id")[:limit])


def dashboard_recent_customers(*, limit=RECENT_CUSTOMERS):
    return list(Customer.objects.filter(erased_at__isnull=True).order_by("-created_at", "-id")[:limit])


def dashboard_revenue(*, now=None):
    """Attributed revenue of orders placed in the last 30 days, and the campaigns and flows that earned most."""
    figures = revenue_since(since=(now or timezone.now()) - timedelta(days=REVENUE_DAYS))
    names = dict(
        Campaign.objects.filter(pk__in=[row[0] for row in figures["top_campaigns"]]).values_list("pk", "name")
    )
    flow_names = dict(
        Flow.objects.filter(pk__in=[row[0] for row in figures["top_flows"]]).values_list("pk", "name")
    )
    return {
        "revenue": figures["revenue"],
        "orders": figures["orders"],
        "top_campaigns": [
            {"id": campaign_id, "name": names[campaign_id], "orders": n, "revenue": revenue}
            for campaign_id, n, revenue in figures["top_campaigns"]
            if campaign_id in names
        ],
        "top_flows": [
            {"id": flow_id, "name": flow_names[flow_id], "orders": n, "revenue": revenue}
            for flow_id, n, revenue in figures["top_flows"]
            if flow_id in flow_names
        ],
    }


def dashboard_data(*, now=None):
    return {
        "revenue": dashboard_revenue(now=now),
        "customers": dashboard_customers(now=now) if now else dashboard_customers_cached(),
        "recent_campaigns": dashboard_recent_campaigns(),
        "sending": dashboard_sending(now=now),
        "upcoming": dashboard_upcoming(),
        "recent_customers": dashboard_recent_customers(),
        "drafts": Campaign.objects.listed().filter(status="draft").count(),
    }


# --- "Getting started": a new account's first steps, each read from the account's own data ----------

ONBOARDING_STEPS = ("sender", "domain", "settings", "customers", "segment", "test", "campaign")
# A test copy is remembered in the cache per campaign for 30 days (campaigns.readiness: the pre-send
# checklist's "test copy sent" reads the same key); the checklist looks at the latest few campaigns.
TEST_SEND_KEY = "campaign-test-send:{}"
TEST_SEND_LOOKBACK = 20


def onboarding_status(*, tenant):
    """{step: done} for ONBOARDING_STEPS. Each is one indexed `EXISTS` (or a cache read): the
    dashboard of a million-customer account pays nothing for it."""
    recent = list(Campaign.objects.listed().order_by("-id").values_list("id", flat=True)[:TEST_SEND_LOOKBACK])
    tested = bool(recent) and bool(cache.get_many([TEST_SEND_KEY.format(pk) for pk in recent]))
    return {
        "sender": bool(tenant.from_email and tenant.from_name),
        "domain": SenderDomain.objects.filter(status="verified").exists(),
        "settings": bool(tenant.settings_saved_at or tenant.brand_logo_url),
        "customers": Customer.objects.exists(),
        "segment": Segment.objects.exists(),
        "test": tested,
        "campaign": Campaign.objects.listed().filter(status__in=("sending", "paused", "sent")).exists(),
    }


def onboarding_draft():
    """The campaign a test is best sent from: the newest draft, else None."""
    return Campaign.objects.listed().filter(status="draft").order_by("-id").first()
