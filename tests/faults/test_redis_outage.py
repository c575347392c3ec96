"""Redis stopped: the API answers and tracking keeps recording (the cache fails soft)."""

import subprocess
import time
from datetime import timedelta
from urllib.parse import urlsplit

from django.conf import settings
from django.core.cache import cache
from django.utils import timezone
from django_tenants.utils import schema_context

from tests.faults.conftest import require_root_control


def _port():
    return urlsplit(settings.REDIS_URL).port or 6379


def _redis_start():
    subprocess.run(
        [
            "redis-server",
            "--daemonize",
            "yes",
            "--bind",
            "127.0.0.1",
            "--port",
            str(_port()),
            "--save",
            "",
            "--appendonly",
            "no",
        ],
        check=True,
    )


def _redis_up():
    result = subprocess.run(["redis-cli", "-p", str(_port()), "ping"], capture_output=True, text=True)
    return result.stdout.strip() == "PONG"


def test_it_keeps_serving_the_api_and_tracking_without_redis(
    committed_tenant, gunicorn_server, redis_service
):
    require_root_control("redis-server")
    gunicorn_server.login("ops@fault.example", "fault-pass-123")
    with schema_context(committed_tenant.schema_name):
        from campaigns.models import Campaign, CampaignRecipient
        from campaigns.tokens import make_token
        from customers.models import Customer

        customer = Customer.objects.create(email="reader@fault.example", email_marketing=True)
        campaign = Campaign.objects.create(name="Outage", subject="Hi", status="sent")
        recipient = CampaignRecipient.objects.create(
            campaign=campaign,
            customer=customer,
            email=customer.email,
            status="sent",
            sent_at=timezone.now() - timedelta(hours=1),
        )
        open_token = make_token("o", recipient.id)
    subprocess.run(["redis-cli", "-p", str(_port()), "shutdown", "nosave"], capture_output=True)
    try:
        time.sleep(0.5)
        assert not _redis_up()
        assert gunicorn_server.get("/api/customers").status_code == 200
        pixel = gunicorn_server.get(
            f"/t/o/{open_token}", headers={"User-Agent": "Mozilla/5.0 (Windows NT 10.0)"}
        )
        assert pixel.status_code == 200 and pixel.headers["Content-Type"] == "image/gif"
        with schema_context(committed_tenant.schema_name):
            from tracking.models import Hit

            assert Hit.objects.filter(recipient_id=recipient.id).count() == 1
        health = gunicorn_server.get("/healthz")
        assert health.status_code == 503 and health.json()["checks"]["redis"]["ok"] is False
        assert cache.get("anything", "fallback") == "fallback"
    finally:
        _redis_start()
        for _ in range(50):
            if _redis_up():
                break
            time.sleep(0.1)
    assert _redis_up()
    assert gunicorn_server.get("/healthz").status_code == 200
