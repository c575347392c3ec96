"""End to end: a committed change kicks the publisher task, a real Celery worker publishes it."""

import json
import time

import pytest
from django.db import transaction

from events.models import OutboxEvent
from events.services import event_emit
from tests.events.conftest import celery_worker_process, committed


@pytest.fixture
def celery_worker(db, redis_service):
    with celery_worker_process() as worker:
        yield worker


def test_a_committed_change_is_published_by_the_worker_it_kicks(events_queue, celery_worker):
    def change():
        with transaction.atomic():  # the change's transaction: its commit kicks the publisher
            return event_emit(type="customer.created", data={"id": 41}, tenant="tenant_a")

    event = committed(change)
    try:
        deadline = time.monotonic() + 30
        while committed(lambda: OutboxEvent.objects.get(pk=event.pk).published_at) is None:
            assert celery_worker.poll() is None, celery_worker.stderr.read().decode()
            assert time.monotonic() < deadline, "the worker did not publish within 30 s"
            time.sleep(0.1)
    finally:
        committed(lambda: OutboxEvent.objects.filter(pk=event.pk).delete())

    messages = events_queue.drain(wanted_ids=[str(event.event_id)])
    bodies = [json.loads(m.body) for m in messages if m.properties.get("message_id") == str(event.event_id)]
    assert [(b["type"], b["data"]) for b in bodies] == [("customer.created", {"id": 41})]
