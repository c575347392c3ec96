"""Test infrastructure (see TENANCY.md): a session-wide public tenant and two test tenants, created
once and kept with --reuse-db; each test runs in a rolled-back transaction inside tenant A."""

import os
import time
import uuid

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db import OperationalError, connection
from django.test import override_settings
from django.utils import timezone
from django_tenants.utils import schema_context
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from campaigns import senders
from campaigns.models import SenderDomain
from core.net import url_reachable
from crm_project.celery import app as celery_app
from events.models import InboxMessage, OutboxEvent, TransactionalEmail
from tenancy.models import Domain, Tenant
from tenancy.roles import MARKETER, roles_ensure
from tenancy.services import public_tenant_ensure, schema_for_slug, tenant_create
from tenancy.work import work_marks_forget
from tests.dns_server import TestDNSServer
from tracking import ratelimit

TENANT_A = {"slug": "tenant-a", "domain": "tenant-a.localhost", "name": "Tenant A"}
TENANT_B = {"slug": "tenant-b", "domain": "tenant-b.localhost", "name": "Tenant B"}
PASSWORD = "correct-horse-battery"
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


@pytest.fixture(scope="session")
def django_db_setup(django_db_setup, django_db_blocker):
    with django_db_blocker.unblock():
        public_tenant_ensure()
        for spec in (TENANT_A, TENANT_B):
            if not Tenant.objects.filter(schema_name=schema_for_slug(spec["slug"])).exists():
                tenant_create(
                    slug=spec["slug"],
                    domain=spec["domain"],
                    name=spec["name"],
                    admin_email=f"admin@{spec['domain']}",
                    admin_password=PASSWORD,
                )
        # Roles follow the code even when --reuse-db keeps tenants created by older code.
        for spec in (TENANT_A, TENANT_B):
            with schema_context(schema_for_slug(spec["slug"])):
                roles_ensure()
        connection.set_schema_to_public()


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    """A connection the server dropped between tests (a restart, an operator's terminate) is replaced
    before the next test's fixtures use it; one inside a test's transaction is the test's business."""
    if connection.connection is not None and not connection.in_atomic_block and not connection.is_usable():
        connection.close()


def _tenant(spec):
    return Tenant.objects.get(schema_name=schema_for_slug(spec["slug"]))


@pytest.fixture(scope="session", autouse=True)
def _no_dns_beyond_the_machine():
    """No test asks a real DNS: unless a test points DNS_NAMESERVERS at its own server (`dns_server`),
    look-ups go to a loopback port where nothing listens and end at once as a DNS error."""
    with override_settings(DNS_NAMESERVERS=["127.0.0.1:9"], DNS_TIMEOUT_SECONDS=1.0):
        yield


@pytest.fixture(autouse=True)
def _tracking_budgets_full():
    """The tracking links' budgets live in the process (tracking/ratelimit.py): every test starts
    with full ones, whatever the tests before it requested from the same address."""
    ratelimit.reset()
    # Likewise the hit path's memory of the work markers it wrote lately (tenancy.work.work_mark_soon).
    work_marks_forget()


def throwaway_tenant_create(prefix, *, name=None, admin_password=PASSWORD, **fields):
    """A tenant of one test module's own, committed, for work another process or connection must see:
    slug `<prefix>-<random>`, domain `<slug>.localhost`, an admin `admin@<domain>` (none when
    `admin_password` is None), `fields` set on its row. Call it outside a test's transaction
    (django_db_blocker.unblock() in a module fixture, or another thread) and drop it with
    throwaway_tenant_drop. Returns tenancy's CreatedTenant."""
    for attempt in (1, 2):
        if not connection.in_atomic_block:
            connection.close()  # a fresh connection: the server may have restarted since the last one
        slug = f"{prefix}-{uuid.uuid4().hex[:8]}"
        domain = f"{slug}.localhost"
        try:
            created = tenant_create(
                slug=slug,
                domain=domain,
                name=name,
                admin_email=f"admin@{domain}" if admin_password else None,
                admin_password=admin_password,
            )
            break
        except OperationalError:  # the server went away under us (a fault test's restart): once more
            if attempt == 2 or connection.in_atomic_block:
                raise
            time.sleep(2)
    if fields:
        Tenant.objects.filter(pk=created.tenant.pk).update(**fields)
        created.tenant.refresh_from_db()
    connection.set_schema_to_public()
    return created


