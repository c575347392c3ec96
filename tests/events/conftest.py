import contextlib
import hashlib
import hmac
import json
import os
import shutil
import subprocess
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.conf import settings
from django.db import connections
from django.db.models import Q
from django_tenants.utils import schema_context
from kombu import Connection, Queue

from events.broker import events_exchange
from tenancy.models import Tenant
from tests.conftest import IN_CI, throwaway_tenant_create, throwaway_tenant_drop
from tests.processes import celery_worker, database_url


def committed(work):
    """Run `work` on a connection of its own, outside the test's transaction, so it really commits."""

    def run():
        try:
            return work()
        finally:
            connections.close_all()

    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(run).result()


def webshop_secret(name):
    """The webshop secret of the tenant named by schema or domain (as its admin reads it in the admin),
    or a made-up one for a tenant that does not exist."""
    with schema_context("public"):
        secret = (
            Tenant.objects.filter(Q(schema_name=name) | Q(domains__domain=name))
            .values_list("webshop_secret", flat=True)
            .first()
        )
    return secret or "secret-of-a-tenant-that-does-not-exist"


def webshop_signed(body, secret, *, timestamp=None):
    """The headers a webshop sends with `body`, computed as events/README.md tells webshops to
    (written out here rather than calling the consumer's own code)."""
    timestamp = int(time.time()) if timestamp is None else timestamp
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return {"x-crm-signature": f"t={timestamp},v1={mac}"}


class EventsQueue:
    """A durable queue of our own bound to `crm.events`: it survives a broker restart, so the test
    sees what was published before and after. Other tests publish there too: filter by event id."""

    def __init__(self):
        self.name = f"test.crm-events.{uuid.uuid4().hex[:12]}"
        # x-expires: a queue left behind by a killed test run disappears by itself after 10 minutes.
        self.queue = Queue(
            self.name,
            exchange=events_exchange(),
            routing_key="#",
            durable=True,
            queue_arguments={"x-expires": 600_000},
        )

    def declare(self):
        with Connection(settings.EVENTS_BROKER_URL) as conn:
            self.queue(conn.default_channel).declare()

    def drain(self, *, wanted_ids=None, timeout=5.0):
        """Every message now in the queue (raw kombu messages, acked), waiting until `wanted_ids` all arrived."""
        wanted = set(wanted_ids or ())
        messages = []
        deadline = time.monotonic() + timeout
        with Connection(settings.EVENTS_BROKER_URL) as conn:
            channel = conn.default_channel
            while True:
                message = self.queue(channel).get(no_ack=False, accept=["json"])
                if message is not None:
                    message.ack()
                    messages.append(message)
                    continue
                seen = {json.loads(m.body)["id"] for m in messages}
                if wanted <= seen or time.monotonic() > deadline:
                    return messages
                time.sleep(0.05)

    def delete(self):
        with Connection(settings.EVENTS_BROKER_URL) as conn:
            self.queue(conn.default_channel).delete()


@pytest.fixture
def events_queue(rabbitmq_service):
    queue = EventsQueue()
    queue.declare()
    yield queue
    queue.delete()


def require_rabbitmqctl():
    if shutil.which("rabbitmqctl") is None:
        message = "rabbitmqctl is not installed: the broker cannot be stopped and started"
        if IN_CI:
            pytest.fail(message + " (CI must run every test against the real service)")
        pytest.skip(message)


def rabbitmq_app(action):
    """`rabbitmqctl stop_app` / `start_app` on the local node (the broker the tests use)."""
    subprocess.run(["rabbitmqctl", action], check=True, capture_output=True, timeout=60)


def wait_for_broker(timeout=30.0):
    deadline = time.monotonic() + timeout
    while True:
        try:
            with Connection(settings.EVENTS_BROKER_URL, connect_timeout=1) as conn:
                conn.ensure_connection(max_retries=1)
                conn.default_channel.basic_qos(0, 1, False)  # a channel opens: the broker serves
                return
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


@pytest.fixture
def stopped_rabbitmq(rabbitmq_service):
    """Stops RabbitMQ's application; whatever happens, it is started again after the test."""
    require_rabbitmqctl()
    started = []

    def start():
        if not started:
            rabbitmq_app("start_app")
            wait_for_broker()
            started.append(True)

    rabbitmq_app("stop_app")
    try:
        yield start
    finally:
        start()


def process_env(**extra):
    """The environment for a worker or consumer process of this test run."""
    return dict(
        os.environ,
        DATABASE_URL=database_url(),
        CELERY_QUEUE=settings.CELERY_TASK_DEFAULT_QUEUE,
        REDIS_URL=settings.REDIS_URL,
        CELERY_BROKER_URL=settings.CELERY_BROKER_URL,
        EVENTS_BROKER_URL=settings.EVENTS_BROKER_URL,
        **extra,
    )


@contextlib.contextmanager
def celery_worker_process(**extra_env):
    """One solo-pool worker with this test run's settings (its stderr a pipe); stopped afterwards."""
    with celery_worker(env=process_env(**extra_env), pool="solo", stderr=subprocess.PIPE) as worker:
        yield worker


@pytest.fixture
def fresh_tenant(db):
    """A tenant of this test only (committed, with an admin), dropped afterwards with what it left in public."""
    created = committed(lambda: throwaway_tenant_create("evt", admin_password="fresh-pass-123"))
    created.tenant.admin_email = created.admin_email
    yield created.tenant
    committed(lambda: throwaway_tenant_drop(created.tenant))
