"""Outbox rows to RabbitMQ, in id order, each confirmed by the broker before its row is marked.

Called by `services.outbox_publish` with the publisher lock held; nothing else calls it.
"""

import logging

from django.conf import settings
from django.utils import timezone

from .broker import broker_connection, events_exchange
from .models import OutboxEvent
from .services import outbox_mark_failed, outbox_mark_published

logger = logging.getLogger(__name__)


def publish_pending(result, *, batch_size, max_batches):
    connection = None
    budget = batch_size * max_batches  # messages per run: batch rows hold many
    try:
        for _ in range(max_batches):
            batch = list(OutboxEvent.objects.filter(published_at__isnull=True).order_by("id")[:batch_size])
            if not batch:
                return
            head = batch[0]
            if head.next_attempt_at is not None and head.next_attempt_at > timezone.now():
                result.backoff_until = head.next_attempt_at
                return
            confirmed = []
            current = head
            try:
                if connection is None:
                    connection = broker_connection()
                    connection.ensure_connection(max_retries=0)  # fail fast: the backoff is ours
                    # auto_declare: the durable exchange exists before the first message goes out.
                    producer = connection.Producer(exchange=events_exchange(), auto_declare=True)
                for event in batch:
                    current = event
                    messages = _publish(producer, event)
                    budget -= messages
                    confirmed.append(event.id)
                    if messages > 1:  # a batch row: mark it now, so a failure later never repeats it
                        outbox_mark_published(ids=confirmed)
                        result.published += len(confirmed)
                        result.event_ids += confirmed
                        confirmed = []
                    if budget <= 0:
                        break
            except Exception as exc:  # the broker is down, refused, or timed out: stop here
                outbox_mark_published(ids=confirmed)
                result.published += len(confirmed)
                result.event_ids += confirmed
                result.error = f"{type(exc).__name__}: {exc}"
                result.backoff_until = outbox_mark_failed(event_id=current.id, error=result.error)
                logger.warning("outbox publishing stopped at event %s: %s", current.event_id, result.error)
                return
            outbox_mark_published(ids=confirmed)
            result.published += len(confirmed)
            result.event_ids += confirmed
            if budget <= 0:
                break
            if len(batch) < batch_size:
                return
        result.more = True
    finally:
        if connection is not None:
            try:
                connection.release()
            except Exception:  # a dead connection may fail to close; it is gone either way
                pass


def _publish(producer, event):
    """Publish the row's message(s), each confirmed by the broker; returns how many."""
    envelopes = event.envelopes()
    for envelope in envelopes:
        producer.publish(
            envelope,
            serializer="json",
            routing_key=envelope["type"],
            delivery_mode=2,  # persistent
            message_id=envelope["id"],
            timestamp=int(event.occurred_at.timestamp()),
            type=envelope["type"],
            headers={"tenant": event.tenant},
            retry=False,
            timeout=settings.EVENTS_BROKER_CONNECT_TIMEOUT,
            confirm_timeout=settings.EVENTS_PUBLISH_CONFIRM_TIMEOUT,
        )
    return len(envelopes)
