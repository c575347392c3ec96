"""A new account's first visit, in a real browser against the live site (see conftest.py and live.py):
the dashboard's "Getting started" checklist puts the sender first, each step links to where it is
done and ticks off from the account's data, the currency is set beside the time zone and then used
for money, and the checklist goes away for the account when dismissed."""

import pytest
from django.db import connection
from django_tenants.utils import schema_context
from playwright.sync_api import expect

from customers.models import Customer
from tests.admin.conftest import screenshot
from tests.conftest import PASSWORD, throwaway_tenant_create, throwaway_tenant_drop, verified_sender_domain

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def fresh(site, django_db_blocker):
    """A second account served by the same live site: just created, no sender, no data."""
    with django_db_blocker.unblock():
        created = throwaway_tenant_create("fresh", name="Fresh Teas")
    connection.set_schema_to_public()
    yield created
    with django_db_blocker.unblock():
        throwaway_tenant_drop(created.tenant)


def _run(site, tenant, function):
    with site.blocker.unblock(), schema_context(tenant.schema_name):
        result = function()
    connection.set_schema_to_public()
    return result


def _steps_done(page):
    return {
        key: page.locator(f"#onboarding-step-{key}").get_attribute("data-done") == "1"
        for key in ("sender", "domain", "settings", "customers", "segment", "test", "campaign")
    }


def test_it_walks_a_new_account_through_its_first_steps_sender_first(chromium, site, fresh):
    url = f"http://{fresh.domain.domain}:{site.processes.port}"
    context = chromium.new_context(viewport={"width": 1440, "height": 900}, locale="en-US")
    page = context.new_page()
    errors = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    try:
        page.goto(f"{url}/admin/login/?next=/admin/")
        page.fill("input[name=username]", f"admin@{fresh.domain.domain}")
        page.fill("input[name=password]", PASSWORD)
        page.click("button[type=submit], input[type=submit]")
        page.wait_for_url(f"{url}/admin/")

        panel = page.locator("#onboarding")
        expect(panel).to_be_visible()
        expect(page.locator("#onboarding-progress")).to_have_text("0 of 7 done")
        first = panel.locator("li").first
        expect(first).to_have_attribute("id", "onboarding-step-sender")
        expect(first).to_contain_text("Set your sender")
        screenshot(page, "onboarding-1-new-account")

        # The sender domain is verified (its DNS records found), and a customer arrives: both tick off.
        _run(site, fresh.tenant, lambda: verified_sender_domain("freshteas.example"))
        _run(
            site, fresh.tenant, lambda: Customer.objects.create(email="ann@example.com", total_spent=1234567)
        )
        page.reload()
        assert _steps_done(page) == {
            "sender": False,
            "domain": True,
            "settings": False,
            "customers": True,
            "segment": False,
            "test": False,
            "campaign": False,
        }

        # The sender step leads to the settings; the currency sits beside the time zone.
        page.locator("#onboarding-step-sender a.onboarding-link").click()
        page.wait_for_url(f"{url}/admin/tenancy/tenant/settings/")
        page.fill("input[name=from_name]", "Fresh Teas")
        page.fill("input[name=from_email]", "hello@freshteas.example")
        page.select_option("select[name=currency]", "EUR")
        page.click("#tenant-settings-form button[name=save]")
        page.wait_for_url(f"{url}/admin/tenancy/tenant/settings/")
        expect(page.locator("select[name=currency]")).to_have_value("EUR")

        page.goto(f"{url}/admin/")
        expect(page.locator("#onboarding-progress")).to_have_text("4 of 7 done")
        assert _steps_done(page)["sender"] and _steps_done(page)["settings"]
        expect(page.locator("#onboarding-step-segment a.onboarding-link")).to_have_attribute(
            "href", "/admin/segments/segment/add/"
        )
        screenshot(page, "onboarding-2-sender-set")

        # Money in the account's currency with thousands separators.
        page.goto(f"{url}/admin/customers/customer/")
        expect(page.locator(".crm-money").first).to_have_text("1,234,567.00 EUR")

        # Dismissed, it is gone for the account (another visit, another day).
        page.goto(f"{url}/admin/")
        page.click("#onboarding-dismiss")
        page.wait_for_url(f"{url}/admin/")
        expect(page.locator("#onboarding")).to_have_count(0)
        page.reload()
        expect(page.locator("#onboarding")).to_have_count(0)
        expect(page.locator("#kpi-customers")).to_be_visible()
        assert errors == []
    finally:
        context.close()
