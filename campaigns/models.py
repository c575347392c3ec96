from django.db import models
from django.utils import timezone

from customers.models import Customer
from segments.models import Segment


class EmailTemplate(models.Model):
    KIND_CHOICES = [("marketing", "Marketing"), ("transactional", "Transactional")]
    KEY_CHOICES = [("order_confirmation", "Order confirmation"), ("order_shipped", "Order shipped")]

    name = models.CharField(max_length=200)
    kind = models.CharField(max_length=15, choices=KIND_CHOICES, default="marketing")
    key = models.CharField(max_length=50, choices=KEY_CHOICES, null=True, blank=True)
    subject = models.CharField(max_length=998)
    html_body = models.TextField(blank=True, default="")
    text_body = models.TextField(blank=True, default="")
    # The block editor's design (campaigns/design.py); when set, html_body and text_body are its
    # compiled output (MJML -> HTML -> inlined CSS -> text), rebuilt on every save.
    design = models.JSONField(null=True, blank=True, default=None)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "email_templates"
        ordering = ["name", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["key"],
                condition=models.Q(kind="transactional"),
                name="transactional_template_key_unique",
            )
        ]

    def __str__(self):
        return self.name


# A campaign may carry another feature's messages (a flow step's emails: flows.FlowCarrier), so that
# they get the sender's guarantees and tracking. Such a campaign is not one of the marketer's: the app
# that owns it names its one-to-one relation here at start-up, and `listed()` leaves those out.
CARRIER_RELATIONS = []


class CampaignQuerySet(models.QuerySet):
    def listed(self):
        """The marketer's own campaigns (lists, pickers, dashboard, the campaign API)."""
        return self.filter(**{f"{relation}__isnull": True for relation in CARRIER_RELATIONS})


