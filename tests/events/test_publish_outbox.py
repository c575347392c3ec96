"""The publisher against the real RabbitMQ: persistent, confirmed, in order, nothing lost while it is down."""

import json
import os
import time
from collections import defaultdict

import psycopg
import pytest
from celery.exceptions import Retry
from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django_tenants.utils import schema_context

from events import publisher
from events.models import OutboxEvent
from events.services import PUBLISHER_LOCK_KEY, event_emit, outbox_publish, outbox_retry_now
from events.tasks import publish_outbox
from tests.processes import database_url


def ids(events):
    return [str(event.event_id) for event in events]


def bodies(messages, wanted):
    """The received envelopes of our events, in arrival order (other tests publish to the exchange too)."""
    wanted = set(wanted)
    return [json.loads(m.body) for m in messages if json.loads(m.body)["id"] in wanted]


def test_it_publishes_a_persistent_confirmed_message_per_event(tenant, events_queue):
    event = event_emit(type="customer.created", data={"id": 7})

    result = outbox_publish()

    messages = events_queue.drain(wanted_ids=ids([event]))
    [message] = [m for m in messages if m.properties.get("message_id") == str(event.event_id)]
    assert json.loads(message.body) == {
        "id": str(event.event_id),
        "type": "customer.created",
        "tenant": "tenant_a",
        "occurred_at": event.occurred_at.isoformat(),
        "data": {"id": 7},
    }
    assert message.properties["delivery_mode"] == 2
    assert message.content_type == "application/json"
    assert message.delivery_info["routing_key"] == "customer.created"
    assert (
        message.delivery_info["exchange"]
        == settings.EVENTS_EXCHANGE
        == os.environ.get("EVENTS_EXCHANGE", "crm.events")
    )
    assert message.headers["tenant"] == "tenant_a"
    assert result.error == "" and event.pk in result.event_ids
    row = OutboxEvent.objects.get(pk=event.pk)
    assert row.published_at is not None and row.attempts == 0


def test_it_publishes_in_order_per_tenant(tenant, other_tenant, events_queue):
    emitted = []
    for number in range(1, 7):
        schema = "tenant_a" if number % 2 else "tenant_b"
        with schema_context(schema):
            emitted.append(event_emit(type="customer.updated", data={"id": number, "changed": ["city"]}))

    outbox_publish(batch_size=4)  # two batches

    received = bodies(events_queue.drain(wanted_ids=ids(emitted)), ids(emitted))
    by_tenant = defaultdict(list)
    for body in received:
        by_tenant[body["tenant"]].append(body["data"]["id"])
    assert dict(by_tenant) == {"tenant_a": [1, 3, 5], "tenant_b": [2, 4, 6]}


def test_a_rolled_back_transaction_publishes_nothing(tenant, events_queue):
    with pytest.raises(RuntimeError), transaction.atomic():
        lost = event_emit(type="customer.created", data={"id": 1})
        raise RuntimeError("the change failed")
    kept = event_emit(type="customer.created", data={"id": 2})

    outbox_publish()

    received = bodies(events_queue.drain(wanted_ids=ids([kept])), ids([lost, kept]))
    assert [body["id"] for body in received] == ids([kept])


def test_it_backs_off_and_marks_nothing_while_the_broker_is_unreachable(tenant, settings):
    settings.EVENTS_BROKER_URL = "amqp://guest:guest@127.0.0.1:9//"  # nothing listens there
    settings.EVENTS_BROKER_CONNECT_TIMEOUT = 1
    first = event_emit(type="customer.created", data={"id": 1})
    second = event_emit(type="customer.created", data={"id": 2})
    OutboxEvent.objects.filter(pk__lt=first.pk, published_at__isnull=True).update(published_at=timezone.now())

    started = timezone.now()
    result = outbox_publish()

    head = OutboxEvent.objects.get(pk=first.pk)
    assert result.published == 0 and result.error
    assert head.attempts == 1 and head.last_error == result.error
    assert 1.5 <= (head.next_attempt_at - started).total_seconds() <= 3  # EVENTS_PUBLISH_BACKOFF_BASE
    assert OutboxEvent.objects.filter(pk__in=[first.pk, second.pk], published_at__isnull=False).count() == 0

    # Within the backoff nothing is attempted: the attempt count stays.
    again = outbox_publish()
    assert again.backoff_until == head.next_attempt_at and again.error == ""
    assert OutboxEvent.objects.get(pk=first.pk).attempts == 1

    # After it, the next failure doubles the wait.
    OutboxEvent.objects.filter(pk=first.pk).update(next_attempt_at=timezone.now())
    before_third = timezone.now()
    outbox_publish()
    head.refresh_from_db()
    assert head.attempts == 2
    assert 3.5 <= (head.next_attempt_at - before_third).total_seconds() <= 5


def test_the_backoff_never_exceeds_its_ceiling(tenant, settings):
    settings.EVENTS_BROKER_URL = "amqp://guest:guest@127.0.0.1:9//"
    settings.EVENTS_PUBLISH_BACKOFF_MAX = 60
    event = event_emit(type="customer.created", data={"id": 1})
    OutboxEvent.objects.filter(pk__lt=event.pk, published_at__isnull=True).update(published_at=timezone.now())
    OutboxEvent.objects.filter(pk=event.pk).update(attempts=30)

    started = timezone.now()
    outbox_publish()

    event.refresh_from_db()
    assert event.attempts == 31
    assert 59 <= (event.next_attempt_at - started).total_seconds() <= 61


