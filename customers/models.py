from django.conf import settings
from django.db import models
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
            models.Index(fields=["created_at"], name="customer_created_at"),
            models.Index(fields=["total_spent"], name="customer_total_spent"),
            models.Index(fields=["order_count"], name="customer_order_count"),
            models.Index(fields=["last_order_at"], name="customer_last_order_at"),
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
    customer = models.ForeignKey(Customer, on_delete=models.CASCADE)
    tag = models.ForeignKey(Tag, on_delete=models.CASCADE)
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

    external_id = models.CharField(max_length=255, unique=True)
    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="orders")
    number = models.CharField(max_length=100, blank=True, default="")
    status = models.CharField(max_length=10, choices=STATUS_CHOICES, default="pending")
    currency = models.CharField(max_length=3, default="HUF")
    total = models.DecimalField(max_digits=14, decimal_places=2)
    placed_at = models.DateTimeField(default=timezone.now)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-placed_at", "-id"]
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
        ("unsubscribed", "Unsubscribed"),
        ("preferences", "Preferences changed"),
        ("transactional_email", "Transactional email"),
        ("erased", "Personal data erased"),
    ]
    USER_KINDS = ("note", "call", "meeting")

    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="interactions")
    kind = models.CharField(max_length=30, choices=KIND_CHOICES)
    body = models.TextField(blank=True, default="")
    data = models.JSONField(default=dict, blank=True)
    occurred_at = models.DateTimeField(default=timezone.now)
    author = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-occurred_at", "-id"]
        indexes = [models.Index(fields=["customer", "-occurred_at"], name="interaction_customer_time")]
