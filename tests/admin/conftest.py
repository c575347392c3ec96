"""Admin tests: Django's test client on tenant A's host, logged in as an admin or a marketer."""

import os
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db import connection
from django.test import Client
from django.utils import timezone
from django_tenants.utils import schema_context
from playwright.sync_api import expect, sync_playwright

from campaigns.models import EmailTemplate
from customers.models import Customer, CustomerTag, Tag
from tenancy.roles import MARKETER
from tests.admin.live import CHROMIUM, CHROMIUM_ARGS, SCREENSHOTS, Processes, browser_queue, purge_queue
from tests.conftest import (
    IN_CI,
    PASSWORD,
    require_service,
    throwaway_tenant_create,
    throwaway_tenant_drop,
    verified_sender_domain,
)
from tests.dns_server import TestDNSServer
from tests.processes import SmtpSink

# Playwright's sync API runs an event loop in this thread; Django's ORM calls of the fixtures are safe.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

HOST = "tenant-a.localhost"
HOST_B = "tenant-b.localhost"
PUBLIC_HOST = "localhost"


def host_client(user=None, *, host=HOST, enforce_csrf_checks=False):
    client = Client(HTTP_HOST=host, enforce_csrf_checks=enforce_csrf_checks)
    if user is not None:
        client.force_login(user)
    return client


@pytest.fixture(autouse=True)
def fast_password_hashing(settings):
    """Users made by these tests hash fast; existing PBKDF2 hashes still verify."""
    settings.PASSWORD_HASHERS = [
        "django.contrib.auth.hashers.MD5PasswordHasher",
        "django.contrib.auth.hashers.PBKDF2PasswordHasher",
    ]


@pytest.fixture
def admin_client_a(admin_user):
    return host_client(admin_user)


@pytest.fixture
def marketer_client(marketer):
    return host_client(marketer)


# --- the live site for browser tests -------------------------------------------------------------------
# Session-scoped and lazy: only browser tests start gunicorn, a Celery worker, an SMTP sink and chromium.

EVIL = '<script>alert("x")</script><img src=x onerror=alert(1)>'


class Site:
    """What the browser tests know about the live site."""

    def __init__(self, *, tenant, domain, processes, sink, blocker, dns):
        self.tenant = tenant
        self.domain = domain
        self.processes = processes
        self.sink = sink
        self.blocker = blocker
        self.dns = dns  # the DNS server the site resolves through (tests/dns_server.py)
        self.url = f"http://{domain}:{processes.port}"
        self.admin_email = f"admin@{domain}"
        self.marketer_email = f"marketer@{domain}"
        self.logins = {}  # email -> Playwright storage state of a logged-in session

    def run(self, function):
        """Run `function()` against the site's schema with committed effects (the server sees them)."""
        with self.blocker.unblock(), schema_context(self.tenant.schema_name):
            result = function()
        connection.set_schema_to_public()
        return result


def _seed(site_domain):
    """Customers, tags, a template and users of the browser tenant (committed)."""
    verified_sender_domain("teashop.example")  # the tenant's sender, news@teashop.example

    user = get_user_model().objects.create_user(
        username=f"marketer@{site_domain}", email=f"marketer@{site_domain}", password=PASSWORD, is_staff=True
    )
    user.groups.add(Group.objects.get(name=MARKETER))
    vip = Tag.objects.create(name="vip")
    Tag.objects.create(name="newsletter")
    people = [
        ("zsofia.kertesz@example.com", "Zsófia", "Kertész", "Szeged", True, "48000.00", 4),
        ("bence.nagy@example.com", "Bence", "Nagy", "Budapest", True, "125000.00", 9),
        ("anna.kovacs@example.com", "Anna", "Kovács", "Budapest", True, "8900.00", 1),
        ("peter.toth@example.com", "Péter", "Tóth", "Győr", True, "56000.00", 3),
        ("reka.szabo@example.com", "Réka", "Szabó", "Debrecen", False, "23000.00", 2),
        ("laszlo.varga@example.com", "László", "Varga", "Budapest", True, "310000.00", 15),
        ("judit.kiss@example.com", "Judit", "Kiss", "Pécs", True, "0.00", 0),
        ("marton.molnar@example.com", "Márton", "Molnár", "Szeged", True, "76500.00", 5),
        ("nora.nemeth@example.com", "Nóra", "Németh", "Wien", False, "12000.00", 1),
        ("istvan.farkas@example.com", "István", "Farkas", "Budapest", True, "45000.00", 2),
    ]
    customers = []
    for index, (email, first, last, city, consent, spent, orders) in enumerate(people):
        customers.append(
            Customer.objects.create(
                email=email,
                first_name=first,
                last_name=last,
                city=city,
                country="AT" if city == "Wien" else "HU",
                email_marketing=consent,
                total_spent=spent,
                order_count=orders,
                phone=f"+36 30 555 {index:04d}",
                created_at=timezone.now() - timedelta(days=(index * 7) % 29, hours=index),
            )
        )
    for customer in customers[1:6:2]:
        CustomerTag.objects.create(customer=customer, tag=vip)
    # HTML in every text field: it must show as text on every page.
    Customer.objects.create(
        email="xss@example.com",
        external_id=EVIL,
        first_name=EVIL,
        last_name=EVIL,
        phone=EVIL[:50],
        city=EVIL,
        country="",
        attributes={"note": EVIL},
        email_marketing=False,
    )
    EmailTemplate.objects.create(
        name="Spring newsletter",
        kind="marketing",
        subject="Spring is here, {{ customer.first_name|default:'friend' }}",
        html_body=(
            "<html><body><h1>Hello {{ customer.first_name|default:'there' }}!</h1>"
            "<p>Our spring teas have arrived.</p>"
            '<p><a href="https://shop.example/spring">See the spring collection</a></p>'
            '<p><a href="{{ unsubscribe_url }}">Unsubscribe</a></p></body></html>'
        ),
        text_body="Hello {{ customer.first_name|default:'there' }}! Spring teas: https://shop.example/spring\n"
        "Unsubscribe: {{ unsubscribe_url }}",
    )


