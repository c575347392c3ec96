"""The consumer as it runs in production: its own process, committed data, a RabbitMQ restart, SIGTERM."""

import json
import signal
import subprocess
import sys
import time
import uuid

import pytest
from django.conf import settings
from django_tenants.utils import schema_context
from kombu import Connection, Exchange, Queue

from customers.models import Customer
from events.broker import webshop_dead_letter_exchange, webshop_dead_letter_queue, webshop_queue
from tests.events.conftest import (
    committed,
    process_env,
    rabbitmq_app,
    require_rabbitmqctl,
    wait_for_broker,
    webshop_signed,
)


@pytest.fixture
def topology(rabbitmq_service, settings):
    suffix = uuid.uuid4().hex[:10]
    settings.WEBSHOP_EVENTS_EXCHANGE = f"test.webshop.events.{suffix}"
    settings.WEBSHOP_EVENTS_QUEUE = f"crm.webshop.test-{suffix}"
    yield settings.WEBSHOP_EVENTS_EXCHANGE, settings.WEBSHOP_EVENTS_QUEUE
    wait_for_broker()
    with Connection(settings.EVENTS_BROKER_URL) as conn:
        channel = conn.default_channel
        for queue in (webshop_queue(), webshop_dead_letter_queue()):
            queue(channel).delete()
        webshop_dead_letter_exchange()(channel).delete()
        Exchange(settings.WEBSHOP_EVENTS_EXCHANGE)(channel).delete()


def publish(exchange, messages, *, secret):
    """As the tenant's webshop publishes: each message signed with the tenant's webshop secret."""
    with Connection(settings.EVENTS_BROKER_URL, transport_options={"confirm_publish": True}) as conn:
        channel = conn.channel()
        producer = conn.Producer(channel=channel, exchange=Exchange(exchange, type="topic", durable=True))
        for message in messages:
            body = json.dumps(message).encode()
            producer.publish(
                body, routing_key=message["type"], delivery_mode=2, headers=webshop_signed(body, secret)
            )


def customers_in(schema):
    def count():
        with schema_context(schema):
            return sorted(Customer.objects.values_list("email", flat=True))

    return committed(count)


def wait_until(predicate, process, timeout=30):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert process.poll() is None, process.communicate()[1].decode()[-3000:]
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)


@pytest.mark.serial  # stops the shared broker: never beside another test process
def test_the_consumer_process_survives_a_rabbitmq_restart_and_stops_cleanly(fresh_tenant, topology):
    require_rabbitmqctl()
    exchange, queue = topology
    env = process_env(WEBSHOP_EVENTS_EXCHANGE=exchange, WEBSHOP_EVENTS_QUEUE=queue)
    process = subprocess.Popen(
        [sys.executable, "manage.py", "consume_webshop_events"],
        cwd=settings.BASE_DIR,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        wait_for_queue(queue, process)
        first = [f"before{n}@example.com" for n in range(3)]
        publish(
            exchange,
            [upsert(email, fresh_tenant.schema_name) for email in first],
            secret=fresh_tenant.webshop_secret,
        )
        wait_until(lambda: customers_in(fresh_tenant.schema_name) == sorted(first), process)

        rabbitmq_app("stop_app")
        try:
            time.sleep(1)
        finally:
            rabbitmq_app("start_app")
            wait_for_broker()
        after = [f"after{n}@example.com" for n in range(3)]
        publish(
            exchange,
            [upsert(email, fresh_tenant.schema_name) for email in after],
            secret=fresh_tenant.webshop_secret,
        )
        wait_until(
            lambda: customers_in(fresh_tenant.schema_name) == sorted(first + after), process, timeout=60
        )

        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=15)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()

    assert process.returncode == 0, err.decode()[-3000:]
    assert out.decode().strip().startswith("applied ")
    with Connection(settings.EVENTS_BROKER_URL) as conn:
        assert webshop_queue()(conn.default_channel).queue_declare(passive=True).message_count == 0


def upsert(email, schema):
    return {"id": str(uuid.uuid4()), "type": "customer.upserted", "tenant": schema, "data": {"email": email}}


def wait_for_queue(queue, process, timeout=30):
    """The consumer declares its queue on start; publishing before that would go nowhere."""
    deadline = time.monotonic() + timeout
    while True:
        assert process.poll() is None, process.communicate()[1].decode()[-3000:]
        try:
            with Connection(settings.EVENTS_BROKER_URL) as conn:
                Queue(queue)(conn.default_channel).queue_declare(passive=True)
                return
        except Exception:
            assert time.monotonic() < deadline, "the consumer never declared its queue"
            time.sleep(0.2)
