"""End to end: a committed change kicks the publisher task, a real Celery worker publishes it."""

import json
import os
import subprocess
import sys
import time

import pytest
from django.conf import settings
from django.db import connection, transaction

from events.models import OutboxEvent
from events.services import event_emit
from tests.events.conftest import committed


@pytest.fixture
def celery_worker(db, redis_service):
    """`celery -A crm_project worker` on this test database and this run's queue."""
    database = connection.settings_dict["NAME"]
    env = dict(
        os.environ,
        DATABASE_URL=f"postgres://postgres@127.0.0.1:5432/{database}",
        CELERY_QUEUE=settings.CELERY_TASK_DEFAULT_QUEUE,
        REDIS_URL=settings.REDIS_URL,
        CELERY_BROKER_URL=settings.CELERY_BROKER_URL,
        EVENTS_BROKER_URL=settings.EVENTS_BROKER_URL,
    )
    worker = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "crm_project",
            "worker",
            "--pool=solo",
            "--loglevel=WARNING",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
            "-Q",
            settings.CELERY_TASK_DEFAULT_QUEUE,
        ],
        cwd=settings.BASE_DIR,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        yield worker
    finally:
        worker.terminate()
        try:
            worker.wait(timeout=15)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()


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
