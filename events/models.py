import uuid

from django.db import models
from django.utils import timezone

from .batches import batch_envelopes, batch_renderer


class OutboxEvent(models.Model):
    """A domain event, written in the same transaction as the change it reports (transactional outbox).

    Lives in the public schema (a shared app) so one publisher serves every tenant in order;
    `tenant` is the schema the change happened in.
    """

    event_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    # One plain index (outbox_tenant): `db_index=True` also built one for LIKE, which nothing asks.
    tenant = models.CharField(max_length=63)
    type = models.CharField(max_length=100)
    occurred_at = models.DateTimeField(default=timezone.now)
    data = models.JSONField(default=dict)
    published_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)
    # Set on the row the publisher stopped at (the broker refused or was down): no attempt before then.
    next_attempt_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["id"]
        indexes = [
            models.Index(
                fields=["id"], name="outbox_unpublished", condition=models.Q(published_at__isnull=True)
            ),
            models.Index(fields=["published_at"], name="outbox_published_at"),
            models.Index(fields=["tenant"], name="outbox_tenant"),
        ]

    def __str__(self):
        return f"{self.type} {self.event_id}"

    def envelope(self):
        return {
            "id": str(self.event_id),
            "type": self.type,
            "tenant": self.tenant,
            "occurred_at": self.occurred_at.isoformat(),
            "data": self.data,
        }

    def envelopes(self):
        """The messages this row stands for: itself, or the events of a batch row (events.batches)."""
        return [self.envelope()] if batch_renderer(self.type) is None else batch_envelopes(self)


class InboxMessage(models.Model):
    """A webshop message that was applied: its unique key makes a redelivered message a no-op.

    In the public schema beside the outbox, keyed by tenant, so the consumer claims the id inside the
    same transaction as the change it applies (a rolled-back change leaves no claim behind).
    """

    tenant = models.CharField(max_length=63)
    message_id = models.CharField(max_length=255)
    type = models.CharField(max_length=100)
    processed_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(fields=["tenant", "message_id"], name="inbox_tenant_message_unique")
        ]
        indexes = [models.Index(fields=["processed_at"], name="inbox_processed_at")]

    def __str__(self):
        return f"{self.type} {self.message_id}"


class TransactionalEmail(models.Model):
    """One row per (tenant, order, kind): the unique key that makes an order email go out once.

    No personal data here (this is the public schema, beyond a customer's erasure): the address
    and the details live in the customer's `transactional_email` interaction.

    The row is claimed with INSERT ... ON CONFLICT DO NOTHING (never check-then-insert), then moved
    through its states with conditional updates, so two workers or a retry never send it twice.
    """

    KIND_CHOICES = [("order_confirmation", "Order confirmation"), ("order_shipped", "Order shipped")]
    STATUS_CHOICES = [
        ("pending", "Pending"),
        ("sending", "Sending"),
        ("sent", "Sent"),
        ("skipped", "Skipped"),
        ("failed", "Failed"),
    ]

    tenant = models.CharField(max_length=63)
    order_id = models.BigIntegerField()
    kind = models.CharField(max_length=30, choices=KIND_CHOICES)
    status = models.CharField(max_length=10, choices=STATUS_CHOICES, default="pending")
    message_id = models.CharField(max_length=255, blank=True)
    reason = models.TextField(blank=True)
    attempts = models.PositiveIntegerField(default=0)
    lease_until = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "order_id", "kind"], name="transactional_email_once_per_order_kind"
            )
        ]
        indexes = [
            # The requeue's beat tick (every minute) reads only the unfinished requests: its cost stays
            # with them, not with every order email ever sent.
            models.Index(
                fields=["status", "created_at"],
                name="transactional_unfinished",
                condition=models.Q(status__in=["pending", "sending"]),
            )
        ]

    def __str__(self):
        return f"{self.kind} for order {self.order_id} ({self.status})"
