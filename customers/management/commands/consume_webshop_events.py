"""`python manage.py consume_webshop_events`: apply the webshop's messages from RabbitMQ.

The webshop publishes to the topic exchange `webshop.events` (WEBSHOP_EVENTS_EXCHANGE); this command
consumes the CRM's durable queue on it (WEBSHOP_EVENTS_QUEUE) and applies each message through the
same serializers and services as the HTTP API, once the message's `x-crm-signature` has proven the
tenant it names (events/README.md). Poison and unproven messages go to `<queue>.dead` with the reason
in the `x-crm-error` header. Run one or more (one is active at a time, the others stand by).

The consumer itself (events.inbound) knows RabbitMQ, not customers; this command, in the customers app,
plugs the customer and order services into it, so the dependencies point one way (customers -> events).
"""

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from kombu.exceptions import OperationalError as KombuOperationalError
from rest_framework.exceptions import ValidationError as DRFValidationError

from customers.models import Order
from customers.serializers import CustomerInputSerializer, OrderInputSerializer, OrderStatusInputSerializer
from customers.services import customer_upsert, order_set_status, order_upsert
from events.inbound import InvalidData, webshop_consume


def customer_upserted(data):
    serializer = CustomerInputSerializer(data=data, partial=True)
    serializer.is_valid(raise_exception=True)
    customer_upsert(data=serializer.validated_data, source="the webshop bus")


def order_created(data):
    serializer = OrderInputSerializer(data=data)
    serializer.is_valid(raise_exception=True)
    order_upsert(data=serializer.validated_data)


def order_updated(data):
    """A whole order (as order.created), or just `{"external_id", "status"}` for a status change."""
    if not isinstance(data, dict) or set(data) - {"external_id", "status"} or "status" not in data:
        return order_created(data)
    serializer = OrderStatusInputSerializer(data={"status": data["status"]})
    serializer.is_valid(raise_exception=True)
    external_id = data.get("external_id")
    order = Order.objects.filter(external_id=external_id).first() if isinstance(external_id, str) else None
    if order is None:
        raise ValidationError({"external_id": [f"There is no order with external_id {external_id!r}."]})
    order_set_status(order=order, status=serializer.validated_data["status"])


HANDLERS = {
    "customer.upserted": customer_upserted,
    "order.created": order_created,
    "order.updated": order_updated,
}


def _refusals_as_invalid_data(handler):
    """The serializers' refusals, told to the consumer (which knows no API) as InvalidData."""

    def apply(data):
        try:
            return handler(data)
        except DRFValidationError as error:
            raise InvalidData(error.detail) from error

    return apply


class Command(BaseCommand):
    help = "Consume customer.upserted / order.created / order.updated from the webshop.events exchange."

    def add_arguments(self, parser):
        parser.add_argument("--once", action="store_true", help="Stop when the queue is empty.")
        parser.add_argument("--max-messages", type=int, default=None, help="Stop after this many messages.")
        parser.add_argument("--batch-size", type=int, default=None, help="Messages per transaction.")

    def handle(self, *args, once, max_messages, batch_size, **options):
        if max_messages is not None and max_messages < 1:
            raise CommandError("--max-messages must be at least 1.")
        if batch_size is not None and not 1 <= batch_size <= 10000:
            raise CommandError("--batch-size must be between 1 and 10000.")
        try:
            stats = webshop_consume(
                handlers={kind: _refusals_as_invalid_data(handler) for kind, handler in HANDLERS.items()},
                once=once,
                max_messages=max_messages,
                batch_size=batch_size,
                install_signals=not (once or max_messages),
            )
        except KombuOperationalError as exc:  # bounded runs do not wait for the broker to come back
            raise CommandError(f"RabbitMQ is unreachable ({exc}); nothing was consumed.")
        self.stdout.write(
            f"applied {stats.applied}, duplicates {stats.duplicates}, dead-lettered {stats.dead_lettered} "
            f"in {stats.batches} batches"
        )
