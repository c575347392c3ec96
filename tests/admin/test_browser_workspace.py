"""In a real browser: a marketer's workspace (dashboard, customers, tags), the refusals of the
marketer role, the admin's settings page, and user data shown as text everywhere."""

import re

import pytest
from playwright.sync_api import expect

from tests.admin.conftest import EVIL, screenshot
from tests.conftest import PASSWORD

# No django_db: the server commits what it does, so the checks read through `site.run` (autocommit).
pytestmark = pytest.mark.browser


@pytest.mark.django_db  # also makes pytest-django set up the test database when this module runs alone
def test_it_serves_a_committed_tenant_of_its_own_from_a_live_server(site):
    import http.client

    from tenancy.models import Tenant

    assert Tenant.objects.get(pk=site.tenant.pk).name == "Teashop Hungary"
    connection = http.client.HTTPConnection("127.0.0.1", site.processes.port, timeout=10)
    connection.request("GET", "/admin/login/", headers={"Host": f"{site.domain}:{site.processes.port}"})
    response = connection.getresponse()
    assert response.status == 200
    assert "Teashop Hungary" in response.read().decode()
    connection.close()


def test_it_logs_a_marketer_in_through_the_login_form(chromium, site):
    context = chromium.new_context(viewport={"width": 1440, "height": 900}, locale="en-US")
    page = context.new_page()
    try:
        page.goto(f"{site.url}/admin/")
        page.wait_for_url(re.compile(r"/admin/login/"))
        assert "Teashop Hungary" in page.title()
        page.fill("input[name=username]", site.marketer_email)
        page.fill("input[name=password]", "not-the-password")
        page.click("button[type=submit]")
        assert "correct username and password" in page.inner_text("body")
        screenshot(page, "login")

        page.fill("input[name=username]", site.marketer_email)
        page.fill("input[name=password]", PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_url(f"{site.url}/admin/")
        assert page.locator("#dashboard").count() == 1
    finally:
        context.close()


def test_it_opens_the_marketers_dashboard_with_the_tenants_name(marketer_page, site):
    page = marketer_page

    assert page.title() == "Dashboard | Teashop Hungary"
    assert "Welcome to Teashop Hungary" in page.inner_text("#dashboard")
    assert page.inner_text("#kpi-customers") == "11"
    assert page.inner_text("#kpi-consent") == "72.7%"
    sidebar = (
        page.inner_text("#nav-sidebar") if page.locator("#nav-sidebar").count() else page.inner_text("nav")
    )
    for entry in ("Customers", "Segments", "Templates", "Campaigns", "Campaign reports"):
        assert entry in sidebar
    assert "Users" not in sidebar
    assert "Settings" not in sidebar
    assert page.locator("canvas.chart").count() == 1
    assert page.errors == []


@pytest.mark.parametrize(
    "path", ["/admin/auth/user/", "/admin/auth/group/", "/admin/tenancy/tenant/settings/"]
)
def test_it_refuses_a_marketer_user_management_and_settings(marketer_page, site, path):
    response = marketer_page.goto(site.url + path)

    assert response.status == 403


def test_it_finds_a_customer_by_search_and_tags_them(marketer_page, site):
    from customers.models import Customer

    page = marketer_page
    page.click("text=Customers")
    page.wait_for_url(re.compile(r"/admin/customers/customer/"))
    page.fill("input[name=q]", "Kertész")
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r"\?q="))
    rows = page.locator("#result_list tbody tr")
    assert rows.count() == 1
    assert "zsofia.kertesz@example.com" in rows.first.inner_text()
    screenshot(page, "customers")

    rows.first.locator("input.action-select").check()
    page.select_option("select[name=action]", "add_tag")
    page.click("button[name=index], button[type=submit][title], #changelist-actions button[type=submit]")
    page.fill("#tag-name", "spring-2026")
    page.click("#tag-apply")

    page.wait_for_url(re.compile(r"/admin/customers/customer/"))
    assert "1 customers changed." in page.inner_text("body")
    tags = site.run(
        lambda: sorted(
            Customer.objects.get(email="zsofia.kertesz@example.com").tags.values_list("name", flat=True)
        )
    )
    assert tags == ["spring-2026"]


def test_it_shows_html_in_customer_data_as_text_everywhere(admin_page, site):
    from customers.models import Customer

    page = admin_page
    customer_id = site.run(lambda: Customer.objects.get(email="xss@example.com").pk)

    page.goto(site.url + "/admin/")
    expect(page.locator("#dashboard-new-customers")).to_contain_text(EVIL)

    page.goto(site.url + "/admin/customers/customer/?q=xss")
    expect(page.locator("#result_list")).to_contain_text(EVIL)

    page.goto(site.url + f"/admin/customers/customer/{customer_id}/change/")
    for field in ("first_name", "last_name", "city", "external_id"):
        assert page.input_value(f"#id_{field}") == EVIL
    screenshot(page, "customer-detail-escaped")

    # The composer's live preview, rendered for this customer: text in the subject and in the email.
    page.goto(site.url + "/admin/campaigns/campaign/add/")
    page.select_option("#id_template", label="Spring newsletter")
    page.fill("#campaign-preview-customer", "xss@example.com")
    expect(page.locator("#campaign-preview-subject")).to_have_text(f"Spring is here, {EVIL}")
    frame = page.frame_locator("#campaign-preview-frame")
    expect(frame.locator("h1")).to_have_text(f"Hello {EVIL}!")
    assert frame.locator("img").count() == 0

    # Nothing of the data became an element or ran anywhere.
    assert page.locator("img[src=x]").count() == 0
    assert page.dialogs.seen == []
    assert page.errors == []


def test_it_lets_an_admin_change_the_tenants_settings(admin_page, site):
    from tenancy.models import Tenant

    page = admin_page
    page.click("text=Settings")
    page.wait_for_url(re.compile(r"/admin/tenancy/tenant/settings/"))
    page.fill("input[name=send_rate_per_second]", "0")
    page.click("button[name=save]")
    assert "The settings were not saved" in page.inner_text("body")
    assert "greater than or equal to 1" in page.inner_text("body")
    assert site.run(lambda: Tenant.objects.get(pk=site.tenant.pk).send_rate_per_second) == 1000

    page.fill("input[name=send_rate_per_second]", "800")
    page.fill("textarea[name=postal_address]", "Fő utca 2, 1011 Budapest")
    page.click("button[name=save]")
    page.wait_for_url(re.compile(r"/admin/tenancy/tenant/settings/$"))
    assert "Settings saved" in page.inner_text("body")
    row = site.run(lambda: Tenant.objects.get(pk=site.tenant.pk))
    assert (row.send_rate_per_second, row.postal_address) == (800, "Fő utca 2, 1011 Budapest")
    screenshot(page, "tenant-settings")
    site.run(lambda: Tenant.objects.filter(pk=site.tenant.pk).update(send_rate_per_second=1000))
