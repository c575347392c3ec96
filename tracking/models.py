"""Raw tracking hits and the counters the roll-up keeps for each campaign.

The hit path appends one `Hit` row per open or click (nothing else); the beat task
`tracking.tasks.rollup_all_tenants` turns unprocessed hits into recipients' first open/click times,
the interaction log, `email.*` events and the counters below, so stats never scan raw hits.
"""

from django.db import models
from django.db.models import Q
from django.utils import timezone

from campaigns.models import Campaign, CampaignLink, CampaignRecipient
from customers.models import Customer


class HitKind(models.TextChoices):
    """What a `Hit` is: one letter, as stored (the hit path appends millions of rows)."""

    OPEN = "o", "Open"
    CLICK = "c", "Click"


# Not stored: the roll-up's batch gets one of these for a recipient whose first sign of life is a
# click, standing for the open that click proves (tracking/rollup.py).
IMPLIED_OPEN = "i"


class Hit(models.Model):
    """One open-pixel load or link click, exactly as it arrived. Append-only but for `processed_at`."""

    kind = models.CharField(max_length=1, choices=HitKind.choices)
    # No database constraints: the hit path is a single INSERT ... SELECT that already proves the
    # recipient (and link) exist, and deleting a campaign must not wait on millions of hit rows.
    campaign = models.ForeignKey(
        Campaign, on_delete=models.DO_NOTHING, db_constraint=False, db_index=False, related_name="+"
    )
    recipient = models.ForeignKey(
        CampaignRecipient, on_delete=models.DO_NOTHING, db_constraint=False, related_name="+"
    )
    link = models.ForeignKey(
        CampaignLink,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        db_index=False,
        null=True,
        blank=True,
        related_name="+",
    )
    # The recipient's customer, copied by the hit path's INSERT ... SELECT (it reads the recipient
    # anyway): revenue attribution finds a customer's last touches through (customer, time) without
    # a join per hit.
    customer = models.ForeignKey(
        Customer,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        db_index=False,
        null=True,
        blank=True,
        related_name="+",
    )
    is_machine = models.BooleanField(
        default=False, help_text="A prefetcher, scanner or bot (kept, but left out of human rates)."
    )
    ip = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.CharField(max_length=512, blank=True, default="")
    occurred_at = models.DateTimeField(default=timezone.now)
    processed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "tracking_hits"
        ordering = ["id"]
        indexes = [
            # The roll-up's work queue: small, because processed rows leave it.
            models.Index(
                fields=["id"], name="tracking_hit_unprocessed", condition=Q(processed_at__isnull=True)
            ),
            # Revenue attribution's touch lookup (customers/attribution.py, TOUCH_SOURCES["campaigns"]):
            # one customer's human hits in a time range, read from the index alone.
            models.Index(
                fields=["customer", "occurred_at"],
                include=["kind", "campaign", "id"],
                name="tracking_hit_touch",
                condition=Q(is_machine=False),
            ),
        ]

    def __str__(self):
        return f"{self.get_kind_display()} of recipient #{self.recipient_id}"


class CampaignStats(models.Model):
    """Counters of one campaign's tracking, kept by the roll-up (opens, clicks) and unsubscribes."""

    campaign = models.OneToOneField(
        Campaign, on_delete=models.CASCADE, primary_key=True, related_name="tracking_stats"
    )
    # Human opens: pixel loads plus one implied open for a recipient whose first sign of life is a click.
    opens = models.PositiveBigIntegerField(default=0, db_default=0)
    unique_opens = models.PositiveBigIntegerField(default=0, db_default=0)
    machine_opens = models.PositiveBigIntegerField(default=0, db_default=0)
    clicks = models.PositiveBigIntegerField(default=0, db_default=0)
    unique_clicks = models.PositiveBigIntegerField(default=0, db_default=0)
    unsubscribes = models.PositiveBigIntegerField(default=0, db_default=0)
    updated_at = models.DateTimeField(default=timezone.now, db_default=models.functions.Now())

    class Meta:
        db_table = "tracking_campaign_stats"
        verbose_name_plural = "campaign stats"


class LinkStats(models.Model):
    """Human clicks of one campaign link: total and distinct recipients."""

    link = models.OneToOneField(CampaignLink, on_delete=models.CASCADE, primary_key=True, related_name="+")
    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="+")
    clicks = models.PositiveBigIntegerField(default=0, db_default=0)
    unique_clicks = models.PositiveBigIntegerField(default=0, db_default=0)

    class Meta:
        db_table = "tracking_link_stats"
        verbose_name_plural = "link stats"


class HourlyStats(models.Model):
    """Human opens and clicks of one campaign in one UTC hour (the stats timeline)."""

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="+")
    hour = models.DateTimeField()
    opens = models.PositiveBigIntegerField(default=0, db_default=0)
    clicks = models.PositiveBigIntegerField(default=0, db_default=0)

    class Meta:
        db_table = "tracking_hourly_stats"
        ordering = ["campaign", "hour"]
        verbose_name_plural = "hourly stats"
        constraints = [models.UniqueConstraint(fields=["campaign", "hour"], name="tracking_hourly_unique")]


class LinkClick(models.Model):
    """The first human click of a link by a recipient (and how often they clicked it since)."""

    # (recipient, link) is unique, so that index serves lookups by recipient too.
    recipient = models.ForeignKey(
        CampaignRecipient, on_delete=models.CASCADE, db_index=False, related_name="+"
    )
    link = models.ForeignKey(CampaignLink, on_delete=models.CASCADE, db_index=False, related_name="+")
    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, db_index=False, related_name="+")
    first_clicked_at = models.DateTimeField()
    clicks = models.PositiveIntegerField(default=1)

    class Meta:
        db_table = "tracking_link_clicks"
        constraints = [
            models.UniqueConstraint(fields=["recipient", "link"], name="tracking_link_click_unique"),
        ]
        indexes = [models.Index(fields=["link"], name="tracking_link_click_link")]


class CampaignReport(Campaign):
    """A campaign seen through its results: the admin's stats pages hang off this proxy."""

    class Meta:
        proxy = True
        verbose_name = "campaign report"
        verbose_name_plural = "campaign reports"
