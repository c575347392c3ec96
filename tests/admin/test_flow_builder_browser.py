"""The flow builder in a real browser (Playwright driving Debian's chromium) against the live site:
a marketer builds the abandoned-cart flow from its recipe, changes the delay, activates it behind
the confirmation, and sees a customer's run appear in the run inspector. Screenshots go to
var/screenshots/ (SCREENSHOTS_DIR=docs/screenshots refreshes the committed ones)."""

import re

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from customers.models import Customer
from flows import engine, services
from flows.models import Flow
from tenancy.models import Tenant
from tests.admin.conftest import screenshot

pytestmark = pytest.mark.browser


@pytest.mark.django_db  # also makes pytest-django set up the test database when this module runs alone
def test_it_has_a_live_site_for_the_builder(site):
    assert Tenant.objects.filter(pk=site.tenant.pk).exists()


# No django_db: the server commits what it does, so the checks read through `site.run` (autocommit).
def test_it_builds_activates_and_inspects_the_abandoned_cart_flow(marketer_page, site):
    page = marketer_page
    page.goto(site.url + "/admin/flows/flow/")
    page.click("#flow-from-recipe")
    page.wait_for_url(re.compile(r"/admin/flows/flow/recipes/$"))
    screenshot(page, "flow-recipes")
    page.click("#recipe-abandoned_cart-use")
    page.wait_for_url(re.compile(r"/admin/flows/flow/\d+/builder/$"))
    flow_id = int(re.search(r"/flow/(\d+)/builder/", page.url).group(1))

    # The canvas: five steps, the wait_for drawn with its two paths.
    expect(page.locator("#flow-steps .step")).to_have_count(5)
    expect(page.locator("#step-order .path")).to_have_count(2)
    expect(page.locator("#trigger-type")).to_have_value("event")
    page.fill("#step-wait .step-amount", "30")
    page.select_option("#step-wait .step-unit", "minutes")
    page.click("#flow-save")
    expect(page.locator("#flow-save-result")).to_contain_text("Saved")
    assert site.run(lambda: Flow.objects.get(pk=flow_id).steps[0]) == {
        "id": "wait",
        "type": "delay",
        "minutes": 30,
    }
    screenshot(page, "flow-builder", full_page=True)

    page.click("#flow-activate")
    page.wait_for_url(re.compile(r"/action/activate/$"))
    page.click("#confirm-submit")
    page.wait_for_url(re.compile(r"/builder/$"))
    expect(page.locator("#flow-status")).to_have_attribute("data-status", "active")

    def abandon():
        anna = Customer.objects.get(email="anna.kovacs@example.com")
        services.events_record(
            events=[
                {
                    "event_id": "browser-cart-1",
                    "name": "cart.abandoned",
                    "customer_id": anna.pk,
                    "occurred_at": timezone.now(),
                    "properties": {"total": "19.90 EUR"},
                }
            ]
        )

    site.run(abandon)
    site.run(engine.flows_dispatch)  # the beat's tick: the run takes its delay step
    page.fill("#inspect-q", "anna.kovacs@example.com")
    page.click("#inspect-go")
    run = page.locator(".inspect-run")
    expect(run).to_have_count(1)
    expect(run).to_have_attribute("data-status", "active")
    expect(run).to_contain_text("next: remind")
    expect(page.locator('.inspect-step[data-step="wait"]')).to_have_attribute("data-status", "done")
    screenshot(page, "flow-run-inspector", full_page=True)
    page.reload()
    expect(page.locator("#step-remind .step-counts")).to_have_attribute("data-waiting", "1", timeout=15_000)
    # Revenue in the account's currency (HUF: whole forints), as everywhere in the admin.
    expect(page.locator("#step-remind .step-counts")).to_contain_text("revenue: 0 HUF")
    screenshot(page, "flow-builder-counts", full_page=True)
    assert page.dialogs.seen == []
