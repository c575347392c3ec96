"""The inbound consumer against the real RabbitMQ: batches, exactly-once effects, a dead-letter queue."""

import json
import random
import time
import uuid
from decimal import Decimal

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command
from django_tenants.utils import schema_context
from kombu import Connection, Exchange
from kombu.message import Message

from customers.models import Customer, Order
from events.broker import webshop_dead_letter_exchange, webshop_dead_letter_queue, webshop_queue
from events.models import InboxMessage, OutboxEvent
from tenancy.models import Tenant
from tenancy.tenant_settings import tenant_webshop_secret_rotate
from tests.events.conftest import webshop_secret, webshop_signed


@pytest.fixture
def webshop(rabbitmq_service, settings):
    """A private exchange and queue (as configured for one deployment), removed after the test."""
    suffix = uuid.uuid4().hex[:10]
    settings.WEBSHOP_EVENTS_EXCHANGE = f"test.webshop.events.{suffix}"
    settings.WEBSHOP_EVENTS_QUEUE = f"crm.webshop.test-{suffix}"
    settings.WEBSHOP_EVENTS_BATCH_WAIT = 0.1  # the messages are all there already
    bus = WebshopBus(settings.WEBSHOP_EVENTS_EXCHANGE)
    yield bus
    with Connection(settings.EVENTS_BROKER_URL) as conn:
        channel = conn.default_channel
        for queue in (webshop_queue(), webshop_dead_letter_queue()):
            queue(channel).delete()
        webshop_dead_letter_exchange()(channel).delete()
        Exchange(settings.WEBSHOP_EVENTS_EXCHANGE)(channel).delete()


class WebshopBus:
    def __init__(self, exchange):
        self.exchange = Exchange(exchange, type="topic", durable=True)

    def publish(self, *messages, signed_by=None, headers=None):
        """Each message: a dict (sent as JSON) or raw bytes; routing key = its type.

        Signed as the webshop of `signed_by` (a tenant's schema or domain) would; by default as the
        tenant each message claims (tenant_a for bytes that claim none). `headers` replaces the
        signature header (e.g. `{}` for an unsigned message)."""
        with Connection(settings.EVENTS_BROKER_URL, transport_options={"confirm_publish": True}) as conn:
            channel = conn.channel()
            self.exchange(channel).declare()
            webshop_queue()(channel).declare()  # the consumer's queue exists before the webshop publishes
            webshop_dead_letter_exchange()(channel).declare()
            producer = conn.Producer(channel=channel, exchange=self.exchange)
            for message in messages:
                body = message if isinstance(message, bytes) else json.dumps(message).encode()
                key = message.get("type", "x") if isinstance(message, dict) else "order.created"
                signer = signed_by or (message.get("tenant") if isinstance(message, dict) else None)
                producer.publish(
                    body,
                    routing_key=key,
                    content_type="application/json",
                    content_encoding="utf-8",
                    delivery_mode=2,
                    headers=headers
                    if headers is not None
                    else webshop_signed(body, webshop_secret(signer or "tenant_a")),
                )

    def dead_letters(self):
        found = []
        with Connection(settings.EVENTS_BROKER_URL) as conn:
            queue = webshop_dead_letter_queue()(conn.default_channel)
            while (message := queue.get(no_ack=True)) is not None:
                found.append(message)
        return found

    def pending(self):
        with Connection(settings.EVENTS_BROKER_URL) as conn:
            return webshop_queue()(conn.default_channel).queue_declare(passive=True).message_count


def order(external_id, email, total, status="paid", **extra):
    return {
        "external_id": external_id,
        "customer_email": email,
        "number": external_id.upper(),
        "status": status,
        "currency": "HUF",
        "total": total,
        "placed_at": "2026-11-01T10:00:00+00:00",
        **extra,
    }


def message(type, data, tenant="tenant_a", id=None):
    return {"id": id or str(uuid.uuid4()), "type": type, "tenant": tenant, "data": data}


def consume(**options):
    call_command("consume_webshop_events", once=True, **options)


