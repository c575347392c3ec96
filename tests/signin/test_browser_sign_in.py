"""Signing in end to end in a real browser (Playwright driving Debian's chromium) against a live
server (gunicorn, tests/admin/live.py) and the real OpenID Connect provider on loopback
(tests/signin/oidc_provider.py): two tenants of their own, committed.

- A marketer of tenant A signs in with the tenant's provider and with Google and lands in A's admin
  with the Marketer role (no user management).
- A user of tenant B who signs in at tenant A's host is refused; nobody is signed in.
- With SSO required, password sign-in is refused except for the break-glass admin; the provider
  still signs the marketer in; the marketer's API token keeps working.
"""

import http.client
import json

import pytest
from allauth.socialaccount.models import SocialAccount
from django.contrib.auth import get_user_model
from django.db import connection
from django_tenants.utils import schema_context
from playwright.sync_api import expect
from rest_framework.authtoken.models import Token

from signin.providers import login_buttons
from tenancy.models import Tenant
from tenancy.roles import MARKETER, user_role_assign
from tenancy.tenant_settings import tenant_settings_update
from tests.admin.conftest import chromium, screenshot  # noqa: F401  (fixture)
from tests.admin.live import Processes, browser_queue, purge_queue
from tests.conftest import PASSWORD, require_service, throwaway_tenant_create, throwaway_tenant_drop
from tests.processes import SmtpSink
from tests.signin.oidc_provider import OIDCProvider

pytestmark = pytest.mark.browser


@pytest.mark.django_db  # also makes pytest-django set up the test database when this module runs alone
def test_the_live_tenants_offer_their_providers(sso_site):
    tenant_a = Tenant.objects.get(pk=sso_site.tenants["a"][0].pk)
    tenant_b = Tenant.objects.get(pk=sso_site.tenants["b"][0].pk)
    assert [button["id"] for button in login_buttons(tenant_a)] == ["google", "oidc"]
    assert login_buttons(tenant_b) == []


class Live:
    def __init__(self, provider, processes, tenants, blocker):
        self.provider = provider
        self.processes = processes
        self.tenants = tenants  # slug -> (tenant, domain)
        self.blocker = blocker

    def url(self, slug, path=""):
        return f"http://{self.tenants[slug][1]}:{self.processes.port}{path}"

    def run(self, slug, function):
        with self.blocker.unblock(), schema_context(self.tenants[slug][0].schema_name):
            result = function()
        connection.set_schema_to_public()
        return result

    def settings(self, slug, **changes):
        def update():
            tenant_settings_update(tenant=Tenant.objects.get(pk=self.tenants[slug][0].pk), changes=changes)

        self.run(slug, update)


def _make_user(email, role):
    user = get_user_model().objects.create_user(email, email, PASSWORD)
    user_role_assign(user=user, role=role)
    return user


@pytest.fixture(scope="module")
def sso_site(django_db_setup, django_db_blocker):
    """Two committed tenants with users, the OIDC provider, gunicorn (and a worker) on loopback."""
    require_service("redis")

    provider = OIDCProvider().start()
    provider.add_client("crm-a", "secret-a")
    provider.add_client("google-a", "google-secret-a")
    tenants = {}
    with django_db_blocker.unblock():
        for slug in ("a", "b"):
            created = throwaway_tenant_create(f"sso{slug}", name=f"Shop {slug.upper()}")
            domain = created.domain.domain
            tenants[slug] = (created.tenant, domain)
            with schema_context(created.tenant.schema_name):
                _make_user(f"marketer@{domain}", MARKETER)
            connection.set_schema_to_public()
        purge_queue(browser_queue())
    sink = SmtpSink()
    sink.start()
    processes = Processes(sink=sink, queue=browser_queue())
    processes.env["SSO_GOOGLE_ISSUER"] = provider.issuer
    site = Live(provider, processes, tenants, django_db_blocker)
    try:
        processes.start()
        a_domain = tenants["a"][1]
        site.settings(
            "a",
            sso_oidc_enabled=True,
            sso_oidc_name="Shop IdP",
            sso_oidc_issuer=provider.issuer,
            sso_oidc_client_id="crm-a",
            sso_oidc_client_secret="secret-a",
            sso_google_enabled=True,
            sso_google_client_id="google-a",
            sso_google_client_secret="google-secret-a",
        )
        provider.add_account(f"marketer@{a_domain}", name="Mara Keter")
        provider.add_account(f"marketer@{tenants['b'][1]}", name="Bob Other")
        yield site
    finally:
        processes.stop()
        sink.stop()
        provider.stop()
        with django_db_blocker.unblock():
            for tenant, _domain in tenants.values():
                throwaway_tenant_drop(tenant)