def throwaway_tenant_drop(tenant):
    """Drop a throwaway tenant: its schema, its rows, and what it left in the public ledgers (left
    there, they would surprise another test in the next run on a kept --reuse-db database)."""
    schema = tenant.schema_name
    connection.set_schema_to_public()
    with connection.cursor() as cursor:
        cursor.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    for model in (InboxMessage, OutboxEvent, TransactionalEmail):
        model.objects.filter(tenant=schema).delete()
    Domain.objects.filter(tenant_id=tenant.pk).delete()
    Tenant.objects.filter(pk=tenant.pk).delete()


@pytest.fixture
def locmem_mail(settings):
    """Mail goes to Django's in-memory outbox (`django.core.mail.outbox`), with no mailto unsubscribe
    address whatever the environment says, so a message's headers are the same on every machine."""
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    settings.MAIL_UNSUBSCRIBE_MAILTO = ""


@pytest.fixture
def tenant(db):
    """Tenant A, active on the connection for the whole test."""
    connection.set_schema_to_public()
    current = _tenant(TENANT_A)
    connection.set_tenant(current)
    yield current
    connection.set_schema_to_public()


@pytest.fixture
def other_tenant(db, tenant):
    """Tenant B (the connection stays on tenant A; use `schema_context(other_tenant.schema_name)`)."""
    with schema_context("public"):
        return _tenant(TENANT_B)


@pytest.fixture
def admin_user(tenant):
    return get_user_model().objects.get(username=f"admin@{TENANT_A['domain']}")


@pytest.fixture
def marketer(tenant):
    user = get_user_model().objects.create_user(
        username="marketer@tenant-a.localhost",
        email="marketer@tenant-a.localhost",
        password=PASSWORD,
        is_staff=True,
    )
    user.groups.add(Group.objects.get(name=MARKETER))
    return user


def make_api_client(tenant_obj, user=None):
    client = APIClient(HTTP_HOST=tenant_obj.get_primary_domain().domain)
    if user is not None:
        with schema_context(tenant_obj.schema_name):
            token, _ = Token.objects.get_or_create(user=user)
        client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
        client.token = token.key
    return client


@pytest.fixture
def api(tenant, admin_user):
    """An API client on tenant A's host, authenticated with the tenant admin's token."""
    return make_api_client(tenant, admin_user)


@pytest.fixture
def anon_api(tenant):
    return make_api_client(tenant)


@pytest.fixture
def api_b(other_tenant):
    """An API client on tenant B's host, authenticated as tenant B's admin."""
    with schema_context(other_tenant.schema_name):
        user = get_user_model().objects.get(username=f"admin@{TENANT_B['domain']}")
    return make_api_client(other_tenant, user)


def require_service(name):
    """A test that needs a real server: in CI a missing one fails the test, elsewhere it skips it."""
    urls = {"redis": (settings.REDIS_URL, 6379), "rabbitmq": (settings.EVENTS_BROKER_URL, 5672)}
    url, port = urls[name]
    if not url or not url_reachable(url, port):
        message = f"{name} is not reachable at {url}"
        if IN_CI:
            pytest.fail(message + " (CI must run every test against the real service)")
        pytest.skip(message)


@pytest.fixture
def redis_service():
    require_service("redis")


@pytest.fixture
def rabbitmq_service():
    require_service("rabbitmq")


@pytest.fixture
def dns_server(settings):
    """A real DNS server on loopback (tests/dns_server.py); the code under test resolves through it."""
    server = TestDNSServer().start()
    settings.DNS_NAMESERVERS = [server.nameserver]
    settings.DNS_TIMEOUT_SECONDS = 2.0
    try:
        yield server
    finally:
        server.stop()


def verified_sender_domain(domain):
    """A sender domain of the current tenant, verified (as if its records had been found in DNS)."""
    sender_domain = SenderDomain.objects.filter(domain=domain).first() or senders.sender_domain_create(
        domain=domain
    )
    SenderDomain.objects.filter(pk=sender_domain.pk).update(status="verified", verified_at=timezone.now())
    sender_domain.refresh_from_db()
    return sender_domain


@pytest.fixture
def verified_domain(tenant):
    """shop.example, a verified sender domain of tenant A (the domain the campaign helpers send from)."""
    return verified_sender_domain("shop.example")


@pytest.fixture
def beat_in_process():
    """Beat's per-tenant tasks (tenancy/work.py) run in this process when a beat task sends them, one
    after another in their tenants' schemas, as a worker would run them; no broker involved.
    Celery's own eager mode: every task sent during the test runs in-process."""
    before = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = True
    try:
        yield
    finally:
        celery_app.conf.task_always_eager = before
