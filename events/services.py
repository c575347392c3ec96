"""Domain events: the one way to emit one (an outbox row in the caller's transaction), the publisher
that moves outbox rows to RabbitMQ, and the pruning of what is done."""

import contextvars
import json
import logging
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection
from django.db.models import F
from django.utils import timezone

from core.backoff import exponential_backoff
from core.commits import on_commit_once
from core.locks import advisory_lock

from .batches import batch_renderer
from .models import InboxMessage, OutboxEvent

logger = logging.getLogger(__name__)

EVENT_TYPES = {
    "customer.created",
    "customer.updated",
    "customer.unsubscribed",
    "campaign.sent",
    "campaign.cancelled",
    "email.opened",
    "email.clicked",
    "order.attributed",
    "campaign.ab_winner",
    "flow.entered",
    "flow.exited",
    "flow.completed",
}

# One publisher at a time across all processes: that is what keeps the stream in id order.
PUBLISHER_LOCK_KEY = 0x63726D_6F7574  # "crm" "out"


def event_emit(*, type, data, occurred_at=None, tenant=None):
    """Record an event for publishing. Call inside the transaction of the change it reports.

    A rolled-back change takes its event with it; a committed one is published by the worker
    (at least once, in order). The publisher is kicked once per transaction, after commit.
    """
    if type not in EVENT_TYPES:
        raise ValueError(f"unknown event type {type!r}")
    # Round-trip through JSON so dates, decimals and UUIDs are stored the way consumers will see them.
    payload = json.loads(json.dumps(data, cls=DjangoJSONEncoder))
    fields = {"tenant": tenant or connection.schema_name, "type": type, "data": payload}
    if occurred_at is not None:
        fields["occurred_at"] = occurred_at
    event = OutboxEvent.objects.create(**fields)
    _kick_publisher_on_commit()
    return event


def outbox_insert_sql(*, event_type, data, source, group_by="", order_by=""):
    """SQL inserting one outbox row of `event_type` per row of `source` (a FROM clause; per group with
    `group_by`), its data the jsonb expression `data`: event_emit's rows for code that reports a
    set-based change in the change's own statement (a data-modifying CTE), or a registered batch type's
    rows (events.batches). The tenant is the parameter `%(schema)s`; the caller kicks the publisher
    (outbox_kick) when the statement wrote any."""
    if event_type not in EVENT_TYPES and batch_renderer(event_type) is None:
        raise ValueError(f"unknown event type {event_type!r}")
    return f"""
        INSERT INTO {OutboxEvent._meta.db_table} (event_id, tenant, type, occurred_at, data, attempts, last_error)
        SELECT gen_random_uuid(), %(schema)s, '{event_type}', clock_timestamp(), {data}, 0, ''
        FROM {source} {f"GROUP BY {group_by}" if group_by else ""} {f"ORDER BY {order_by}" if order_by else ""}
    """


def json_time_sql(expr):
    """SQL of the JSON string event_emit stores for the timestamptz `expr` (DjangoJSONEncoder's form:
    UTC as "Z", milliseconds only when there is a fraction), for events written in SQL."""
    return (
        f"to_char(({expr}) AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS') "
        f"|| CASE WHEN extract(microseconds FROM ({expr}))::bigint %% 1000000 <> 0 "
        f"THEN to_char(({expr}) AT TIME ZONE 'UTC', '.MS') ELSE '' END || 'Z'"
    )


def outbox_kick():
    """Kick the publisher once this transaction commits: for code that writes outbox rows set-based
    in SQL (a bulk import) instead of through event_emit; without it beat publishes within 10 s."""
    _kick_publisher_on_commit()


def _kick_publisher_on_commit():
    on_commit_once(_kick_publisher)  # a bulk import emits thousands of events: one kick


# Inside publisher_kicks_gathered(): committed transactions' kicks wait for the end of the block.
_gathered_kicks = contextvars.ContextVar("gathered_publisher_kicks", default=None)


@contextmanager
def publisher_kicks_gathered():
    """Within the block, each committed transaction's kick of the publisher waits for the block's end,
    which kicks once. For a request that commits many small transactions (a bulk endpoint commits each
    item on its own): one kick of a few hundred microseconds, not one per item; the events of its
    first items go out when it ends instead of as they commit."""
    outer = _gathered_kicks.get()
    if outer is not None:  # nested: the outermost block kicks
        yield
        return
    wanted = []
    token = _gathered_kicks.set(wanted)
    try:
        yield
    finally:
        _gathered_kicks.reset(token)
        if wanted:
            _kick_publisher()