@pytest.fixture
def page(chromium, sso_site):  # noqa: F811
    context = chromium.new_context(viewport={"width": 1280, "height": 900}, locale="en-US")
    context.set_default_timeout(20_000)
    page = context.new_page()
    yield page
    context.close()


def _sign_in_with(page, site, slug, button, email):
    page.goto(site.url(slug, "/admin/login/?next=/admin/"))
    page.click(f"#sso-{button}")
    page.wait_for_url(f"{site.provider.issuer}/authorize*")
    page.click(f"button[data-email='{email}']")


def test_it_signs_a_marketer_into_the_tenants_admin_with_their_role(page, sso_site):
    domain = sso_site.tenants["a"][1]
    email = f"marketer@{domain}"

    _sign_in_with(page, sso_site, "a", "oidc", email)

    page.wait_for_url(sso_site.url("a", "/admin/"))
    expect(page.locator("body")).to_contain_text("Shop A")
    screenshot(page, "sso-signed-in")
    denied = page.goto(sso_site.url("a", "/admin/auth/user/"))
    assert denied.status == 403  # a Marketer: no user management

    accounts = sso_site.run(
        "a", lambda: list(SocialAccount.objects.values_list("user__username", "provider"))
    )
    assert (email, "oidc") in accounts


def test_it_signs_in_with_google(page, sso_site):
    email = f"marketer@{sso_site.tenants['a'][1]}"

    _sign_in_with(page, sso_site, "a", "google", email)

    page.wait_for_url(sso_site.url("a", "/admin/"))
    expect(page.locator("body")).to_contain_text("Shop A")


def test_it_refuses_a_user_of_another_tenant(page, sso_site):
    stranger = f"marketer@{sso_site.tenants['b'][1]}"

    _sign_in_with(page, sso_site, "a", "oidc", stranger)

    page.wait_for_url(sso_site.url("a", "/admin/login/"))
    expect(page.locator("body")).to_contain_text(f"{stranger} is not a user of Shop A")
    page.goto(sso_site.url("a", "/admin/"))
    page.wait_for_url(sso_site.url("a", "/admin/login/?next=/admin/"))

    assert not sso_site.run("a", lambda: get_user_model().objects.filter(username=stranger).exists())


def test_sso_required_blocks_password_login_except_for_break_glass_admins(page, sso_site):
    domain = sso_site.tenants["a"][1]
    marketer, admin = f"marketer@{domain}", f"admin@{domain}"

    token = sso_site.run(
        "a", lambda: Token.objects.get_or_create(user=get_user_model().objects.get(username=marketer))[0].key
    )
    sso_site.settings("a", sso_required=True, sso_break_glass=admin)
    try:
        page.goto(sso_site.url("a", "/admin/login/?next=/admin/"))
        expect(page.locator("#sso-required-note")).to_be_visible()
        expect(page.locator("#sso-google")).to_be_visible()
        screenshot(page, "sso-login")
        page.fill("input[name=username]", marketer)
        page.fill("input[name=password]", PASSWORD)
        page.click("#login-form button[type=submit]")
        expect(page.locator("body")).to_contain_text("This account signs in with single sign-on")

        page.fill("input[name=username]", admin)
        page.fill("input[name=password]", PASSWORD)
        page.click("#login-form button[type=submit]")
        page.wait_for_url(sso_site.url("a", "/admin/"))
        page.context.clear_cookies()

        _sign_in_with(page, sso_site, "a", "oidc", marketer)
        page.wait_for_url(sso_site.url("a", "/admin/"))

        api = http.client.HTTPConnection("127.0.0.1", sso_site.processes.port, timeout=20)
        api.request("GET", "/api/customers", headers={"Host": domain, "Authorization": f"Token {token}"})
        response = api.getresponse()
        assert response.status == 200
        assert "results" in json.loads(response.read())
    finally:
        sso_site.settings("a", sso_required=False)
