import uuid

from django.conf import settings
from django.db import connection, models
from django.db.models import Q
from django.db.models.functions import Lower
from django.utils import timezone

# Orders in these states count toward no aggregate and no segment field.
NON_COUNTING_ORDER_STATUSES = ("cancelled", "refunded")


class Tag(models.Model):
    name = models.CharField(max_length=100)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(Lower("name"), name="tag_name_ci_unique")]

    def __str__(self):
        return self.name


class CustomerQuerySet(models.QuerySet):
    def marketable(self):
        """Customers who may receive marketing email (consent, not unsubscribed, not erased)."""
        return self.filter(
            email_marketing=True, unsubscribed_at__isnull=True, erased_at__isnull=True, email__isnull=False
        )


class Customer(models.Model):
    external_id = models.CharField(max_length=255, null=True, blank=True, unique=True)
    # Stored lower-case and trimmed, so a plain unique index is case-insensitive uniqueness.
    # NULL only for erased (GDPR) customers.
    email = models.CharField(max_length=254, null=True, unique=True)
    first_name = models.CharField(max_length=150, blank=True, default="")
    last_name = models.CharField(max_length=150, blank=True, default="")
    phone = models.CharField(max_length=50, blank=True, default="")
    city = models.CharField(max_length=150, blank=True, default="")
    country = models.CharField(max_length=2, blank=True, default="", help_text="ISO 3166-1 alpha-2")
    attributes = models.JSONField(default=dict, blank=True)
    email_marketing = models.BooleanField(default=False)
    email_transactional = models.BooleanField(default=True)
    unsubscribed_at = models.DateTimeField(null=True, blank=True)
    tags = models.ManyToManyField(Tag, through="CustomerTag", related_name="customers", blank=True)

    # Aggregates over counting orders, kept exact by customers.services (never edited by hand).
    total_spent = models.DecimalField(max_digits=14, decimal_places=2, default=0)
    order_count = models.PositiveIntegerField(default=0)
    first_order_at = models.DateTimeField(null=True, blank=True)
    last_order_at = models.DateTimeField(null=True, blank=True)

    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)
    erased_at = models.DateTimeField(null=True, blank=True)

    objects = CustomerQuerySet.as_manager()

    class Meta:
        ordering = ["-id"]
        indexes = [
            # (column, id): ordering by the column with the id as tie-breaker (the API's stable
            # pagination) reads the first page straight from the index, in both directions.
            models.Index(fields=["created_at", "id"], name="customer_created_at_id"),
            models.Index(fields=["total_spent", "id"], name="customer_total_spent_id"),
            models.Index(fields=["order_count", "id"], name="customer_order_count_id"),
            models.Index(fields=["last_order_at", "id"], name="customer_last_order_at_id"),
            models.Index(fields=["first_order_at"], name="customer_first_order_at"),
            models.Index(Lower("city"), name="customer_city_lower"),
            models.Index(Lower("country"), name="customer_country_lower"),
        ]

    def __str__(self):
        return self.email or f"erased customer #{self.pk}"

    @property
    def full_name(self):
        return " ".join(part for part in (self.first_name, self.last_name) if part)


class CustomerTag(models.Model):
    # No single-column indexes: (customer, tag) and (tag, customer) below serve both lookups, and every
    # index less makes an import's tag links cheaper to write.
    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, db_index=False)
    tag = models.ForeignKey(Tag, on_delete=models.CASCADE, db_index=False)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["customer", "tag"], name="customer_tag_unique")]
        indexes = [models.Index(fields=["tag", "customer"], name="customertag_tag_customer")]


class Address(models.Model):
    KIND_CHOICES = [("billing", "Billing"), ("shipping", "Shipping")]

    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="addresses")
    kind = models.CharField(max_length=10, choices=KIND_CHOICES)
    line1 = models.CharField(max_length=255)
    line2 = models.CharField(max_length=255, blank=True, default="")
    city = models.CharField(max_length=150, blank=True, default="")
    postal_code = models.CharField(max_length=20, blank=True, default="")
    country = models.CharField(max_length=2, blank=True, default="")
    is_default = models.BooleanField(default=False)

    class Meta:
        db_table = "customers_customer_address"
        ordering = ["id"]
        verbose_name_plural = "addresses"


