"""End to end: a real Celery worker and beat (subprocesses) walk flows on their own clocks and deliver
to a real SMTP server (aiosmtpd). Delays are scaled down to seconds.

Data is committed in a fresh tenant created for this module and dropped afterwards, because the
worker and beat are other processes and see only committed rows."""

import email
import email.parser
import email.policy
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import connection
from django.utils import timezone
from django_tenants.utils import schema_context

from campaigns.models import CampaignRecipient, EmailTemplate
from crm_project.celery import app as celery_app
from customers.models import Customer
from events.models import OutboxEvent
from flows import services
from flows.models import FlowRun, FlowStepLog
from tenancy.models import Domain, Tenant
from tenancy.services import tenant_create
from tests import processes
from tests.conftest import PASSWORD, make_api_client, require_service, verified_sender_domain

QUEUE = settings.CELERY_TASK_DEFAULT_QUEUE
LEASE = 3


@pytest.fixture(scope="module")
def sink():
    with processes.smtp_sink() as handler:
        yield handler


@pytest.fixture(scope="module")
def blocker(django_db_blocker):
    return django_db_blocker


@pytest.fixture(scope="module")
def live(django_db_setup, django_db_blocker):
    """A committed tenant of its own, dropped with everything in it afterwards."""
    require_service("redis")

    slug = f"flow-{uuid.uuid4().hex[:8]}"
    with django_db_blocker.unblock():
        created = tenant_create(
            slug=slug,
            domain=f"{slug}.localhost",
            admin_email=f"admin@{slug}.localhost",
            admin_password=PASSWORD,
        )
        Tenant.objects.filter(pk=created.tenant.pk).update(send_rate_per_second=10000)
        created.tenant.refresh_from_db()
        with schema_context(created.tenant.schema_name):
            verified_sender_domain("shop.example")
        connection.set_schema_to_public()
    yield created.tenant
    with django_db_blocker.unblock():
        connection.set_schema_to_public()
        with connection.cursor() as cursor:
            cursor.execute(f'DROP SCHEMA IF EXISTS "{created.tenant.schema_name}" CASCADE')
        OutboxEvent.objects.filter(tenant=created.tenant.schema_name).delete()
        Domain.objects.filter(tenant=created.tenant).delete()
        Tenant.objects.filter(pk=created.tenant.pk).delete()


def _env(sink, batch=5):
    return {
        "EMAIL_HOST": "127.0.0.1",
        "EMAIL_PORT": str(sink.port),
        "MAIL_MAILER": "smtp",
        "CAMPAIGN_BATCH_SIZE": str(batch),
        "CAMPAIGN_LEASE_SECONDS": str(LEASE),
        "CAMPAIGN_TASK_SECONDS": "2",
        "FLOW_TICK_SECONDS": "1",
        "FLOW_SEND_CONCURRENCY": "2",
        "DB_CONN_MAX_AGE": "0",
    }


class Beat:
    """`celery -A crm_project beat` on the test database, ticking the flows every second."""

    def __init__(self, env):
        self.dir = tempfile.TemporaryDirectory()
        self.proc = subprocess.Popen(
            [
                str(Path(sys.executable).with_name("celery")),
                "-A",
                "crm_project",
                "beat",
                "-l",
                "info",
                "-s",
                str(Path(self.dir.name) / "schedule"),
            ],
            cwd=processes.ROOT,
            env={**os.environ, "DATABASE_URL": processes.database_url(), "CELERY_QUEUE": QUEUE, **env},
            start_new_session=True,
            stdout=subprocess.DEVNULL,
            stderr=open(Path(self.dir.name) / "beat.log", "wb"),  # noqa: SIM115 - closed with the process
        )
        # Beat's start-up takes seconds on a loaded machine: wait for its first flow tick.
        _wait(
            lambda: b"flows.tasks.dispatch_flows" in (Path(self.dir.name) / "beat.log").read_bytes(),
            timeout=60,
        )

    def stop(self):
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, 15)
            self.proc.wait(timeout=15)
        self.dir.cleanup()


@pytest.fixture
def running(sink, live):
    """A worker and beat, started by the test (`start(batch=...)`)."""
    processes.purge_queue(QUEUE)
    sink.clear()
    sink.delay = 0.0
    workers = processes.CeleryWorkers(queue=QUEUE)
    beats = []

    class Running:
        def start_worker(self, batch=5):
            proc = workers.start(env=_env(sink, batch), concurrency=2)
            _wait_ready()
            return proc

        def start_beat(self, batch=5):
            beats.append(Beat(_env(sink, batch)))

        def kill(self, proc):
            workers.kill(proc)

    yield Running()
    for beat in beats:
        beat.stop()
    workers.stop_all()


