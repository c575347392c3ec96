"""RabbitMQ through kombu: the one place that knows exchange names, queue arguments and connection options.

Outbound: the topic exchange `crm.events` (durable), persistent JSON messages, publisher confirms.
Inbound: the topic exchange `webshop.events`, one durable queue for the CRM, and a dead-letter
exchange and queue for messages the CRM cannot apply (each carries the reason in its headers).
"""

from django.conf import settings
from kombu import Connection, Exchange, Queue

WEBSHOP_EVENT_TYPES = ("customer.upserted", "order.created", "order.updated")


def broker_connection(*, url=None):
    """The publisher's connection (events.publisher puts its channel in confirm mode and collects the
    broker's confirms as they come)."""
    return Connection(
        url or settings.EVENTS_BROKER_URL,
        connect_timeout=settings.EVENTS_BROKER_CONNECT_TIMEOUT,
        heartbeat=settings.EVENTS_BROKER_HEARTBEAT,
    )


def events_exchange():
    return Exchange(settings.EVENTS_EXCHANGE, type="topic", durable=True)


def webshop_exchange():
    return Exchange(settings.WEBSHOP_EVENTS_EXCHANGE, type="topic", durable=True)


def webshop_dead_letter_exchange():
    return Exchange(f"{settings.WEBSHOP_EVENTS_QUEUE}.dlx", type="fanout", durable=True)


def webshop_dead_letter_queue():
    return Queue(
        f"{settings.WEBSHOP_EVENTS_QUEUE}.dead",
        exchange=webshop_dead_letter_exchange(),
        routing_key="#",
        durable=True,
    )


def webshop_queue():
    """The CRM's durable queue on `webshop.events`.

    Single active consumer: a second consumer process is a hot standby, so messages about one
    customer are never applied out of order by two processes. Whatever the broker itself dead-letters
    (a rejected message) lands in the same dead-letter queue as the poison messages we route there.
    """
    return Queue(
        settings.WEBSHOP_EVENTS_QUEUE,
        exchange=webshop_exchange(),
        bindings=None,
        routing_key="#",
        durable=True,
        queue_arguments={
            "x-dead-letter-exchange": webshop_dead_letter_exchange().name,
            "x-single-active-consumer": True,
        },
    )


def webshop_topology_declare(channel):
    """Declare (idempotently) the exchanges and queues of the inbound path on `channel`."""
    webshop_dead_letter_exchange()(channel).declare()
    webshop_dead_letter_queue()(channel).declare()
    webshop_exchange()(channel).declare()
    webshop_queue()(channel).declare()
