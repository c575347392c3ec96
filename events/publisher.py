"""Outbox rows to RabbitMQ, in id order, each confirmed by the broker before its row is marked.

Called by `services.outbox_publish` with the publisher lock held; nothing else calls it.

The channel is in confirm mode and the broker's confirms are collected as they come (`Confirms`):
a batch of rows is published, then confirmed, then marked, so a publish does not wait a round trip
for the one before it (waiting for each confirm kept a worker busy ~0.25 ms a message, most of it
idle: a flow that 100,000 customers enter emits 200,000 events). A row is marked only once every
message up to its last is confirmed. Within a batch the broker keeps the channel's order; a message
it refuses (a nack, an internal broker error) or does not confirm in time stops the run at that row,
and the rows after it in the batch are published again later (at least once: consumers dedupe on id).
"""

import logging
import time

from django.conf import settings
from django.utils import timezone
from kombu.utils import json

from .broker import broker_connection, events_exchange
from .frames import Outgoing, confirms_take, publish_frames
from .models import OutboxEvent
from .services import outbox_mark_failed, outbox_mark_published

logger = logging.getLogger(__name__)


class PublishRefused(Exception):
    """The broker refused (nacked) or did not confirm a message in time."""


class Confirms:
    """Publisher confirms on one channel in confirm mode. Delivery tags number the channel's
    publishes from 1; an ack covers its tag, or every tag up to it when `multiple`."""

    def __init__(self, connection, channel):
        self.connection = connection
        self.channel = channel
        self.published = 0  # the last delivery tag handed out
        self.confirmed = 0  # every tag up to this one is acked
        self._above = set()  # acked tags above `confirmed` (acks may come out of order)
        self.refused = None  # the first nacked tag
        channel.confirm_select()
        channel.events["basic_ack"].add(self._ack)
        channel.events["basic_nack"].add(self._nack)

    def sent(self, count):
        """`count` more messages went out; returns the tag of the last."""
        self.published += count
        return self.published

    def _ack(self, tag, multiple):
        if multiple:
            self.confirmed = max(self.confirmed, tag)
        else:
            self._above.add(tag)
        while self.confirmed + 1 in self._above:
            self.confirmed += 1
            self._above.discard(self.confirmed)

    def _nack(self, tag, multiple):
        first = self.confirmed + 1 if multiple else tag
        self.refused = first if self.refused is None else min(self.refused, first)

    def _take_arrived(self):
        """The confirms that have arrived, read past py-amqp's frame-by-frame dispatch
        (events.frames.confirms_take); True when there were any."""
        transport = getattr(getattr(self.channel, "connection", None), "transport", None)
        taken = confirms_take(transport, channel=getattr(self.channel, "channel_id", None))
        for acked, tag, multiple in taken:
            (self._ack if acked else self._nack)(tag, multiple)
        return bool(taken)

    def wait(self, *, timeout):
        """Until every message published so far is confirmed; raises PublishRefused otherwise."""
        deadline = time.monotonic() + timeout
        while self.confirmed < self.published and self.refused is None:
            if self._take_arrived():
                continue
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            try:
                self.connection.drain_events(timeout=remaining)
            except TimeoutError:
                break
        if self.refused is not None:
            raise PublishRefused(f"the broker refused message {self.refused} of this connection (nack)")
        if self.confirmed < self.published:
            raise PublishRefused(
                f"the broker confirmed {self.confirmed} of {self.published} messages within {timeout} s"
            )


def publish_pending(result, *, batch_size, max_batches):
    connection = channel = confirms = None
    budget = batch_size * max_batches  # messages per run: batch rows hold many
    timeout = settings.EVENTS_PUBLISH_CONFIRM_TIMEOUT
    after = 0  # the last row this run published: the next batch starts past it
    try:
        for _ in range(max_batches):
            # From the head of the partial index outbox_unpublished, then past what this run marked:
            # rows marked published stay in the index until vacuum, and a scan from the head would
            # step over all of them again for every batch (200,000 events: seconds a batch).
            unpublished = OutboxEvent.objects.filter(published_at__isnull=True, id__gt=after)
            batch = list(unpublished.order_by("id")[:batch_size])
            if not batch:
                return
            head = batch[0]
            if head.next_attempt_at is not None and head.next_attempt_at > timezone.now():
                result.backoff_until = head.next_attempt_at
                return
            sent = []  # (row id, the delivery tag of its last message), in order
            current = head
            try:
                if connection is None:
                    connection = broker_connection()
                    connection.ensure_connection(max_retries=0)  # fail fast: the backoff is ours
                    channel = connection.channel()
                    events_exchange()(channel).declare()  # durable: exists before the first message
                    confirms = Confirms(connection, channel)
                for event in batch:
                    current = event
                    messages = _publish(channel, event)
                    sent.append((event.id, confirms.sent(messages)))
                    budget -= messages
                    if messages > 1:
                        # A batch row: confirmed and marked now, never repeated by a later failure.
                        confirms.wait(timeout=timeout)
                        _mark(result, [row_id for row_id, _ in sent])
                        sent = []
                    if budget <= 0:
                        break
                confirms.wait(timeout=timeout)
            except Exception as exc:
                # The broker is down, refused, or timed out: stop at the first unconfirmed row.
                if confirms is not None:
                    try:  # what went out before the failure may still be confirmed
                        confirms.wait(timeout=min(timeout, 2))
                    except Exception:  # what is confirmed is marked below, the rest waits
                        pass
                    confirmed = [row_id for row_id, tag in sent if tag <= confirms.confirmed]
                    if len(confirmed) < len(sent):
                        current = next(event for event in batch if event.id == sent[len(confirmed)][0])
                else:
                    confirmed = []
                _mark(result, confirmed)
                result.error = f"{type(exc).__name__}: {exc}"
                result.backoff_until = outbox_mark_failed(event_id=current.id, error=result.error)
                logger.warning("outbox publishing stopped at event %s: %s", current.event_id, result.error)
                return
            _mark(result, [row_id for row_id, _ in sent])
            after = current.id  # the last row of the batch it got to, marked with the rest
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


def _mark(result, ids):
    outbox_mark_published(ids=ids)
    result.published += len(ids)
    result.event_ids += ids


def _publish(channel, event):
    """Publish the row's message(s) without waiting for their confirms; returns how many.

    Encoded together and written to the socket in one call (events.frames): the messages are the
    same as py-amqp's `basic_publish` makes (JSON, persistent, id, type, timestamp, the tenant in
    its headers), at a fraction of its cost per message."""
    envelopes = event.envelopes()
    timestamp = int(event.occurred_at.timestamp())
    connection = channel.connection
    connection.transport.write(
        publish_frames(
            [
                Outgoing(
                    routing_key=envelope["type"],
                    body=json.dumps(envelope).encode(),
                    message_id=envelope["id"],
                    type=envelope["type"],
                    timestamp=timestamp,
                    tenant=event.tenant,
                )
                for envelope in envelopes
            ],
            exchange=settings.EVENTS_EXCHANGE,
            channel=channel.channel_id,
            frame_max=connection.frame_max,
        )
    )
    return len(envelopes)
