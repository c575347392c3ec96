"""The production path end to end: the webshop's API calls commit, the hooks enqueue, a real Celery
worker renders and sends to a real SMTP server."""

import time

from django.contrib.auth import get_user_model
from django.utils import timezone
from django_tenants.utils import schema_context

from tests.conftest import make_api_client
from tests.events.conftest import celery_worker_process, committed


def test_a_real_worker_sends_one_confirmation_and_one_shipping_notice(fresh_tenant, smtp_sink, redis_service):
    order = {
        "external_id": "real-1",
        "customer_email": "ann@example.com",
        "number": "R-1",
        "total": "12.00",
        "currency": "EUR",
        "placed_at": timezone.now().isoformat(),
        "items": [{"sku": "S", "name": "Socks", "quantity": 1, "unit_price": "12.00"}],
    }

    def shop_talks():
        with schema_context(fresh_tenant.schema_name):
            admin = get_user_model().objects.get(
                username=f"admin@{fresh_tenant.schema_name.replace('_', '-')}.localhost"
            )
        api = make_api_client(fresh_tenant, admin)
        posted = [api.post("/api/orders", order, format="json").status_code for _ in range(3)]
        order_id = api.get("/api/customers").json()["results"][0]["id"]
        order_pk = api.get(f"/api/customers/{order_id}/orders").json()["results"][0]["id"]
        patched = [
            api.patch(f"/api/orders/{order_pk}", {"status": "shipped"}, format="json").status_code
            for _ in range(2)
        ]
        return posted, patched

    with celery_worker_process(
        MAIL_MAILER="smtp", EMAIL_HOST="127.0.0.1", EMAIL_PORT=str(smtp_sink.port)
    ) as worker:
        posted, patched = committed(shop_talks)
        deadline = time.monotonic() + 30
        while len(smtp_sink.envelopes) < 2:
            assert worker.poll() is None, worker.stderr.read().decode()[-3000:]
            assert time.monotonic() < deadline, f"{len(smtp_sink.envelopes)} of 2 emails within 30 s"
            time.sleep(0.1)
        time.sleep(1.0)  # a duplicate would arrive now

    assert (posted, patched) == ([201, 200, 200], [200, 200])
    assert sorted(m["Subject"] for m in smtp_sink.emails()) == [
        "Your order R-1 is confirmed",
        "Your order R-1 is on its way",
    ]
