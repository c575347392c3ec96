"""End to end over real HTTP: gunicorn serves a committed tenant's tracking links, a real Celery worker
rolls the hits up, and the stats API counts every hit that was sent.

The server and the worker are other processes and see only committed rows, so this module works in a
fresh tenant of its own, dropped with everything in it afterwards.
"""

import http.client
import json
import os
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import connection
from django.utils import timezone
from django_tenants.utils import schema_context
from playwright.sync_api import sync_playwright
from rest_framework.authtoken.models import Token

from campaigns.models import Campaign, CampaignLink, CampaignRecipient
from campaigns.tokens import make_token
from customers.models import Customer
from tests import processes
from tests.conftest import require_service, throwaway_tenant_create, throwaway_tenant_drop
from tracking.models import Hit
from tracking.tasks import rollup_all_tenants

from .conftest import APPLE_MPP_AGENT, HUMAN_AGENT

QUEUE = settings.CELERY_TASK_DEFAULT_QUEUE


@pytest.fixture(scope="module")
def world(django_db_setup, django_db_blocker):
    """A committed tenant with a sent campaign: three recipients, one link, an admin with a token."""
    require_service("redis")

    with django_db_blocker.unblock():
        created = throwaway_tenant_create("trk")
        with schema_context(created.tenant.schema_name):
            campaign = Campaign.objects.create(name="Live", status="sent", sent_at=timezone.now())
            link = CampaignLink.objects.create(campaign=campaign, url="https://shop.example.com/live")
            recipients = []
            for name in ("ann", "bob", "cy"):
                customer = Customer.objects.create(email=f"{name}@example.com", email_marketing=True)
                recipients.append(
                    CampaignRecipient.objects.create(
                        campaign=campaign,
                        customer=customer,
                        email=customer.email,
                        status="sent",
                        sent_at=timezone.now() - timedelta(hours=1),
                    )
                )
            admin = get_user_model().objects.get(username=created.admin_email)
            token = Token.objects.create(user=admin).key
            tokens = {
                "open": [make_token("o", r.pk) for r in recipients],
                "click": make_token("c", recipients[2].pk, link.pk),
                "unsubscribe": make_token("u", recipients[1].pk),
                "preferences": make_token("p", recipients[0].customer_id),
                "unsubscribe_by_page": make_token("u", recipients[2].pk),
            }
        connection.set_schema_to_public()
    yield {
        "tenant": created.tenant,
        "host": created.domain.domain,
        "campaign": campaign,
        "token": token,
        **tokens,
    }
    with django_db_blocker.unblock():
        throwaway_tenant_drop(created.tenant)


def _environment():
    return {**os.environ, "DATABASE_URL": processes.database_url(), "CELERY_QUEUE": QUEUE, "DEBUG": "false"}


def _wait_until(check, seconds, what):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture(scope="module")
def server(world):
    port = processes.free_port()
    proc = subprocess.Popen(
        [
            str(Path(sys.executable).with_name("gunicorn")),
            "crm_project.wsgi",
            "-w",
            "2",
            "-b",
            f"127.0.0.1:{port}",
            "--log-level",
            "warning",
        ],
        cwd=processes.ROOT,
        env=_environment(),
    )

    try:
        processes.wait_for_http(port)
        yield port
    finally:
        proc.send_signal(signal.SIGINT)  # quick shutdown: nothing is in flight any more
        proc.wait(timeout=10)


@pytest.fixture(scope="module")
def worker(world):
    processes.purge_queue(QUEUE)
    with processes.celery_worker(queue=QUEUE, pool="solo", env={"DEBUG": "false"}) as proc:
        yield proc


def _request(port, host, method, path, *, body=None, headers=None):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request(method, path, body=body, headers={"Host": host, **(headers or {})})
    response = conn.getresponse()
    payload = response.read()
    conn.close()
    return response.status, dict(response.getheaders()), payload


def test_it_counts_every_hit_sent_over_http_after_the_worker_rolls_up(
    world, server, worker, django_db_blocker
):
    host = world["host"]
    sent = 0
    for token, agent in (
        (world["open"][0], HUMAN_AGENT),
        (world["open"][0], HUMAN_AGENT),
        (world["open"][1], APPLE_MPP_AGENT),
    ):
        status, headers, body = _request(server, host, "GET", f"/t/o/{token}", headers={"User-Agent": agent})
        assert (status, headers["Content-Type"], body[:6]) == (200, "image/gif", b"GIF89a")
        sent += 1
    status, headers, _ = _request(
        server, host, "GET", f"/t/c/{world['click']}", headers={"User-Agent": HUMAN_AGENT}
    )
    assert (status, headers["Location"]) == (302, "https://shop.example.com/live")
    sent += 1
    status, _, body = _request(
        server,
        host,
        "POST",
        f"/u/{world['unsubscribe']}",
        body="List-Unsubscribe=One-Click",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert (status, body) == (200, b"Unsubscribed.\n")
    # A tenant's token on another host does nothing.
    assert _request(server, "tenant-b.localhost", "GET", f"/t/c/{world['click']}")[0] == 404

    with django_db_blocker.unblock(), schema_context("public"):
        rollup_all_tenants.delay()

        def rolled_up():
            with schema_context(world["tenant"].schema_name):
                return Hit.objects.filter(processed_at__isnull=False).count() == sent

        _wait_until(rolled_up, 45, "the roll-up by the worker")
        with schema_context(world["tenant"].schema_name):
            assert Hit.objects.count() == sent

    status, _, body = _request(
        server,
        host,
        "GET",
        f"/api/campaigns/{world['campaign'].pk}/stats",
        headers={"Authorization": f"Token {world['token']}"},
    )

    stats = json.loads(body)
    assert status == 200
    assert {
        key: stats[key]
        for key in (
            "sent",
            "opens",
            "unique_opens",
            "machine_opens",
            "clicks",
            "unique_clicks",
            "unsubscribes",
        )
    } == {
        "sent": 3,
        "opens": 3,
        "unique_opens": 2,
        "machine_opens": 1,
        "clicks": 1,
        "unique_clicks": 1,
        "unsubscribes": 1,
    }
    assert stats["open_rate"] == 2 / 3


CHROMIUM = "/usr/lib/chromium/chromium"


@pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="needs Debian's chromium")
def test_a_browser_without_javascript_saves_preferences_and_unsubscribes(world, server, django_db_blocker):
    base = f"http://{world['host']}:{server}"
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", f"--host-resolver-rules=MAP {world['host']} 127.0.0.1"],
        )
        try:
            page = browser.new_page(java_script_enabled=False)
            page.goto(f"{base}/p/{world['preferences']}")
            assert page.is_checked("input[name=email_transactional]")
            page.uncheck("input[name=email_transactional]")
            page.click("button[type=submit]")
            assert "Your preferences are saved." in page.content()
            page.goto(f"{base}/u/{world['unsubscribe_by_page']}")
            page.click("button[type=submit]")
            assert "You are unsubscribed" in page.content()
            page.click("button[type=submit]")  # "Subscribe again"
            assert "Welcome back" in page.content()
        finally:
            browser.close()
    with django_db_blocker.unblock(), schema_context(world["tenant"].schema_name):
        ann, cy = Customer.objects.filter(email__in=["ann@example.com", "cy@example.com"]).order_by("email")
        assert (ann.email_marketing, ann.email_transactional) == (True, False)
        assert (cy.email_marketing, cy.unsubscribed_at) == (True, None)
        consent = cy.interactions.filter(kind__in=["unsubscribed", "preferences"]).order_by("id")
        assert list(consent.values_list("kind", flat=True)) == ["unsubscribed", "preferences"]