# Module scope: the site (and its tenant schema) goes away as soon as the browser tests are done, so
# the rest of the suite never meets an extra serving tenant.
@pytest.fixture(scope="module")
def site(django_db_setup, django_db_blocker):
    """The browser tenant with its seed data, gunicorn, a Celery worker and an SMTP sink."""
    require_service("redis")

    with django_db_blocker.unblock():
        created = throwaway_tenant_create(
            "browser",
            name="Teashop Hungary",
            from_name="Teashop",
            from_email="news@teashop.example",
            postal_address="Fő utca 1, 1011 Budapest",
            send_rate_per_second=1000,
            machine_open_window_seconds=0,
        )
        domain = created.domain.domain
        with schema_context(created.tenant.schema_name):
            _seed(domain)
        connection.set_schema_to_public()
        purge_queue(browser_queue())

    sink = SmtpSink()
    sink.start()
    dns = TestDNSServer().start()
    processes = Processes(sink=sink, queue=browser_queue(), extra_env={"DNS_NAMESERVERS": dns.nameserver})
    try:
        processes.start()
        yield Site(
            tenant=created.tenant,
            domain=domain,
            processes=processes,
            sink=sink,
            blocker=django_db_blocker,
            dns=dns,
        )
    finally:
        processes.stop()
        sink.stop()
        dns.stop()
        with django_db_blocker.unblock():
            throwaway_tenant_drop(created.tenant)


@pytest.fixture(scope="module")
def chromium():
    # A shared 2-core machine can be slow: wait up to 15 s for what a page should come to show.
    expect.set_options(timeout=15_000)

    if not os.path.exists(CHROMIUM):
        message = f"chromium is missing at {CHROMIUM} (make test installs Debian's chromium package)"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


class Dialogs:
    """Every JavaScript dialog a page opens (an injected alert() would land here)."""

    def __init__(self):
        self.seen = []

    def __call__(self, dialog):
        self.seen.append(dialog.message)
        dialog.dismiss()


def _login(page, site, email):
    page.goto(f"{site.url}/admin/login/?next=/admin/")
    page.fill("input[name=username]", email)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit], input[type=submit]")
    page.wait_for_url(f"{site.url}/admin/")


def _page(chromium, site, email):
    """A fresh browser context logged in as `email` (through the login form once per session, then
    with the saved session cookie: a password check costs a second on a busy machine)."""
    saved = site.logins.get(email)
    context = chromium.new_context(
        viewport={"width": 1440, "height": 900}, locale="en-US", storage_state=saved
    )
    context.set_default_timeout(15_000)
    page = context.new_page()
    page.dialogs = Dialogs()
    page.on("dialog", page.dialogs)
    page.errors = []
    page.on("pageerror", lambda error: page.errors.append(str(error)))
    if saved is None:
        _login(page, site, email)
        site.logins[email] = context.storage_state()
    else:
        page.goto(f"{site.url}/admin/")
    return page


@pytest.fixture
def marketer_page(chromium, site):
    page = _page(chromium, site, site.marketer_email)
    yield page
    page.context.close()


@pytest.fixture
def admin_page(chromium, site):
    page = _page(chromium, site, site.admin_email)
    yield page
    page.context.close()


def screenshot(page, name, *, full_page=False):
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=full_page)
