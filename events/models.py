import uuid

from django.db import models
from django.utils import timezone


class OutboxEvent(models.Model):
    """A domain event, written in the same transaction as the change it reports (transactional outbox).

    Lives in the public schema (a shared app) so one publisher serves every tenant in order;
    `tenant` is the schema the change happened in.
    """

    event_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    tenant = models.CharField(max_length=63, db_index=True)
    type = models.CharField(max_length=100)
    occurred_at = models.DateTimeField(default=timezone.now)
    data = models.JSONField(default=dict)
    published_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)

    class Meta:
        ordering = ["id"]
        indexes = [
            models.Index(
                fields=["id"], name="outbox_unpublished", condition=models.Q(published_at__isnull=True)
            ),
            models.Index(fields=["published_at"], name="outbox_published_at"),
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