def test_it_applies_orders_exactly_once_and_dead_letters_the_malformed_one(tenant, webshop, capsys):
    repeated = message("order.created", order("o-2", "bob@example.com", "250.00"))
    webshop.publish(
        message("customer.upserted", {"email": "Ann@Example.com", "first_name": "Ann", "city": "Győr"}),
        message("order.created", order("o-1", "ann@example.com", "100.00")),
        repeated,
        message("order.created", order("o-3", "ann@example.com", "50.50")),
        repeated,  # the same message again (a webshop retry)
        message("order.created", order("o-1", "ann@example.com", "100.00")),  # same order, new message id
        b'{"id": "m-broken", "type": "order.created", "tenant": "tenant_a", "data": {',
        message("order.created", order("o-4", "bob@example.com", "75.00")),
        message("order.updated", {"external_id": "o-4", "status": "cancelled"}),
        message("order.created", order("o-5", "ann@example.com", "20.00", status="refunded")),
    )

    consume(batch_size=4)

    ann = Customer.objects.get(email="ann@example.com")
    bob = Customer.objects.get(email="bob@example.com")
    assert (ann.first_name, ann.city, ann.total_spent, ann.order_count) == (
        "Ann",
        "Győr",
        Decimal("150.50"),
        2,
    )
    assert (bob.total_spent, bob.order_count) == (Decimal("250.00"), 1)
    assert Order.objects.get(external_id="o-4").status == "cancelled"
    assert Order.objects.filter(external_id__in=["o-1", "o-2", "o-3", "o-4", "o-5"]).count() == 5
    dead = webshop.dead_letters()
    assert len(dead) == 1
    body = dead[0].body if isinstance(dead[0].body, bytes) else dead[0].body.encode()
    assert body == b'{"id": "m-broken", "type": "order.created", "tenant": "tenant_a", "data": {'
    assert dead[0].headers["x-crm-error-kind"] == "invalid_json"
    assert dead[0].headers["x-crm-error"].startswith("The body is not JSON: ")
    assert dead[0].headers["x-crm-original-routing-key"] == "order.created"
    assert webshop.pending() == 0
    assert "applied 8, duplicates 1, dead-lettered 1" in capsys.readouterr().out


def test_it_dead_letters_invalid_data_unknown_tenants_and_types_with_the_reason(tenant, webshop):
    before = Customer.objects.count()
    webshop.publish(
        message("order.created", {"external_id": "x-1", "total": "10.00"}),
        message("customer.upserted", {"email": "zed@example.com"}, tenant="no-such-shop.example.com"),
        message("customer.deleted", {"id": 1}),
        {"id": "m-1", "type": "order.created", "data": {}},
        message("order.updated", {"external_id": "missing", "status": "shipped"}),
        message("order.updated", {"external_id": "missing", "status": "lost"}),
    )

    consume()

    reasons = {
        json.loads(m.body)["id"] if m.headers["x-crm-error-kind"] != "invalid_envelope" else "envelope": (
            m.headers["x-crm-error-kind"],
            m.headers["x-crm-error"],
        )
        for m in webshop.dead_letters()
    }
    kinds = sorted(kind for kind, _ in reasons.values())
    assert kinds == ["invalid_data", "invalid_data", "invalid_data", "invalid_envelope", "unknown_tenant"]
    assert reasons["envelope"] == ("invalid_envelope", "(root): 'tenant' is a required property")
    texts = sorted(text for _, text in reasons.values())
    assert '{"customer": ["Give `customer` (an id), `customer_email` or `customer_external_id`."]}' in texts
    assert "No active tenant is named 'no-such-shop.example.com'." in texts
    assert '{"external_id": ["There is no order with external_id \'missing\'."]}' in texts
    assert '{"status": ["\\"lost\\" is not a valid choice."]}' in texts
    assert Customer.objects.count() == before
    assert InboxMessage.objects.filter(tenant="tenant_a", message_id="m-1").count() == 0
    assert webshop.pending() == 0