class Campaign(models.Model):
    # What the campaign is for (PRODUCT.md "AI assistance"), set from its subject and content.
    INTENT_CHOICES = [
        ("promotion", "Promotion"),
        ("product_launch", "Product launch"),
        ("newsletter", "Newsletter"),
        ("winback", "Win-back"),
        ("cart_recovery", "Cart recovery"),
        ("announcement", "Announcement"),
        ("event_invite", "Event invitation"),
        ("survey", "Survey"),
        ("other", "Other"),
    ]
    STATUS_CHOICES = [
        ("draft", "Draft"),
        ("scheduled", "Scheduled"),
        ("sending", "Sending"),
        ("paused", "Paused"),
        ("sent", "Sent"),
        ("cancelled", "Cancelled"),
        ("failed", "Failed"),
    ]

    name = models.CharField(max_length=200)
    subject = models.CharField(max_length=998, blank=True, default="")
    template = models.ForeignKey(EmailTemplate, null=True, blank=True, on_delete=models.SET_NULL)
    html_body = models.TextField(blank=True, default="")
    text_body = models.TextField(blank=True, default="")
    design = models.JSONField(null=True, blank=True, default=None)  # as EmailTemplate.design
    segment = models.ForeignKey(Segment, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    exclude_segment = models.ForeignKey(
        Segment, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    from_email = models.EmailField(blank=True, default="")
    from_name = models.CharField(max_length=200, blank=True, default="")
    reply_to = models.EmailField(blank=True, default="")
    track_opens = models.BooleanField(default=True)
    track_clicks = models.BooleanField(default=True)
    scheduled_at = models.DateTimeField(null=True, blank=True)
    status = models.CharField(max_length=10, choices=STATUS_CHOICES, default="draft", db_index=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)
    started_at = models.DateTimeField(null=True, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    # Why the campaign failed (or could not start when its time came); shown in the admin.
    error = models.TextField(blank=True, default="")
    # Set by the content classifier plugged into campaigns.hooks whenever subject or content change.
    intent = models.CharField(max_length=20, choices=INTENT_CHOICES, default="other", db_index=True)
    intent_confidence = models.FloatField(default=0.0)
    # A short text on the results for marketers, written when the campaign is sent and a day later.
    summary = models.TextField(blank=True, default="")
    summary_source = models.CharField(max_length=10, blank=True, default="")  # offline | provider
    summary_at = models.DateTimeField(null=True, blank=True)
    # A/B test (campaigns/abtests.py): 2 to 4 variants [{"key", "subject", "html_body"?, "text_body"?,
    # "from_name"?}] and {"test_percent", "metric", "wait_seconds", "min_confidence"}; empty: no test.
    variants = models.JSONField(default=list, db_default=[], blank=True)
    ab_test = models.JSONField(null=True, blank=True)
    ab_winner = models.CharField(max_length=1, blank=True, default="", db_default="")
    ab_decided_at = models.DateTimeField(null=True, blank=True)
    ab_decided_by = models.CharField(
        max_length=10,
        blank=True,
        default="",
        db_default="",
        choices=[("confidence", "Confidence"), ("timeout", "Timeout"), ("manual", "Manual")],
    )
    # [{"at": iso time, "p": {"A": 0.4, "B": 0.6}}, ...]: each variant's probability of being best
    # over time, for the stats page's chart (appended by the decision tick, a few dozen points).
    ab_history = models.JSONField(default=list, db_default=[], blank=True)

    objects = CampaignQuerySet.as_manager()

    class Meta:
        db_table = "campaigns"
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(
                fields=["scheduled_at"], name="campaign_due", condition=models.Q(status="scheduled")
            ),
            # The A/B decision tick: campaigns whose test is waiting for its winner.
            models.Index(
                fields=["started_at"],
                name="campaign_ab_undecided",
                condition=models.Q(ab_test__isnull=False, ab_winner="", status__in=("sending", "paused")),
            ),
        ]

    def __str__(self):
        return self.name


# An erased customer's recipients keep their history under a placeholder address on this domain
# (.invalid is reserved, RFC 2606: no real recipient has it), so the hit path can tell them without a
# join to customers.
ERASED_EMAIL_DOMAIN = "erased.invalid"


def recipient_email_erased(email):
    return (email or "").endswith("@" + ERASED_EMAIL_DOMAIN)


class CampaignRecipient(models.Model):
    """One row per recipient, frozen when sending starts; the unit of claiming, sending and tracking."""

    STATUS_CHOICES = [
        ("pending", "Pending"),
        ("sending", "Sending"),
        ("sent", "Sent"),
        ("delivered", "Delivered"),
        ("failed", "Failed"),
        ("bounced", "Bounced"),
        ("complained", "Complained"),
        # Still pending when the campaign was cancelled: never sent, never will be.
        ("cancelled", "Cancelled"),
        # No longer allowed to get it when its turn came (unsubscribed, suppressed, consent withdrawn
        # or erased after the audience was frozen); `error` says why.
        ("skipped", "Skipped"),
        # Outside an A/B test's sample: waits for the winner, then becomes pending with its variant.
        ("held", "Held for the A/B winner"),
    ]

    # No index of their own: (campaign, email), (campaign, status) and recipient_customer lead with
    # them. Every claim and every outcome rewrites the row's index entries (its status is indexed):
    # two redundant indexes cost each message six more index writes.
    campaign = models.ForeignKey(
        Campaign, on_delete=models.CASCADE, related_name="recipients", db_index=False
    )
    customer = models.ForeignKey(
        Customer, on_delete=models.CASCADE, related_name="campaign_recipients", db_index=False
    )
    email = models.CharField(max_length=254)
    status = models.CharField(max_length=10, choices=STATUS_CHOICES, default="pending")
    message_id = models.CharField(max_length=255, blank=True, default="")
    attempts = models.PositiveSmallIntegerField(default=0)
    lease_until = models.DateTimeField(null=True, blank=True)
    # Which claim holds the row while it is `sending` (campaigns/leases.py): every write of the
    # claim's outcome matches it, so a claim whose lease was reclaimed changes nothing.
    claim_token = models.UUIDField(null=True, blank=True)
    error = models.TextField(blank=True, default="")
    sent_at = models.DateTimeField(null=True, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    first_opened_at = models.DateTimeField(null=True, blank=True)
    first_clicked_at = models.DateTimeField(null=True, blank=True)
    unsubscribed_at = models.DateTimeField(null=True, blank=True)
    # A/B tests: the variant this recipient gets ("" without a test) and whether they are in the
    # test's sample (the winner's remainder gets the winner's key but stays out of the sample).
    # Database defaults: the audience freeze and other set-based INSERTs name only the columns they set.
    variant = models.CharField(max_length=1, blank=True, default="", db_default="")
    ab_sample = models.BooleanField(default=False, db_default=False)

    class Meta:
        db_table = "campaign_recipients"
        constraints = [
            models.UniqueConstraint(fields=["campaign", "email"], name="recipient_campaign_email_unique")
        ]
        indexes = [
            models.Index(fields=["campaign", "status"], name="recipient_campaign_status"),
            models.Index(fields=["customer"], name="recipient_customer"),
            # Claiming walks pending rows of one campaign in id order; without this partial index
            # every claim would sort all pending rows (500k) to take the first 200.
            models.Index(
                fields=["campaign", "id"], name="recipient_pending", condition=models.Q(status="pending")
            ),
            # An A/B test's results read only its sample's rows (a few percent of a large audience).
            models.Index(
                fields=["campaign", "variant"], name="recipient_ab_sample", condition=models.Q(ab_sample=True)
            ),
            # The lease reclaimer looks only at rows a worker holds.
            models.Index(
                fields=["lease_until"], name="recipient_leased", condition=models.Q(status="sending")
            ),
        ]


class CampaignLink(models.Model):
    """A URL that appeared in a campaign's content; click tokens name it, so no other URL is reachable."""

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="links")
    url = models.TextField()
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        db_table = "campaign_links"
        constraints = [models.UniqueConstraint(fields=["campaign", "url"], name="campaign_link_unique")]


class Suppression(models.Model):
    """An address that gets no marketing email again (hard bounce, complaint, or by hand).

    The suppression of an erased customer's address outlives the erasure as the address's keyed hash
    (`email` empty, `email_hash` set: campaigns.privacy); it holds the address again when that
    address comes back as a new customer.
    """

    REASON_CHOICES = [("hard_bounce", "Hard bounce"), ("complaint", "Complaint"), ("manual", "Manual")]

    email = models.CharField(max_length=254, unique=True, null=True, blank=True)
    email_hash = models.CharField(max_length=64, unique=True, null=True, blank=True, editable=False)
    reason = models.CharField(max_length=20, choices=REASON_CHOICES)
    detail = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        db_table = "suppressions"
        ordering = ["-created_at"]

    def __str__(self):
        return self.email or "(an erased address)"


class SenderDomain(models.Model):
    """A domain this tenant may send from once DNS proves it controls it (campaigns/senders.py).

    The tenant publishes two TXT records: the verification token and the DKIM public key. The private
    key is stored encrypted (senders.py) and never leaves the server."""

    STATUS_CHOICES = [("pending", "Pending"), ("verified", "Verified"), ("failed", "Failed")]

    # Lower-case, IDNA (xn--) form: what goes on the wire in From and in DKIM's d=.
    domain = models.CharField(max_length=253, unique=True)
    verification_token = models.CharField(max_length=64)
    dkim_selector = models.CharField(max_length=63)
    dkim_public_key = models.TextField(help_text="base64 DER (SubjectPublicKeyInfo), as DNS publishes it")
    dkim_private_key_encrypted = models.TextField(editable=False)
    status = models.CharField(max_length=10, choices=STATUS_CHOICES, default="pending", db_index=True)
    verified_at = models.DateTimeField(null=True, blank=True)
    last_checked_at = models.DateTimeField(null=True, blank=True)
    # What the last check found, per record: {"verification": {...}, "dkim": {...}} (senders.py).
    last_check = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        db_table = "sender_domains"
        ordering = ["domain"]

    def __str__(self):
        return self.display_domain

    @property
    def display_domain(self):
        """The domain as people write it (hírlevél.example for xn--hrlevl-fva1a.example)."""
        try:
            return self.domain.encode("ascii").decode("idna")
        except UnicodeError:
            return self.domain
