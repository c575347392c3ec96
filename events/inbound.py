"""The webshop's messages from RabbitMQ (`webshop.events`), applied in batches, each exactly once.

A message: `{"id", "type", "tenant" (schema or domain), "data"}` with `data` shaped like the matching
API input, and the header `x-crm-signature: t=<unix time>,v1=<hex HMAC-SHA256 of "<t>." + body>` keyed
with the claimed tenant's webshop secret: others may be able to publish, only the tenant's webshop can
prove the tenant (events/README.md). Per batch and tenant one transaction; every message in its own
savepoint, so a bad one is rolled back alone. The message id is claimed in that savepoint (a unique key), so a redelivered
or repeated message changes nothing. Messages are acknowledged only after their transaction
committed; what cannot be applied goes to the dead-letter queue with the reason in its headers.

The engine knows no app above events: the caller passes `handlers` (type -> callable(data)) that
validate and apply through the owning app's services, raising ValidationError or InvalidData for bad
data.
"""

import hashlib
import hmac
import json
import logging
import signal
import socket
import time
from dataclasses import dataclass, field

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import (
    InterfaceError,
    OperationalError,
    close_old_connections,
    connection,
    connections,
    transaction,
)
from django.utils import timezone
from django_tenants.utils import schema_context
from kombu.exceptions import OperationalError as KombuOperationalError

from core.backoff import exponential_backoff
from tenancy.models import Tenant

from .broker import broker_connection, webshop_dead_letter_exchange, webshop_queue, webshop_topology_declare
from .contracts import webshop_envelope_errors
from .models import InboxMessage

logger = logging.getLogger(__name__)

REASON_MAX = 2000
SIGNATURE_HEADER = "x-crm-signature"
# Reconnecting to the broker or the database: 0.5 s, 1 s, 2 s ... at most 30 s between tries.
RECONNECT_BACKOFF_BASE_SECONDS = 0.5
RECONNECT_BACKOFF_MAX_SECONDS = 30.0
# A signature may be this far ahead of our clock (the webshop's clock runs fast) and still count.
SIGNATURE_CLOCK_SKEW_SECONDS = 300


@dataclass
class ConsumeStats:
    applied: int = 0
    duplicates: int = 0
    dead_lettered: int = 0
    batches: int = 0
    reasons: list = field(default_factory=list)

    @property
    def handled(self):
        return self.applied + self.duplicates + self.dead_lettered


class Poison(Exception):
    """A message that can never be applied as it is; `kind` names the class of problem."""

    def __init__(self, kind, reason):
        super().__init__(reason)
        self.kind = kind
        self.reason = reason


@dataclass
class Delivery:
    message: object  # kombu Message
    envelope: dict | None = None
    schema: str | None = None
    poison: Poison | None = None


@dataclass(frozen=True)
class ClaimedTenant:
    schema: str
    webshop_secret: str


def tenant_resolve(name):
    """The serving tenant named by schema or by one of its domains (schema and secret), else None."""
    name = name.strip().lower()
    with schema_context("public"):
        serving = Tenant.objects.serving()
        row = serving.filter(schema_name=name).values_list("schema_name", "webshop_secret").first()
        if row is None:
            row = (
                serving.filter(domains__domain=name.rstrip("."))
                .values_list("schema_name", "webshop_secret")
                .first()
            )
    return ClaimedTenant(*row) if row else None


def webshop_signature(*, secret, timestamp, body):
    """The hex HMAC-SHA256 a webshop sends in `v1=`: keyed with its secret, over `"<timestamp>." + body`."""
    return hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def signature_problem(header, *, body, secret, now, max_age):
    """None when `header` proves that the holder of `secret` signed `body` lately, else why not."""
    if isinstance(header, bytes):
        header = header.decode("utf-8", "replace")
    if not header:
        return f"The message has no {SIGNATURE_HEADER} header; sign it with the tenant's webshop secret."
    parts = {}
    for item in str(header).split(","):
        key, _, value = item.strip().partition("=")
        parts.setdefault(key, []).append(value)
    stamp = parts.get("t", [""])[0]
    if not (stamp.isascii() and stamp.isdigit()):
        return f"The {SIGNATURE_HEADER} header has no t=<unix time>."
    timestamp = int(stamp)
    expected = webshop_signature(secret=secret, timestamp=stamp, body=body)
    if not any(hmac.compare_digest(expected, given) for given in parts.get("v1", [])):
        return "The signature does not match the claimed tenant's webshop secret."
    # Checked after the MAC, so only the tenant's webshop can learn that its clock is off.
    if timestamp > now + SIGNATURE_CLOCK_SKEW_SECONDS:
        return f"The signature's time t={timestamp} is in the future."
    if now - timestamp > max_age:
        return f"The signature is {int(now - timestamp)} s old; at most {max_age} s are accepted."
    return None