@pytest.mark.parametrize(
    "body, kind",
    [
        (b"\xff\xfe not utf-8", "invalid_json"),
        (b"[1, 2]", "invalid_envelope"),
        (b"null", "invalid_envelope"),
        (b'{"id": 7, "type": "order.created", "tenant": "tenant_a", "data": {}}', "invalid_envelope"),
        (
            b'{"id": "x", "type": "order.created", "tenant": "tenant_a", "data": {"total": "1\\u0000"}}',
            "invalid_data",
        ),
    ],
)
def test_no_body_whatever_it_is_stops_the_consumer(tenant, webshop, body, kind):
    before = (Customer.objects.count(), Order.objects.count())
    webshop.publish(body)

    consume()

    [dead] = webshop.dead_letters()
    assert dead.headers["x-crm-error-kind"] == kind
    assert (Customer.objects.count(), Order.objects.count()) == before
    assert webshop.pending() == 0


def test_it_routes_each_message_to_its_tenant_by_schema_or_domain(tenant, other_tenant, webshop):
    webshop.publish(
        message("customer.upserted", {"email": "a@example.com", "first_name": "A"}, tenant="tenant_a"),
        message(
            "customer.upserted", {"email": "b@example.com", "first_name": "B"}, tenant="tenant-b.localhost"
        ),
    )

    consume()

    assert Customer.objects.filter(email="a@example.com").exists()
    assert not Customer.objects.filter(email="b@example.com").exists()
    with schema_context(other_tenant.schema_name):
        assert Customer.objects.get(email="b@example.com").first_name == "B"
        assert not Customer.objects.filter(email="a@example.com").exists()


def test_a_redelivered_message_changes_nothing(tenant, webshop):
    first = message("order.created", order("o-9", "cy@example.com", "10.00"))
    webshop.publish(first)
    consume()
    customer = Customer.objects.get(email="cy@example.com")
    webshop.publish(message("order.updated", {"external_id": "o-9", "status": "cancelled"}))
    consume()

    webshop.publish(first)  # the broker redelivers the old message after a crash before the ack
    consume()

    customer.refresh_from_db()
    assert Order.objects.get(external_id="o-9").status == "cancelled"
    assert (customer.total_spent, customer.order_count) == (Decimal("0.00"), 0)
    assert InboxMessage.objects.filter(tenant="tenant_a", message_id=first["id"]).count() == 1


def test_it_stops_after_max_messages_and_leaves_the_rest_queued(tenant, webshop):
    webshop.publish(*[message("customer.upserted", {"email": f"m{n}@example.com"}) for n in range(5)])

    call_command("consume_webshop_events", max_messages=2)

    assert Customer.objects.filter(email__startswith="m", email__endswith="@example.com").count() == 2
    assert webshop.pending() == 3


@pytest.mark.parametrize("option", [{"max_messages": 0}, {"batch_size": 0}])
def test_it_refuses_bounds_that_make_no_sense(tenant, webshop, option):
    with pytest.raises(CommandError):
        call_command("consume_webshop_events", **option)


def test_a_crash_between_commit_and_ack_redelivers_and_changes_nothing_twice(
    tenant, webshop, monkeypatch, capsys
):
    webshop.publish(message("order.created", order("o-crash", "dee@example.com", "40.00")))

    def crash(self, *args, **kwargs):
        raise SystemExit("killed after commit, before the ack")

    monkeypatch.setattr(Message, "ack", crash)
    with pytest.raises(SystemExit):
        consume()
    monkeypatch.undo()
    assert webshop.pending() == 1  # not acked: the broker delivers it again
    capsys.readouterr()

    call_command("consume_webshop_events", once=True)

    assert "applied 0, duplicates 1, dead-lettered 0" in capsys.readouterr().out

    customer = Customer.objects.get(email="dee@example.com")
    assert (customer.total_spent, customer.order_count) == (Decimal("40.00"), 1)
    assert webshop.pending() == 0


def test_a_bounded_run_says_so_when_rabbitmq_is_unreachable(tenant, settings):
    settings.EVENTS_BROKER_URL = "amqp://guest:guest@127.0.0.1:9//"

    with pytest.raises(CommandError, match=r"RabbitMQ is unreachable \(.*\); nothing was consumed\."):
        consume()