class Order(models.Model):
    STATUS_CHOICES = [
        ("pending", "Pending"),
        ("paid", "Paid"),
        ("shipped", "Shipped"),
        ("delivered", "Delivered"),
        ("cancelled", "Cancelled"),
        ("refunded", "Refunded"),
    ]

    # Unique through a constraint, not unique=True: that also builds a varchar_pattern_ops index for
    # LIKE, which nothing runs and every order would write. The customer's orders are read through
    # order_customer_placed (customer first), so the foreign key needs no index of its own.
    external_id = models.CharField(max_length=255)
    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="orders", db_index=False)
    number = models.CharField(max_length=100, blank=True, default="")
    status = models.CharField(max_length=10, choices=STATUS_CHOICES, default="pending")
    currency = models.CharField(max_length=3, default="HUF")
    total = models.DecimalField(max_digits=14, decimal_places=2)
    placed_at = models.DateTimeField(default=timezone.now)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-placed_at", "-id"]
        constraints = [models.UniqueConstraint(fields=["external_id"], name="order_external_id_unique")]
        indexes = [models.Index(fields=["customer", "-placed_at"], name="order_customer_placed")]

    def __str__(self):
        return self.number or self.external_id

    @property
    def counts(self):
        return self.status not in NON_COUNTING_ORDER_STATUSES


class OrderItem(models.Model):
    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="items")
    sku = models.CharField(max_length=100)
    name = models.CharField(max_length=255, blank=True, default="")
    quantity = models.PositiveIntegerField(default=1)
    unit_price = models.DecimalField(max_digits=14, decimal_places=2, default=0)

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(Lower("sku"), "order", name="orderitem_sku_lower_order")]


class Product(models.Model):
    """A product of the webshop, pushed by it (`POST /api/products`), for the product cards of emails."""

    sku = models.CharField(max_length=100, unique=True)
    name = models.CharField(max_length=255)
    url = models.URLField(max_length=2000)
    image_url = models.URLField(max_length=2000, blank=True, default="")
    price = models.DecimalField(max_digits=14, decimal_places=2)
    currency = models.CharField(max_length=3, default="HUF")
    in_stock = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        db_table = "products"
        ordering = ["sku"]

    def __str__(self):
        return f"{self.sku} {self.name}"


class Interaction(models.Model):
    KIND_CHOICES = [
        ("note", "Note"),
        ("call", "Call"),
        ("meeting", "Meeting"),
        ("order_placed", "Order placed"),
        ("order_status", "Order status"),
        ("email_sent", "Email sent"),
        ("email_opened", "Email opened"),
        ("email_clicked", "Email clicked"),
        ("email_bounced", "Email bounced"),
        ("email_complained", "Spam complaint"),
        ("unsubscribed", "Unsubscribed"),
        ("preferences", "Preferences changed"),
        ("transactional_email", "Transactional email"),
        ("resubscribed", "Resubscribed"),
        ("resubscribe_ignored", "Resubscribe ignored"),
        ("erased", "Personal data erased"),
        # A customer event the webshop reported (POST /api/events; the flows app stores it).
        ("custom_event", "Custom event"),
    ]
    USER_KINDS = ("note", "call", "meeting")

    # Indexed by interaction_customer_time, which leads with it.
    customer = models.ForeignKey(
        Customer, on_delete=models.CASCADE, related_name="interactions", db_index=False
    )
    kind = models.CharField(max_length=30, choices=KIND_CHOICES)
    body = models.TextField(blank=True, default="")
    data = models.JSONField(default=dict, blank=True)
    occurred_at = models.DateTimeField(default=timezone.now)
    # Set on the notes users write, NULL on the millions of entries the service writes (orders, email
    # events, custom events): indexed only where set (interaction_author), which is all that deleting
    # a user (SET NULL) looks up.
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, db_index=False
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-occurred_at", "-id"]
        indexes = [
            models.Index(fields=["customer", "-occurred_at"], name="interaction_customer_time"),
            models.Index(fields=["author"], name="interaction_author", condition=Q(author__isnull=False)),
        ]