def _parse(message, tenants, *, now, max_age):
    delivery = Delivery(message=message)
    try:
        body = message.body
        if isinstance(body, str):
            body = body.encode("utf-8")
        envelope = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        delivery.poison = Poison("invalid_json", f"The body is not JSON: {exc}")
        return delivery
    errors = webshop_envelope_errors(envelope)
    if errors:
        delivery.poison = Poison("invalid_envelope", "; ".join(errors))
        return delivery
    delivery.envelope = envelope
    if envelope["tenant"] not in tenants:
        tenants[envelope["tenant"]] = tenant_resolve(envelope["tenant"])
    claimed = tenants[envelope["tenant"]]
    if claimed is None:
        delivery.poison = Poison("unknown_tenant", f"No active tenant is named '{envelope['tenant']}'.")
        return delivery
    # The claim is only a claim until the tenant's own secret proves it: nothing of the message is
    # used before this check.
    problem = signature_problem(
        (message.headers or {}).get(SIGNATURE_HEADER),
        body=body,
        secret=claimed.webshop_secret,
        now=now,
        max_age=max_age,
    )
    if problem:
        delivery.poison = Poison("invalid_signature", f"Tenant '{envelope['tenant']}' not proven: {problem}")
        return delivery
    delivery.schema = claimed.schema
    return delivery


class InvalidData(Exception):
    """Raised by a handler for data it refuses, with `detail`: the reasons as JSON-able data (an API's
    error body: {field: [message, ...]}); Django's ValidationError says the same in its own shape."""

    def __init__(self, detail):
        super().__init__(detail)
        self.detail = detail


def _error_text(error):
    if isinstance(error, InvalidData):
        return json.dumps(error.detail, default=str)
    if hasattr(error, "error_dict"):
        return json.dumps(error.message_dict)
    return json.dumps({"non_field_errors": error.messages})


def _claim(schema, envelope):
    """Claim the message id; False when it was applied before (by this or an earlier delivery)."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO public.{InboxMessage._meta.db_table} (tenant, message_id, type, processed_at) "
            "VALUES (%s, %s, %s, %s) ON CONFLICT (tenant, message_id) DO NOTHING RETURNING id",
            [schema, envelope["id"], envelope["type"], timezone.now()],
        )
        return cursor.fetchone() is not None


def _apply_group(schema, deliveries, handlers, stats):
    """One transaction for a tenant's share of the batch; a savepoint per message."""
    applied, dead = [], []
    with schema_context(schema):
        with transaction.atomic():
            for delivery in deliveries:
                envelope = delivery.envelope
                try:
                    with transaction.atomic():
                        if not _claim(schema, envelope):
                            stats.duplicates += 1
                            applied.append(delivery)
                            continue
                        handlers[envelope["type"]](envelope["data"])
                except (ValidationError, InvalidData) as error:
                    delivery.poison = Poison("invalid_data", _error_text(error))
                    dead.append(delivery)
                    continue
                except (OperationalError, InterfaceError):
                    raise  # the database is unwell: the whole group goes back to the queue
                except Exception as error:
                    # A bug or data the validation let through: kept in the dead-letter queue to
                    # replay after a fix, never retried forever.
                    logger.exception("webshop message %s failed", envelope.get("id"))
                    delivery.poison = Poison("error", f"{type(error).__name__}: {error}")
                    dead.append(delivery)
                    continue
                stats.applied += 1
                applied.append(delivery)
    return applied, dead


def _reconnect_delay(failures):
    return exponential_backoff(
        failures, base=RECONNECT_BACKOFF_BASE_SECONDS, cap=RECONNECT_BACKOFF_MAX_SECONDS
    )


