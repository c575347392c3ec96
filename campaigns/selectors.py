"""Reads of the campaigns app: audiences, content, progress, recipients, due campaigns."""

from datetime import timedelta

from django.conf import settings
from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.db import connection
from django.db.models import Count, Exists, Min, OuterRef, Q
from django.utils import timezone

from customers.models import Customer
from segments.rules import RuleError
from segments.selectors import segment_customers as select

from .models import Campaign, CampaignLink, CampaignRecipient, Suppression

# What the sender accepts as an address: one @, no whitespace, a dot in the domain. Addresses are
# stored trimmed and lower-case; this keeps out the obviously broken ones imported from elsewhere.
VALID_EMAIL_SQL_RE = r"^[^@\s]+@[^@\s]+\.[^@\s]+$"

# `held`: outside an A/B test's sample, waiting for the winner (campaigns/abtests.py).
ACTIVE_RECIPIENT_STATUSES = ("pending", "sending", "held")


def recipients_exist(timestamp_field):
    """A set-field builder for the segment language (segments.rules.register_set_field): customers with
    a recipient row whose `timestamp_field` is set, in any campaign or in the campaigns named."""

    def build(values):
        rows = CampaignRecipient.objects.filter(
            customer=OuterRef("pk"), **{f"{timestamp_field}__isnull": False}
        )
        if values is not None:
            rows = rows.filter(campaign_id__in=values)
        return Exists(rows)

    return build


def segment_customers(*, segment):
    """The customers a segment matches now, as one SQL-shaped queryset (segments owns the rules)."""
    try:
        return select(segment=segment)
    except RuleError as exc:
        raise ValidationError({"segment": [f"The segment '{segment.name}' cannot be evaluated: {exc}"]})


def audience_queryset(*, campaign):
    """Customers who get this campaign: the segment minus the exclude segment, minus everyone who may
    not or cannot receive marketing email. Never evaluated in Python for the send; see audience_freeze."""
    if campaign.segment_id is None:
        return Customer.objects.none()
    audience = segment_customers(segment=campaign.segment).filter(
        email_marketing=True,
        unsubscribed_at__isnull=True,
        erased_at__isnull=True,
        email__isnull=False,
        email__regex=VALID_EMAIL_SQL_RE,
    )
    audience = audience.filter(~Exists(Suppression.objects.filter(email=OuterRef("email"))))
    if campaign.exclude_segment_id is not None:
        excluded = segment_customers(segment=campaign.exclude_segment).filter(pk=OuterRef("pk"))
        audience = audience.filter(~Exists(excluded))
    return audience


def marketing_skip_reason_sql(*, customer_id, email):
    """SQL giving why a message may not go to `email` (a column of customer `customer_id`) now, or NULL:
    the rules of the audience freeze, checked again at the moment of sending, so that whoever
    unsubscribed, withdrew consent, was suppressed or erased meanwhile is skipped, not mailed.

    Two primary-key lookups per row, run inside the claim's statement (leases.LeasedTable.claim),
    never a query per recipient."""
    customers, suppressions = Customer._meta.db_table, Suppression._meta.db_table
    return f"""(
        SELECT CASE
            WHEN c.erased_at IS NOT NULL THEN 'the customer was erased'
            WHEN c.unsubscribed_at IS NOT NULL THEN 'the customer unsubscribed'
            WHEN NOT c.email_marketing
                THEN 'the customer withdrew marketing consent'
            WHEN s.reason IS NOT NULL
                THEN 'the address is suppressed (' || replace(s.reason, '_', ' ') || ')'
        END
        FROM {customers} AS c LEFT JOIN {suppressions} AS s ON s.email = {email}
        WHERE c.id = {customer_id}
    )"""


def audience_count(*, campaign):
    return audience_queryset(campaign=campaign).count()


def campaign_content(*, campaign):
    """The subject and bodies a campaign sends: its own, else its template's (a blank field falls back)."""
    template = campaign.template
    return {
        "subject": campaign.subject or (template.subject if template else ""),
        "html": campaign.html_body or (template.html_body if template else ""),
        "text": campaign.text_body or (template.text_body if template else ""),
    }