def test_many_orders_with_repeats_leave_exact_aggregates(tenant, webshop):
    rng = random.Random(7)
    emails = [f"buyer{n}@example.com" for n in range(5)]
    final = {}  # external_id -> (email, total, status) as the shop last said
    messages = []
    for number in range(50):
        data = order(f"bulk-{number}", rng.choice(emails), f"{rng.randint(1, 500)}.{rng.randint(0, 99):02d}")
        messages.append(message("order.created", data))
        final[data["external_id"]] = (data["customer_email"], data["total"], data["status"])
    for repeated in rng.sample(messages, 15):
        messages.append(repeated if rng.random() < 0.5 else {**repeated, "id": str(uuid.uuid4())})
    for external_id in rng.sample(sorted(final), 6):
        status = rng.choice(["cancelled", "refunded", "shipped"])
        messages.append(message("order.updated", {"external_id": external_id, "status": status}))
        email, total, _ = final[external_id]
        final[external_id] = (email, total, status)
    messages.insert(30, b'{"id": "broken", "type": "order.created", "tenant": "tenant_a", "data": {"exte')
    webshop.publish(*messages)

    consume(batch_size=7)

    for email in emails:
        counting = [
            Decimal(total)
            for owner, total, status in final.values()
            if owner == email and status not in ("cancelled", "refunded")
        ]
        customer = Customer.objects.get(email=email)
        assert (customer.total_spent, customer.order_count) == (sum(counting, Decimal("0.00")), len(counting))
    assert Order.objects.filter(external_id__startswith="bulk-").count() == 50
    assert [m.headers["x-crm-error-kind"] for m in webshop.dead_letters()] == ["invalid_json"]
    assert webshop.pending() == 0


def _nothing_written(tenant_obj, other_tenant, ids):
    """Neither tenant got a customer, an order, an inbox claim or an event from the messages `ids`."""
    counts = []
    for schema in (tenant_obj.schema_name, other_tenant.schema_name):
        with schema_context(schema):
            counts.append((Customer.objects.count(), Order.objects.count()))
    claims = InboxMessage.objects.filter(message_id__in=ids).count()
    return counts, claims, OutboxEvent.objects.filter(type__startswith="customer.").count()


def test_a_message_claiming_another_tenant_goes_to_the_dead_letter_queue_and_writes_nowhere(
    tenant, other_tenant, webshop
):
    """Tenant B's webshop (it knows B's secret, and may publish) tries to write into tenant A."""
    before = _nothing_written(tenant, other_tenant, [])
    forged = [
        message("customer.upserted", {"email": "mallory@example.com"}, tenant="tenant_a"),
        message("order.created", order("evil-1", "mallory@example.com", "1.00"), tenant="tenant-a.localhost"),
    ]
    webshop.publish(*forged, signed_by="tenant_b")
    unsigned = message("customer.upserted", {"email": "nosig@example.com"})
    webshop.publish(unsigned, headers={})
    garbled = message("customer.upserted", {"email": "garbled@example.com"})
    webshop.publish(garbled, headers={"x-crm-signature": "v1=" + "0" * 64})
    # B signs a message for itself, then the body is changed to claim A: the MAC no longer fits.
    swapped_body = message("customer.upserted", {"email": "swapped@example.com"}, tenant="tenant_b")
    headers = webshop_signed(json.dumps(swapped_body).encode(), webshop_secret("tenant_b"))
    webshop.publish({**swapped_body, "tenant": "tenant_a"}, headers=headers)
    ids = [m["id"] for m in (*forged, unsigned, garbled, swapped_body)]

    consume()

    dead = {json.loads(m.body)["id"]: m.headers for m in webshop.dead_letters()}
    assert sorted(dead) == sorted(ids)
    assert {headers["x-crm-error-kind"] for headers in dead.values()} == {"invalid_signature"}
    assert dead[forged[0]["id"]]["x-crm-error"] == (
        "Tenant 'tenant_a' not proven: The signature does not match the claimed tenant's webshop secret."
    )
    assert dead[forged[1]["id"]]["x-crm-error"].startswith("Tenant 'tenant-a.localhost' not proven: ")
    assert dead[unsigned["id"]]["x-crm-error"] == (
        "Tenant 'tenant_a' not proven: The message has no x-crm-signature header; "
        "sign it with the tenant's webshop secret."
    )
    assert dead[garbled["id"]]["x-crm-error"].endswith("The x-crm-signature header has no t=<unix time>.")
    assert dead[forged[0]["id"]]["x-crm-signature"].startswith("t=")  # kept, for the operator to see
    assert _nothing_written(tenant, other_tenant, ids) == before
    assert not Customer.objects.filter(email__in=["mallory@example.com", "nosig@example.com"]).exists()
    assert webshop.pending() == 0


