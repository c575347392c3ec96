"""The one way to emit a domain event: an outbox row in the caller's transaction."""

import json

from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection

from .models import OutboxEvent

EVENT_TYPES = {
    "customer.created",
    "customer.updated",
    "customer.unsubscribed",
    "campaign.sent",
    "email.opened",
    "email.clicked",
}


def event_emit(*, type, data, occurred_at=None, tenant=None):
    """Record an event for publishing. Call inside the transaction of the change it reports."""
    if type not in EVENT_TYPES:
        raise ValueError(f"unknown event type {type!r}")
    # Round-trip through JSON so dates, decimals and UUIDs are stored the way consumers will see them.
    payload = json.loads(json.dumps(data, cls=DjangoJSONEncoder))
    fields = {"tenant": tenant or connection.schema_name, "type": type, "data": payload}
    if occurred_at is not None:
        fields["occurred_at"] = occurred_at
    event = OutboxEvent.objects.create(**fields)
    _kick_publisher()
    return event


def _kick_publisher():
    """Publish soon after commit; beat catches whatever this misses."""
    from django.db import transaction

    def kick():
        try:
            from events.tasks import publish_outbox
        except ImportError:  # the publisher is optional until the events worker is wired
            return
        try:
            publish_outbox.delay()
        except Exception:  # broker down: beat publishes later, nothing is lost
            pass

    transaction.on_commit(kick)
