"""Parallel order requests for one customer, each on its own connection, against committed data."""

import threading

from django.db import connections
from django_tenants.utils import schema_context
from rest_framework.test import APIClient

from customers.models import Customer, Interaction, Order
from events.models import OutboxEvent


def _parallel(host, token, payloads):
    results, barrier = [None] * len(payloads), threading.Barrier(len(payloads))

    def work(index):
        try:
            client = APIClient(HTTP_HOST=host)
            client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
            barrier.wait()
            response = client.post("/api/orders", payloads[index], format="json")
            results[index] = response.status_code
        finally:
            connections.close_all()

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(payloads))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return results


def test_it_keeps_aggregates_exact_under_parallel_orders_for_one_customer(fresh_tenant, django_db_blocker):
    host, schema, token = fresh_tenant
    # New customer, 8 different orders and 4 re-deliveries of the first one, all at once.
    payloads = [
        {
            "external_id": f"o-{i}",
            "customer_email": "Race@Example.com",
            "total": f"{i + 1}.25",
            "placed_at": f"2025-01-{i + 1:02d}T00:00:00Z",
        }
        for i in range(8)
    ] + [
        {
            "external_id": "o-0",
            "customer_email": "race@example.com",
            "total": "1.25",
            "placed_at": "2025-01-01T00:00:00Z",
        }
    ] * 4

    with django_db_blocker.unblock():
        statuses = _parallel(host, token, payloads)
        with schema_context(schema):
            customer = Customer.objects.get()
            assert sorted(statuses) == [200] * 4 + [201] * 8
            assert Order.objects.count() == 8
            assert (str(customer.total_spent), customer.order_count) == ("38.00", 8)
            assert customer.first_order_at.isoformat() == "2025-01-01T00:00:00+00:00"
            assert customer.last_order_at.isoformat() == "2025-01-08T00:00:00+00:00"
            assert Interaction.objects.filter(kind="order_placed").count() == 8
            assert OutboxEvent.objects.filter(tenant=schema, type="customer.created").count() == 1

            # Cancel half of them in parallel with new orders: the figures still add up.
            ids = list(Order.objects.order_by("external_id").values_list("external_id", flat=True))[:4]
        more = [
            {
                "external_id": external_id,
                "customer_email": "race@example.com",
                "total": "0",
                "status": "cancelled",
            }
            for external_id in ids
        ] + [
            {"external_id": f"n-{i}", "customer_email": "race@example.com", "total": "10.00"}
            for i in range(4)
        ]
        assert sorted(_parallel(host, token, more)) == [200] * 4 + [201] * 4
        with schema_context(schema):
            customer.refresh_from_db()
            counting = Order.objects.exclude(status__in=["cancelled", "refunded"])
            assert customer.order_count == counting.count() == 8
            assert customer.total_spent == sum(o.total for o in counting)