def campaign_sender(*, campaign, tenant=None):
    """From, Reply-To and the footer's postal address: the campaign's, else the tenant's, else settings."""
    tenant = tenant or connection.tenant
    return {
        "from_email": campaign.from_email or getattr(tenant, "from_email", "") or settings.MAIL_FROM_ADDRESS,
        "from_name": campaign.from_name or getattr(tenant, "from_name", ""),
        "reply_to": campaign.reply_to or getattr(tenant, "reply_to", ""),
        "postal_address": getattr(tenant, "postal_address", ""),
    }


def campaign_links(*, campaign_id):
    return dict(CampaignLink.objects.filter(campaign_id=campaign_id).values_list("url", "id"))


# A campaign sent longer ago than this only moves with delivery reports: lists and the dashboard may
# show its recipient counts up to RECIPIENT_COUNTS_SECONDS old.
SETTLED_AFTER = timedelta(minutes=15)
RECIPIENT_COUNTS_SECONDS = 60
RECIPIENT_COUNTS_KEY = "campaign-recipient-counts"


def recipient_status_counts(*, campaigns):
    """{campaign id: {status: recipients}} of `campaigns` in one statement. count(*) reads only the
    (campaign, status) index (count("id") read every recipient row: 310 ms for a million, 130 ms
    now); the counts of campaigns settled since SETTLED_AFTER come from the cache when they can, so
    a list of big sent campaigns does not count millions of rows on every page."""
    settled_before = timezone.now() - SETTLED_AFTER
    keys = {
        campaign.pk: f"{RECIPIENT_COUNTS_KEY}:{campaign.pk}"
        for campaign in campaigns
        if campaign.status == "sent" and campaign.sent_at and campaign.sent_at < settled_before
    }
    cached = cache.get_many(list(keys.values())) if keys else {}
    counts = {pk: cached[key] for pk, key in keys.items() if key in cached}
    missing = [campaign.pk for campaign in campaigns if campaign.pk not in counts]
    if not missing:
        return counts
    counts.update({pk: {} for pk in missing})
    rows = (
        CampaignRecipient.objects.filter(campaign_id__in=missing)
        .values_list("campaign_id", "status")
        .annotate(n=Count("*"))
        .order_by()
    )
    for campaign_id, status, n in rows:
        counts[campaign_id][status] = n
    fresh = {keys[pk]: counts[pk] for pk in missing if pk in keys}
    if fresh:
        cache.set_many(fresh, RECIPIENT_COUNTS_SECONDS)
    return counts


def campaigns_progress(*, campaigns):
    """{campaign id: campaign_progress} of many campaigns in one statement (the campaign list)."""
    return {pk: _progress(counts) for pk, counts in recipient_status_counts(campaigns=campaigns).items()}


def campaign_progress(*, campaign):
    """Recipient counts by status plus totals, for the progress bar and the API (always live)."""
    counts = dict(
        CampaignRecipient.objects.filter(campaign=campaign)
        .values_list("status")
        .annotate(n=Count("*"))
        .values_list("status", "n")
    )
    return _progress(counts)


def _progress(counts):
    progress = {status: counts.get(status, 0) for status, _ in CampaignRecipient.STATUS_CHOICES}
    total = sum(progress.values())
    done = total - progress["pending"] - progress["sending"] - progress["held"]
    progress["total"] = total
    progress["done"] = done
    progress["percent"] = round(100 * done / total, 1) if total else 0.0
    return progress


def campaign_final_counts(*, campaign):
    progress = campaign_progress(campaign=campaign)
    return {
        "recipients": progress["total"],
        "sent": progress["sent"] + progress["delivered"] + progress["bounced"] + progress["complained"],
        "failed": progress["failed"],
        "pending": progress["pending"] + progress["sending"] + progress["held"],
    }


def campaign_recipients(*, campaign, status=None, variant=None):
    recipients = CampaignRecipient.objects.filter(campaign=campaign).order_by("id")
    if status:
        recipients = recipients.filter(status=status)
    if variant:
        recipients = recipients.filter(variant=variant)
    return recipients


def campaigns_due(*, now=None):
    return Campaign.objects.filter(status="scheduled", scheduled_at__lte=now or timezone.now()).order_by(
        "scheduled_at", "id"
    )


def campaigns_next_start():
    """When this tenant's next scheduled campaign is due, or None (the partial index `campaign_due`)."""
    return Campaign.objects.filter(status="scheduled").aggregate(due=Min("scheduled_at"))["due"]


def campaigns_stall_check_due(*, now=None):
    """When the stall check should look at this tenant again: at the next tick while a campaign is
    sending (one may go quiet any moment), else never (None)."""
    return (now or timezone.now()) if Campaign.objects.filter(status="sending").exists() else None