class WebshopConsumer:
    def __init__(
        self,
        *,
        handlers,
        batch_size=100,
        wait=0.5,
        signature_max_age=7 * 24 * 3600,
        connection_factory=broker_connection,
    ):
        self.handlers = handlers
        self.batch_size = batch_size
        self.wait = wait
        self.signature_max_age = signature_max_age
        self.connection_factory = connection_factory
        self.stats = ConsumeStats()
        self.stopping = False
        self.buffer = []

    def run(self, *, once=False, max_messages=None, install_signals=False):
        """Consume until stopped; `once`: until the queue is empty; `max_messages`: at most that many."""
        if install_signals:
            for sig in (signal.SIGTERM, signal.SIGINT):
                signal.signal(sig, self._stop)
        failures = 0
        while not self.stopping:
            try:
                with self.connection_factory() as conn:
                    conn.ensure_connection(max_retries=0)
                    failures = 0
                    self._consume(conn, once=once, max_messages=max_messages)
                    return self.stats
            except (OperationalError, InterfaceError):
                # The database went away mid-batch: the unacked messages return to the queue.
                connections.close_all()
                if once:
                    raise
                failures += 1
                backoff = _reconnect_delay(failures)
                logger.warning("database unavailable, retrying in %.1f s", backoff, exc_info=True)
            except Exception as exc:
                if once or not _is_connection_error(exc):
                    raise
                failures += 1
                backoff = _reconnect_delay(failures)
                logger.warning("broker unavailable (%s), retrying in %.1f s", exc, backoff)
            deadline = time.monotonic() + backoff
            while not self.stopping and time.monotonic() < deadline:  # a SIGTERM ends the wait
                time.sleep(0.1)
        return self.stats

    def _stop(self, *args):
        self.stopping = True

    def _consume(self, conn, *, once, max_messages):
        channel = conn.channel()
        webshop_topology_declare(channel)
        self.dlq_producer = conn.Producer(channel=conn.channel(), exchange=webshop_dead_letter_exchange())
        limit = self.batch_size if max_messages is None else min(self.batch_size, max_messages)
        channel.basic_qos(0, limit, False)
        self.buffer = []
        with conn.Consumer(
            webshop_queue()(channel), on_message=self.buffer.append, no_ack=False, accept=None
        ):
            while not self.stopping:
                wanted = limit if max_messages is None else min(limit, max_messages - self.stats.handled)
                if wanted <= 0:
                    return
                deadline = time.monotonic() + self.wait
                while len(self.buffer) < wanted and time.monotonic() < deadline:
                    try:
                        conn.drain_events(timeout=max(0.01, deadline - time.monotonic()))
                    except TimeoutError:  # socket.timeout is the same class
                        break
                conn.heartbeat_check()
                if not self.buffer:
                    if once:
                        return
                    continue
                batch, self.buffer[:] = self.buffer[:wanted], self.buffer[wanted:]
                self._process(batch)

    def _process(self, messages):
        """Apply one batch: parse, group by tenant (order kept), commit, then ack or dead-letter."""
        # A long-running process: honour CONN_MAX_AGE and drop a connection the server closed
        # (never inside a transaction someone else opened, e.g. a test's).
        if not connection.in_atomic_block:
            close_old_connections()
        self.stats.batches += 1
        tenants = {}  # per batch: a rotated secret counts from the next batch on
        groups = {}
        poisoned = []
        now = time.time()
        for message in messages:
            try:
                delivery = _parse(message, tenants, now=now, max_age=self.signature_max_age)
            except (OperationalError, InterfaceError):
                raise
            except Exception as error:  # whatever the bytes are, they must not crash-loop the consumer
                logger.exception("could not read a webshop message")
                delivery = Delivery(
                    message=message, poison=Poison("error", f"{type(error).__name__}: {error}")
                )
            if delivery.poison is not None:
                poisoned.append(delivery)
            elif delivery.envelope["type"] not in self.handlers:
                delivery.poison = Poison(
                    "unknown_type", f"Unknown message type '{delivery.envelope['type']}'."
                )
                poisoned.append(delivery)
            else:
                groups.setdefault(delivery.schema, []).append(delivery)
        for delivery in poisoned:
            self._dead_letter(delivery)
        for schema, deliveries in groups.items():
            applied, dead = _apply_group(schema, deliveries, self.handlers, self.stats)
            # Committed: from here on a crash only means a redelivery, which the inbox key absorbs.
            for delivery in dead:
                self._dead_letter(delivery)
            for delivery in applied:
                delivery.message.ack()
        logger.info(
            "webshop batch of %d: %d applied, %d duplicates, %d dead-lettered so far",
            len(messages),
            self.stats.applied,
            self.stats.duplicates,
            self.stats.dead_lettered,
        )

    def _dead_letter(self, delivery):
        message, poison = delivery.message, delivery.poison
        headers = dict(message.headers or {})
        headers.update(
            {
                "x-crm-error": poison.reason[:REASON_MAX],
                "x-crm-error-kind": poison.kind,
                "x-crm-failed-at": timezone.now().isoformat(),
                "x-crm-original-exchange": message.delivery_info.get("exchange", ""),
                "x-crm-original-routing-key": message.delivery_info.get("routing_key", ""),
            }
        )
        properties = {}
        if message.properties.get("message_id"):
            properties["message_id"] = message.properties["message_id"]
        # Confirmed by the broker before the original is acked: a crash in between duplicates, never loses.
        self.dlq_producer.publish(
            message.body,
            routing_key=message.delivery_info.get("routing_key", ""),
            headers=headers,
            content_type=message.content_type or "application/octet-stream",
            content_encoding=message.content_encoding or "binary",
            delivery_mode=2,
            retry=False,
            **properties,
        )
        message.ack()
        self.stats.dead_lettered += 1
        self.stats.reasons.append((poison.kind, poison.reason))
        envelope_id = (delivery.envelope or {}).get("id") or message.properties.get("message_id") or "(no id)"
        logger.warning("webshop message %s dead-lettered (%s): %s", envelope_id, poison.kind, poison.reason)


def _is_connection_error(exc):
    return isinstance(exc, KombuOperationalError | ConnectionError | OSError | socket.timeout) or (
        type(exc).__module__.startswith("amqp")
    )


def webshop_consume(*, handlers, once=False, max_messages=None, batch_size=None, install_signals=False):
    """Consume the webshop's queue; returns ConsumeStats. See the module docstring."""
    consumer = WebshopConsumer(
        handlers=handlers,
        batch_size=batch_size or settings.WEBSHOP_EVENTS_BATCH_SIZE,
        wait=settings.WEBSHOP_EVENTS_BATCH_WAIT,
        signature_max_age=settings.WEBSHOP_SIGNATURE_MAX_AGE_SECONDS,
    )
    return consumer.run(once=once, max_messages=max_messages, install_signals=install_signals)