class ErasedAddress(models.Model):
    """An erased customer's address, as its keyed hash (customers.privacy.address_hash) only.

    What makes an erasure stick: a CSV import of the address is refused. A genuinely new sign-up (the
    webshop's API or bus creating the customer, an admin adding them) takes the address off this list.
    """

    email_hash = models.CharField(max_length=64, unique=True)
    erased_at = models.DateTimeField(default=timezone.now)

    class Meta:
        db_table = "customers_erased_address"

    def __str__(self):
        return f"erased address {self.email_hash[:12]}"


def _import_upload_to(instance, filename):
    return f"imports/{connection.schema_name}/{uuid.uuid4().hex}.csv"


class ImportJob(models.Model):
    """A CSV import started from the admin: runs on a worker, its progress saved here as it goes."""

    STATUS_CHOICES = [("queued", "Queued"), ("running", "Running"), ("done", "Done"), ("failed", "Failed")]

    file = models.FileField(upload_to=_import_upload_to)
    filename = models.CharField(max_length=255, blank=True, default="")
    status = models.CharField(max_length=10, choices=STATUS_CHOICES, default="queued")
    total_bytes = models.BigIntegerField(default=0)
    processed_bytes = models.BigIntegerField(default=0)
    rows = models.PositiveIntegerField(default=0)
    created = models.PositiveIntegerField(default=0)
    updated = models.PositiveIntegerField(default=0)
    unchanged = models.PositiveIntegerField(default=0)
    failed = models.PositiveIntegerField(default=0)
    # Rows that asked to turn marketing email back on for someone who unsubscribed: left off.
    resubscribes_ignored = models.PositiveIntegerField(
        default=0, help_text="Rows that asked to resubscribe someone who unsubscribed (left off)."
    )
    # [[line, reason], ...] for the first bad rows (the count of all of them is `failed`).
    errors = models.JSONField(default=list, blank=True)
    error = models.TextField(blank=True, default="", help_text="Why the whole import failed, if it did.")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = "customer import"

    def __str__(self):
        return f"{self.filename or 'import'} ({self.get_status_display()})"

    @property
    def percent(self):
        if self.status == "done":
            return 100
        return int(100 * self.processed_bytes / self.total_bytes) if self.total_bytes else 0


class OrderAttribution(models.Model):
    """The email touch an order is credited to (customers/attribution.py): one row per order, written
    when the order is first recorded, never again but by `attribution_rebuild`.

    The touch's campaign (or flow and step) are plain ids: campaigns and flows live in apps above this
    one. `total` and `counts` follow the order (a cancelled or refunded order stops counting), so the
    stats sum one campaign's rows from the (campaign_id) index without touching the orders."""

    TOUCH_CHOICES = [("click", "Click"), ("open", "Open")]

    order = models.OneToOneField(
        Order, on_delete=models.CASCADE, primary_key=True, related_name="attribution"
    )
    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, db_index=False, related_name="+")
    campaign_id = models.BigIntegerField(null=True, blank=True)
    flow_id = models.BigIntegerField(null=True, blank=True)
    step = models.CharField(max_length=100, null=True, blank=True)
    touch = models.CharField(max_length=5, choices=TOUCH_CHOICES)
    touched_at = models.DateTimeField()
    placed_at = models.DateTimeField()
    total = models.DecimalField(max_digits=14, decimal_places=2)
    counts = models.BooleanField(default=True, help_text="False once the order is cancelled or refunded.")
    attributed_at = models.DateTimeField(default=timezone.now)

    class Meta:
        db_table = "customers_order_attribution"
        indexes = [
            # Covering: a campaign's orders, revenue and converted customers from the index alone.
            models.Index(
                fields=["campaign_id"],
                include=["customer", "total", "counts"],
                name="attribution_campaign",
                condition=models.Q(campaign_id__isnull=False),
            ),
            models.Index(
                fields=["flow_id", "step"],
                include=["customer", "total", "counts"],
                name="attribution_flow_step",
                condition=models.Q(flow_id__isnull=False),
            ),
            models.Index(fields=["placed_at"], name="attribution_placed_at"),
        ]

    def __str__(self):
        return f"order #{self.order_id} ← {self.touch}"