def _kick_publisher():
    """Publish soon after commit; beat (every 10 s) catches whatever a failed kick misses."""
    from .tasks import publish_outbox  # noqa: PLC0415  (events.tasks imports this module)

    wanted = _gathered_kicks.get()
    if wanted is not None:
        wanted.append(True)
        return
    try:
        # The publisher serves every tenant from the public schema; a Redis outage must not turn a
        # committed change into an error, and the row is safe in the outbox anyway.
        publish_outbox.apply_async(headers={"_schema_name": "public"}, retry=False)
    except Exception:
        logger.warning("could not enqueue the outbox publisher; beat will publish", exc_info=True)


@dataclass
class PublishResult:
    published: int = 0
    locked: bool = False  # another publisher holds the lock; it publishes what is there
    backoff_until: object = None  # the broker failed recently: nothing attempted before then
    error: str = ""
    more: bool = False  # stopped at the batch limit with rows left
    event_ids: list = field(default_factory=list)

    @property
    def retry_in(self):
        if self.backoff_until is None:
            return None
        return max(1.0, (self.backoff_until - timezone.now()).total_seconds())


def outbox_publish(*, batch_size=None, max_batches=None):
    """Publish unpublished outbox rows to RabbitMQ in id order; safe to run anywhere, any time.

    Only one publisher runs at a time (a PostgreSQL advisory lock). Each message is confirmed by the
    broker before its row is marked published; the first failure stops the run so nothing overtakes
    an event that is still waiting, and it sets a backoff on that row.
    """
    from . import publisher  # noqa: PLC0415  (the publisher imports this module's marks)

    batch_size = batch_size or settings.EVENTS_PUBLISH_BATCH_SIZE
    max_batches = max_batches or settings.EVENTS_PUBLISH_MAX_BATCHES
    deadline = time.monotonic() + settings.EVENTS_PUBLISH_SECONDS
    result = PublishResult()
    while True:
        with advisory_lock(PUBLISHER_LOCK_KEY) as held:
            if not held:
                result.locked = True
                return result
            publisher.publish_pending(result, batch_size=batch_size, max_batches=max_batches)
        # A kick that arrived while we held the lock gave up; rows it was meant for committed before
        # we released it, so one look after releasing never strands them until the next beat.
        if result.error or result.backoff_until or result.more or not _unpublished_ready():
            return result
        if time.monotonic() >= deadline:
            # Events keep coming (a bulk entry writes them for seconds): a fresh run at the back of
            # the queue goes on, so a steady stream cannot hold a worker slot the senders and the
            # dispatcher wait for (one run published for the whole of a 100,000-customer entry).
            result.more = True
            return result


def _unpublished_ready():
    now = timezone.now()
    head = OutboxEvent.objects.filter(published_at__isnull=True).order_by("id").first()
    return head is not None and (head.next_attempt_at is None or head.next_attempt_at <= now)


def outbox_mark_published(*, ids):
    if ids:
        OutboxEvent.objects.filter(id__in=ids).update(
            published_at=timezone.now(), next_attempt_at=None, last_error=""
        )


def outbox_mark_failed(*, event_id, error):
    """Record a failed attempt on the row the publisher stopped at and back off exponentially."""
    event = OutboxEvent.objects.filter(id=event_id).first()
    if event is None:
        return None
    delay = exponential_backoff(
        event.attempts + 1,
        base=settings.EVENTS_PUBLISH_BACKOFF_BASE,
        cap=settings.EVENTS_PUBLISH_BACKOFF_MAX,
    )
    retry_at = timezone.now() + timedelta(seconds=delay)
    OutboxEvent.objects.filter(id=event_id).update(
        attempts=F("attempts") + 1, last_error=error[:2000], next_attempt_at=retry_at
    )
    return retry_at


def outbox_retry_now():
    """Clear the backoff (an operator knows the broker is back); returns how many rows it cleared."""
    return OutboxEvent.objects.filter(published_at__isnull=True, next_attempt_at__isnull=False).update(
        next_attempt_at=None
    )


def outbox_prune(*, older_than=None, chunk=10000):
    """Delete rows the broker confirmed longer ago than the retention period; never unpublished ones."""
    cutoff = timezone.now() - (older_than or timedelta(days=settings.EVENTS_OUTBOX_RETENTION_DAYS))
    return _delete_in_chunks(OutboxEvent.objects.filter(published_at__lt=cutoff), chunk)


def inbox_prune(*, older_than=None, chunk=10000):
    """Forget applied webshop message ids after the period in which the webshop may redeliver them."""
    cutoff = timezone.now() - (older_than or timedelta(days=settings.EVENTS_INBOX_RETENTION_DAYS))
    return _delete_in_chunks(InboxMessage.objects.filter(processed_at__lt=cutoff), chunk)


def _delete_in_chunks(queryset, chunk):
    # Short deletes keep locks and WAL bursts small on a big table.
    total = 0
    model = queryset.model
    while True:
        ids = list(queryset.order_by("id").values_list("id", flat=True)[:chunk])
        if not ids:
            return total
        deleted, _ = model.objects.filter(id__in=ids).delete()
        total += deleted