def test_it_applies_each_message_proven_by_its_own_tenants_secret(tenant, other_tenant, webshop):
    webshop.publish(
        message("customer.upserted", {"email": "ann@example.com"}, tenant="tenant_a"),
        message("customer.upserted", {"email": "bea@example.com"}, tenant="tenant-b.localhost"),
    )

    consume()

    assert webshop.dead_letters() == []
    assert list(
        Customer.objects.filter(email__in=["ann@example.com", "bea@example.com"]).values_list(
            "email", flat=True
        )
    ) == ["ann@example.com"]
    with schema_context(other_tenant.schema_name):
        assert list(
            Customer.objects.filter(email__in=["ann@example.com", "bea@example.com"]).values_list(
                "email", flat=True
            )
        ) == ["bea@example.com"]


def test_it_refuses_a_signature_too_old_or_from_the_future_and_writes_nothing(
    tenant, other_tenant, webshop, settings
):
    settings.WEBSHOP_SIGNATURE_MAX_AGE_SECONDS = 3600
    now = int(time.time())
    stale = message("customer.upserted", {"email": "stale@example.com"})
    future = message("customer.upserted", {"email": "future@example.com"})
    fresh = message("customer.upserted", {"email": "fresh@example.com"})
    secret = webshop_secret("tenant_a")
    for msg, timestamp in ((stale, now - 3700), (future, now + 3600), (fresh, now - 3500)):
        webshop.publish(msg, headers=webshop_signed(json.dumps(msg).encode(), secret, timestamp=timestamp))
    before = _nothing_written(tenant, other_tenant, [])

    consume()

    reasons = {json.loads(m.body)["id"]: m.headers["x-crm-error"] for m in webshop.dead_letters()}
    assert sorted(reasons) == sorted([stale["id"], future["id"]])
    assert reasons[stale["id"]].endswith(" s old; at most 3600 s are accepted.")
    assert reasons[future["id"]].endswith(f"The signature's time t={now + 3600} is in the future.")
    counts, claims, _ = _nothing_written(tenant, other_tenant, [stale["id"], future["id"]])
    assert claims == 0
    assert counts[0] == (before[0][0][0] + 1, before[0][0][1])  # only the fresh one
    assert Customer.objects.filter(email="fresh@example.com").exists()


def test_a_rotated_secret_stops_proving_at_once(tenant, webshop):
    old_secret = webshop_secret("tenant_a")
    with schema_context("public"):
        new_secret = tenant_webshop_secret_rotate(tenant=Tenant.objects.get(schema_name="tenant_a"))
    assert new_secret != old_secret and webshop_secret("tenant_a") == new_secret
    late = message("customer.upserted", {"email": "late@example.com"})
    current = message("customer.upserted", {"email": "current@example.com"})
    webshop.publish(late, headers=webshop_signed(json.dumps(late).encode(), old_secret))
    webshop.publish(current)

    consume()

    [dead] = webshop.dead_letters()
    assert json.loads(dead.body)["id"] == late["id"]
    assert dead.headers["x-crm-error-kind"] == "invalid_signature"
    assert not Customer.objects.filter(email="late@example.com").exists()
    assert Customer.objects.filter(email="current@example.com").exists()