def test_it_stops_at_the_first_failed_publish_so_nothing_overtakes_it(tenant, events_queue, monkeypatch):
    emitted = [event_emit(type="customer.created", data={"id": number}) for number in range(1, 6)]
    real_publish = publisher._publish

    def refuse_the_third(producer, event):
        if event.pk == emitted[2].pk:
            raise ConnectionResetError("connection reset by broker")
        return real_publish(producer, event)

    monkeypatch.setattr(publisher, "_publish", refuse_the_third)

    result = outbox_publish()

    published = set(
        OutboxEvent.objects.filter(pk__in=[e.pk for e in emitted], published_at__isnull=False).values_list(
            "pk", flat=True
        )
    )
    assert published == {emitted[0].pk, emitted[1].pk}
    assert OutboxEvent.objects.get(pk=emitted[2].pk).attempts == 1
    assert result.error == "ConnectionResetError: connection reset by broker"
    received = bodies(events_queue.drain(wanted_ids=ids(emitted[:2])), ids(emitted))
    assert [body["data"]["id"] for body in received] == [1, 2]


def test_it_hands_over_to_a_fresh_run_while_events_keep_arriving(tenant, events_queue, settings, monkeypatch):
    """A steady stream of events (a bulk entry writes them for seconds) must not keep one run, and the
    worker slot under it, publishing: past EVENTS_PUBLISH_SECONDS it returns `more` (its task enqueues
    the next run, behind what else is queued) instead of looking again."""
    settings.EVENTS_PUBLISH_SECONDS = 0.3
    real_publish_pending = publisher.publish_pending
    arrived = []

    def publish_while_another_arrives(result, **kwargs):
        real_publish_pending(result, **kwargs)
        arrived.append(event_emit(type="customer.created", data={"id": len(arrived)}))

    monkeypatch.setattr(publisher, "publish_pending", publish_while_another_arrives)
    started = time.monotonic()

    result = outbox_publish()

    assert result.more is True and result.error == ""
    assert time.monotonic() - started < 5
    assert len(arrived) >= 2  # within its time it looked again and published what came
    assert OutboxEvent.objects.get(pk=arrived[0].pk).published_at is not None
    assert OutboxEvent.objects.get(pk=arrived[-1].pk).published_at is None  # the next run's


def test_only_one_publisher_runs_at_a_time(tenant, events_queue):
    event = event_emit(type="customer.created", data={"id": 1})
    other = psycopg.connect(database_url(), autocommit=True)
    try:
        other.execute("SELECT pg_advisory_lock(%s)", [PUBLISHER_LOCK_KEY])
        result = outbox_publish()
    finally:
        other.close()

    assert result.locked is True and result.published == 0
    assert OutboxEvent.objects.get(pk=event.pk).published_at is None


@pytest.mark.serial  # stops the shared broker: never beside another test process
def test_nothing_is_lost_while_rabbitmq_is_down(
    tenant, other_tenant, events_queue, stopped_rabbitmq, settings
):
    """Stop RabbitMQ, keep changing things, start it: every event arrives, in order per tenant."""
    settings.EVENTS_BROKER_CONNECT_TIMEOUT = 1
    emitted = []
    for number in range(1, 9):
        with schema_context("tenant_a" if number % 2 else "tenant_b"):
            emitted.append(event_emit(type="customer.updated", data={"id": number, "changed": ["city"]}))
        down = outbox_publish()  # every change kicks the publisher; the broker is down
        assert down.published == 0 and (down.error or down.backoff_until)
    assert OutboxEvent.objects.filter(pk__in=[e.pk for e in emitted], published_at__isnull=True).count() == 8

    stopped_rabbitmq()
    outbox_retry_now()
    up = outbox_publish()

    assert up.error == "" and set(up.event_ids) >= {e.pk for e in emitted}
    received = bodies(events_queue.drain(wanted_ids=ids(emitted)), ids(emitted))
    unique = {}
    for body in received:
        unique.setdefault(body["id"], body)  # consumers dedupe on id
    assert sorted(unique) == sorted(ids(emitted))
    per_tenant = defaultdict(list)
    for body in unique.values():
        per_tenant[body["tenant"]].append(body["data"]["id"])
    assert dict(per_tenant) == {"tenant_a": [1, 3, 5, 7], "tenant_b": [2, 4, 6, 8]}
    assert OutboxEvent.objects.filter(pk__in=[e.pk for e in emitted], published_at__isnull=True).count() == 0


def test_it_resumes_by_itself_once_the_backoff_has_passed(tenant, events_queue, settings):
    settings.EVENTS_PUBLISH_BACKOFF_BASE = 0.2
    good_url = settings.EVENTS_BROKER_URL
    settings.EVENTS_BROKER_URL = "amqp://guest:guest@127.0.0.1:9//"
    event = event_emit(type="customer.created", data={"id": 1})
    assert outbox_publish().error

    settings.EVENTS_BROKER_URL = good_url
    assert outbox_publish().backoff_until is not None  # still waiting
    time.sleep(0.3)
    result = outbox_publish()

    assert event.pk in result.event_ids
    assert bodies(events_queue.drain(wanted_ids=ids([event])), ids([event]))[0]["data"] == {"id": 1}


def test_the_task_asks_celery_to_retry_at_the_end_of_the_backoff(tenant, settings):
    settings.EVENTS_BROKER_URL = "amqp://guest:guest@127.0.0.1:9//"
    event = event_emit(type="customer.created", data={"id": 1})
    OutboxEvent.objects.filter(pk__lt=event.pk, published_at__isnull=True).update(published_at=timezone.now())

    with pytest.raises(Retry):
        publish_outbox()

    assert OutboxEvent.objects.get(pk=event.pk).attempts == 1
    assert publish_outbox() == 0  # within the backoff: no attempt, no retry (beat comes back)
    assert OutboxEvent.objects.get(pk=event.pk).attempts == 1
