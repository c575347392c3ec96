"""PostgreSQL restarted under load: requests fail with 503 (never 500) and recover; aggregates stay exact."""

import subprocess
import threading
import time
from decimal import Decimal

import pytest
import requests
from django.db import connection
from django_tenants.utils import schema_context

from customers.models import Customer, Order
from tests.faults.conftest import require_root_control

# Each test stops a server every test process shares: they run alone, after the parallel phase.
pytestmark = pytest.mark.serial


def _port():
    return int(connection.settings_dict.get("PORT") or 5432)


def _pg_ctl(action):
    """Stop or start the cluster that serves the test database (found by its port)."""
    listing = subprocess.run(
        ["pg_lsclusters", "--no-header"], capture_output=True, text=True, check=True
    ).stdout
    version, name = next(
        (fields[0], fields[1]) for fields in map(str.split, listing.splitlines()) if int(fields[2]) == _port()
    )
    # A (fast) stop still writes a shutdown checkpoint: on a busy disk that took over a minute once.
    subprocess.run(
        ["pg_ctlcluster", "--skip-systemctl-redirect", version, name, action], check=True, timeout=180
    )


def _wait_for_postgres(timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if subprocess.run(["pg_isready", "-h", "127.0.0.1", "-p", str(_port()), "-q"]).returncode == 0:
            return
        time.sleep(0.2)
    raise RuntimeError("PostgreSQL did not come back")


def _order(external_id):
    return {
        "external_id": external_id,
        "customer_email": "loyal@fault.example",
        "status": "paid",
        "currency": "HUF",
        "total": "10.00",
        "placed_at": "2026-01-01T10:00:00Z",
        "items": [{"sku": "A", "name": "A", "quantity": 1, "unit_price": "10.00"}],
    }


def test_it_answers_503_while_postgres_restarts_and_keeps_aggregates_exact(committed_tenant, gunicorn_server):
    require_root_control("pg_ctlcluster")
    gunicorn_server.login("ops@fault.example", "fault-pass-123")
    statuses, created, stop = [], [], threading.Event()

    def load():
        n = 0
        while not stop.is_set():
            n += 1
            external_id = f"fault-order-{n}"
            try:
                response = gunicorn_server.post("/api/orders", json=_order(external_id))
            except requests.RequestException:
                statuses.append("connection-error")
                continue
            statuses.append(response.status_code)
            if response.status_code in (200, 201):
                created.append(external_id)

    worker = threading.Thread(target=load)
    worker.start()
    try:
        time.sleep(1.5)
        connection.close()
        _pg_ctl("stop")
        time.sleep(0.5)
        pixel = gunicorn_server.get("/t/o/any-token")  # an email client still gets its image
        assert pixel.status_code == 200 and pixel.headers["Content-Type"] == "image/gif"
        page = gunicorn_server.get("/api/customers")
        assert page.status_code == 503 and page.headers["Retry-After"] == "5"
        time.sleep(1.5)
    finally:
        _pg_ctl("start")
        _wait_for_postgres()
    time.sleep(3)
    stop.set()
    worker.join(timeout=60)

    assert 500 not in statuses and 502 not in statuses, statuses
    assert 503 in statuses or "connection-error" in statuses, statuses
    first_failure = next(i for i, s in enumerate(statuses) if s not in (200, 201))
    assert any(s in (200, 201) for s in statuses[first_failure:]), "requests did not recover"

    with schema_context(committed_tenant.schema_name):
        customer = Customer.objects.get(email="loyal@fault.example")
        orders = Order.objects.filter(customer=customer)
        assert set(created) <= set(orders.values_list("external_id", flat=True))
        assert customer.order_count == orders.count()
        assert customer.total_spent == Decimal("10.00") * orders.count()