def _wait_ready(timeout=60):
    """Until a worker answers a ping: a worker's start-up takes seconds on a loaded machine."""
    _wait(lambda: celery_app.control.ping(timeout=0.5), timeout=timeout, interval=0.2)


def _wait(predicate, timeout=40, interval=0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError("timed out waiting")


def _in_tenant(live, blocker, work):
    with blocker.unblock(), schema_context(live.schema_name):
        result = work()
    connection.set_schema_to_public()
    return result


def _client(live, blocker):
    with blocker.unblock():
        with schema_context(live.schema_name):
            user = get_user_model().objects.get(
                username=f"admin@{live.schema_name.replace('_', '-')}.localhost"
            )
        client = make_api_client(live, user)
    return client


def _post(client, blocker, path, data=None):
    with blocker.unblock():
        response = client.post(path, data or {}, format="json")
    connection.set_schema_to_public()
    return response


def _parsed(raw):
    return email.parser.BytesParser(policy=email.policy.default).parsebytes(raw)


@pytest.mark.django_db
def test_it_gives_the_workers_a_tenant_of_their_own(live):
    assert Tenant.objects.get(pk=live.pk).send_rate_per_second == 10000


def test_it_walks_the_abandoned_cart_flow_on_each_customers_clock(live, blocker, running, sink):
    tag = uuid.uuid4().hex[:6]

    def setup():
        first = EmailTemplate.objects.create(
            name="Cart",
            subject="Your cart, {{ customer.first_name }}",
            html_body="<html><body><p>{{ event.properties.items }} items for {{ event.properties.total }}</p>"
            '<a href="https://shop.example/cart">Cart</a></body></html>',
        )
        second = EmailTemplate.objects.create(
            name="Cart 2", subject="Last call", html_body="<p>Still there?</p>"
        )
        people = {
            name: Customer.objects.create(
                email=f"{name}-{tag}@example.com", first_name=name.title(), email_marketing=name != "carl"
            ).pk
            for name in ("anna", "bob", "carl")
        }
        return first.pk, second.pk, people

    first, second, people = _in_tenant(live, blocker, setup)
    client = _client(live, blocker)
    body = {
        "name": f"Cart {tag}",
        "trigger": {"type": "event", "name": "cart.abandoned"},
        "steps": [
            {"id": "wait", "type": "delay", "seconds": 2},
            {"id": "remind", "type": "email", "template": first},
            {
                "id": "order",
                "type": "wait_for",
                "event": "order_placed",
                "timeout": {"seconds": 6},
                "yes": "bought",
            },
            {"id": "again", "type": "email", "template": second},
            {"id": "bought", "type": "exit"},
        ],
        "frequency_cap_hours": 0,
        "from_email": "news@shop.example",
    }
    flow_id = _post(client, blocker, "/api/flows", body).json()["id"]
    assert _post(client, blocker, f"/api/flows/{flow_id}/activate").status_code == 200
    running.start_worker()
    running.start_beat()

    posted_at = time.monotonic()
    for name, pk in people.items():
        event = {
            "id": f"{tag}-{name}",
            "name": "cart.abandoned",
            "customer": pk,
            "properties": {"items": 3, "total": "59.80"},
        }
        assert _post(client, blocker, "/api/events", event).status_code == 202
    assert (
        _post(
            client, blocker, "/api/events", {**event, "id": f"{tag}-bob", "customer": people["bob"]}
        ).json()["stored"]
        is False
    )

    anna, bob = f"anna-{tag}@example.com", f"bob-{tag}@example.com"
    _wait(lambda: sink.by_address()[anna] == 1 and sink.by_address()[bob] == 1)
    assert time.monotonic() - posted_at < 2 + 15  # the delay, then within the 15-second promise
    order = {
        "external_id": f"o-{tag}",
        "customer": people["anna"],
        "number": "1",
        "status": "paid",
        "total": "59.80",
        "currency": "EUR",
    }
    assert _post(client, blocker, "/api/orders", order).status_code in (200, 201)
    _wait(lambda: sink.by_address()[bob] == 2, timeout=40)  # the wait's timeout, then the second email
    time.sleep(2)

    # Flow messages only: the order also brought Anna its (transactional) confirmation.
    received = Counter(
        rcpts[0] for rcpts, raw in sink.messages if _parsed(raw)["Message-ID"].startswith("<f.")
    )
    assert (received[anna], received[bob], received[f"carl-{tag}@example.com"]) == (1, 2, 0)
    first_mail = next(_parsed(raw) for rcpts, raw in sink.messages if rcpts == [anna])
    assert first_mail["Subject"] == "Your cart, Anna"
    assert "3 items for 59.80" in first_mail.get_body(("html",)).get_content()
    assert not first_mail.defects

    def state():
        runs = {run.customer_id: run for run in FlowRun.objects.filter(flow_id=flow_id)}
        carl_log = FlowStepLog.objects.select_related("recipient").get(
            run=runs[people["carl"]], step_id="remind"
        )
        return runs, carl_log

    runs, carl_log = _in_tenant(live, blocker, state)
    assert len(runs) == 3  # the duplicate event id made no second run
    assert runs[people["anna"]].status == "completed" and runs[people["bob"]].status == "completed"
    assert (carl_log.recipient.status, carl_log.recipient.error) == (
        "skipped",
        "the customer withdrew marketing consent",
    )


def test_every_due_step_runs_once_and_every_email_goes_out_once_when_the_worker_is_killed(
    live, blocker, running, sink
):
    n = 1000
    tag = uuid.uuid4().hex[:6]

    def setup():
        template = EmailTemplate.objects.create(
            name="Crash", subject="Hi {{ customer.first_name }}", html_body="<p>Hi</p>"
        )
        flow = services.flow_create(
            name=f"Crash {tag}",
            trigger={"type": "event", "name": "crash.test"},
            # Entering performs the delay; a second later the thousand runs are the dispatcher's.
            steps=[
                {"id": "pause", "type": "delay", "seconds": 1},
                {"id": "mail", "type": "email", "template": template.pk},
                {"id": "tag", "type": "tag", "add": ["crashed"]},
            ],
            frequency_cap_hours=0,
            from_email="news@shop.example",
        )
        services.flow_activate(flow=flow)
        customers = Customer.objects.bulk_create(
            [
                Customer(email=f"k{i}-{tag}@example.com", first_name=f"K{i}", email_marketing=True)
                for i in range(n)
            ]
        )
        return flow.pk, customers

    flow_id, customers = _in_tenant(live, blocker, setup)
    sink.delay = 0.01  # a batch of 20 takes ~0.2 s: the kill lands inside one
    worker = running.start_worker(batch=20)
    running.start_beat(batch=20)
    now = timezone.now()
    _in_tenant(
        live,
        blocker,
        lambda: services.events_record(
            events=[
                {
                    "event_id": f"{tag}-{c.pk}",
                    "name": "crash.test",
                    "customer_id": c.pk,
                    "occurred_at": now,
                    "properties": {},
                }
                for c in customers
            ]
        ),
    )
    _wait(lambda: sink.count() >= 150, interval=0.02)
    running.kill(worker)

    def in_flight():
        return set(
            CampaignRecipient.objects.filter(flow_step__flow_id=flow_id, status="sending").values_list(
                "email", flat=True
            )
        )

    held = _in_tenant(live, blocker, in_flight)
    before = sum(sink.by_address().values())
    assert 0 < before < n

    sink.delay = 0.0
    running.start_worker(batch=20)
    _wait(lambda: len(sink.by_address()) == n, timeout=90)
    time.sleep(2)

    received = sink.by_address()
    assert set(received) == {c.email for c in customers}  # nobody skipped
    duplicates = {address for address, count in received.items() if count > 1}
    assert duplicates <= held  # only the killed worker's in-flight batch went out twice
    ids = {}
    for rcpts, raw in sink.messages:
        ids.setdefault(rcpts[0], set()).add(_parsed(raw)["Message-ID"])
    assert all(len(mids) == 1 for mids in ids.values())  # ... with the same Message-ID

    def steps():
        return (
            FlowStepLog.objects.filter(flow_id=flow_id, step_id="mail").count(),
            FlowStepLog.objects.filter(flow_id=flow_id, step_id="tag").count(),
            set(FlowRun.objects.filter(flow_id=flow_id).values_list("status", flat=True)),
        )

    assert _in_tenant(live, blocker, steps) == (n, n, {"completed"})