def leases_reclaim_due(*, now=None):
    """When the lease reclaimer should look at this tenant again, or None: when the earliest lease a
    worker holds runs out (renewals only push it later), else, while a campaign is sending, one lease
    from now (any claim taken from now on holds at least that long)."""
    held_until = CampaignRecipient.objects.filter(status="sending").aggregate(due=Min("lease_until"))["due"]
    if held_until is not None:
        return held_until
    if Campaign.objects.filter(status="sending").exists():
        return (now or timezone.now()) + timedelta(seconds=settings.CAMPAIGN_LEASE_SECONDS)
    return None


def campaigns_with_expired_leases(*, now=None):
    expired = CampaignRecipient.objects.filter(
        campaign=OuterRef("pk"), status="sending", lease_until__lt=now or timezone.now()
    )
    return Campaign.objects.filter(Exists(expired))


def campaigns_stalled(*, now=None, quiet_seconds):
    """Sending campaigns nobody is working on: recipients are due, none is held, none was sent lately.

    Their task messages are gone or late: a Redis restart loses every queued and unacked message (a
    sender that found Redis unreachable gave its claims back and stopped), and a worker that died
    between batches holds no lease while its task comes back only after the broker's visibility
    timeout. A live sender holds rows in `sending` or has sent within `quiet_seconds`."""
    now = now or timezone.now()
    cutoff = now - timedelta(seconds=quiet_seconds)
    recipients = CampaignRecipient.objects.filter(campaign=OuterRef("pk"))
    due = recipients.filter(status="pending").filter(Q(lease_until__isnull=True) | Q(lease_until__lte=now))
    return Campaign.objects.filter(status="sending", started_at__lt=cutoff).filter(
        Exists(due),
        ~Exists(recipients.filter(status="sending")),
        ~Exists(recipients.filter(sent_at__gte=cutoff)),
    )


def campaigns_done_but_sending():
    """Sending campaigns with no recipient left to send (their last worker died before finishing)."""
    active = CampaignRecipient.objects.filter(campaign=OuterRef("pk"), status__in=ACTIVE_RECIPIENT_STATUSES)
    return Campaign.objects.filter(status="sending").filter(~Exists(active))


def campaign_work_left(*, campaign_id):
    """(pending, sending, seconds until the earliest pending recipient is due or None)."""
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT count(*) FILTER (WHERE status = 'pending'),
                   count(*) FILTER (WHERE status = 'sending'),
                   EXTRACT(EPOCH FROM min(coalesce(lease_until, clock_timestamp())) FILTER (WHERE status = 'pending') - clock_timestamp())
            FROM campaign_recipients
            WHERE campaign_id = %s AND status IN ('pending', 'sending')
            """,
            [campaign_id],
        )
        pending, sending, due_in = cursor.fetchone()
    return pending, sending, (max(0.0, float(due_in)) if due_in is not None else None)


def customers_for_sending(*, ids):
    """{customer id: Customer} with only the fields templates can read."""
    fields = ("id", "email", "first_name", "last_name", "city", "country", "attributes")
    return {customer.id: customer for customer in Customer.objects.filter(id__in=ids).only(*fields)}


def campaigns_list(*, status=None, intent=None):
    campaigns = Campaign.objects.listed().select_related("template", "segment", "exclude_segment")
    if status:
        campaigns = campaigns.filter(status=status)
    if intent:
        campaigns = campaigns.filter(intent=intent)
    return campaigns


def campaign_suggestions(query, limit=20):
    """[(id, name)] of campaigns whose name contains `query` (the segment builder's value picker)."""
    rows = Campaign.objects.listed().exclude(status="draft").order_by("-created_at", "-id")
    query = (query or "").strip()
    if query.isdigit():
        rows = rows.filter(pk=int(query))
    elif query:
        rows = rows.filter(name__icontains=query)
    return [(str(pk), f"{name} (#{pk})") for pk, name in rows.values_list("pk", "name")[:limit]]


def campaigns_scheduled_with_segment(segment):
    """Names of the scheduled campaigns that send to or exclude the segment, soonest first."""
    return (
        Campaign.objects.listed()
        .filter(Q(segment=segment) | Q(exclude_segment=segment), status="scheduled")
        .order_by("scheduled_at", "id")
        .values_list("name", flat=True)
    )
