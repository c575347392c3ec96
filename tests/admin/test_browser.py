"""In a real browser (Playwright driving Debian's chromium) against a live site: gunicorn, a real Celery
worker and a real SMTP sink, on a committed tenant of its own (see conftest.py and live.py).

A marketer logs in, finds a customer by search and tags them, builds a nested segment in the visual
builder and sees the live count change, composes a campaign from a template with its live preview,
sends a test, sends it, watches the progress reach 100% and opens the stats page with its charts.
The marketer is refused user management and the tenant settings; an admin edits the settings; HTML in
customer data shows as text everywhere. Screenshots go to var/screenshots/ (SCREENSHOTS_DIR=docs/screenshots refreshes the committed ones).
"""

import http.client
import re
from urllib.parse import urlsplit

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from campaigns.models import Campaign, CampaignRecipient
from customers.models import Customer
from segments.models import Segment
from tenancy.models import Tenant
from tests.admin.conftest import EVIL, screenshot
from tests.conftest import PASSWORD
from tracking.rollup import hits_rollup

# No django_db: the server commits what it does, so the checks read through `site.run` (autocommit).
pytestmark = pytest.mark.browser
DESKTOP_AGENT = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Safari/537.36"
)
# Marketable customers of the seed: 8; in Budapest: 4; in Budapest or above 50,000 spent: 6.
AUDIENCE = {
    "bence.nagy@example.com",
    "anna.kovacs@example.com",
    "laszlo.varga@example.com",
    "istvan.farkas@example.com",
    "peter.toth@example.com",
    "marton.molnar@example.com",
}


@pytest.mark.django_db  # also makes pytest-django set up the test database when this module runs alone
def test_it_serves_a_committed_tenant_of_its_own_from_a_live_server(site):
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
        expect(page.get_by_text("correct email and password")).to_be_visible()
        page.wait_for_load_state("networkidle")
        screenshot(page, "login")

        page.fill("input[name=username]", site.marketer_email)
        page.fill("input[name=password]", PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_url(f"{site.url}/admin/")
        assert page.locator("#dashboard").count() == 1
        site.logins[site.marketer_email] = context.storage_state()  # the next tests start logged in
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


def _hit(site, url):
    """GET a tracking link as a person's mail client would (no redirect followed: no outside network)."""
    parts = urlsplit(url)
    connection = http.client.HTTPConnection("127.0.0.1", site.processes.port, timeout=10)
    connection.request(
        "GET", parts.path, headers={"Host": parts.netloc, "User-Agent": DESKTOP_AGENT, "Accept": "*/*"}
    )
    response = connection.getresponse()
    response.read()
    connection.close()
    return response


def _build_segment(page, site):
    page.goto(site.url + "/admin/segments/segment/add/")
    page.fill("#id_name", "Budapest or big spenders")
    tree = page.locator("#segment-builder-tree")
    count = page.locator("#segment-live-count")

    tree.locator('.rb-group[data-path=""] > .rb-group-header .rb-add-rule').click()
    tree.locator('.rb-rule[data-path="rules[0]"] .rb-field').select_option("email_marketing")
    expect(count).to_have_text("8")

    tree.locator('.rb-group[data-path=""] > .rb-group-header .rb-add-group').click()
    group = tree.locator('.rb-group[data-path="rules[1]"]')
    group.locator("> .rb-group-header .rb-combinator").select_option("or")
    tree.locator('.rb-rule[data-path="rules[1].rules[0]"] .rb-field').select_option("city")
    tree.locator('.rb-rule[data-path="rules[1].rules[0]"] .rb-operator').select_option("=")
    tree.locator('.rb-rule[data-path="rules[1].rules[0]"] .rb-value').fill("budapest")
    expect(count).to_have_text("4")

    group.locator("> .rb-group-header .rb-add-rule").click()
    rule = tree.locator('.rb-rule[data-path="rules[1].rules[1]"]')
    rule.locator(".rb-field").select_option("total_spent")
    rule.locator(".rb-operator").select_option(">")
    expect(rule.locator(".rb-operator option:checked")).to_have_text("greater than")  # the catalogue's words
    rule.locator(".rb-value").fill("50000")
    expect(count).to_have_text("6")
    expect(page.locator("#segment-live-sample li")).to_have_count(6)
    page.evaluate(
        "() => window.scrollBy(0, document.getElementById('segment-rule-builder').getBoundingClientRect().top - 120)"
    )
    screenshot(page, "segment-builder")

    page.click("button[name=_save]")
    page.wait_for_url(re.compile(r"/admin/segments/segment/$"))


def _compose_campaign(page, site):
    page.goto(site.url + "/admin/campaigns/campaign/add/")
    page.fill("#id_name", "Spring launch")
    page.select_option("#id_template", label="Spring newsletter")
    page.select_option("#id_segment", label="Budapest or big spenders")
    expect(page.locator("#campaign-audience-count")).to_have_text("6")
    expect(page.locator("#campaign-preview-subject")).to_have_text("Spring is here, Alex")
    page.fill("#campaign-preview-customer", "bence.nagy@example.com")
    expect(page.locator("#campaign-preview-subject")).to_have_text("Spring is here, Bence")
    frame = page.frame_locator("#campaign-preview-frame")
    expect(frame.locator("h1")).to_have_text("Hello Bence!")
    expect(frame.locator("a", has_text="See the spring collection")).to_have_count(1)
    page.locator("#campaign-audience").scroll_into_view_if_needed()
    page.evaluate(
        "() => window.scrollBy(0, document.getElementById('campaign-audience').getBoundingClientRect().top - 80)"
    )
    screenshot(page, "campaign-composer")
    page.click("button[name=_continue]")
    page.wait_for_url(re.compile(r"/admin/campaigns/campaign/\d+/change/"))
    return int(re.search(r"/campaign/(\d+)/change/", page.url).group(1))


def test_it_takes_a_marketer_from_segment_to_sent_campaign_and_its_stats(marketer_page, site):
    page = marketer_page

    _build_segment(page, site)
    rules = site.run(lambda: Segment.objects.get(name="Budapest or big spenders").rules)
    assert rules["rules"][0] == {"field": "email_marketing", "operator": "=", "value": True}
    assert rules["rules"][1]["combinator"] == "or"
    assert [r["field"] for r in rules["rules"][1]["rules"]] == ["city", "total_spent"]

    campaign_id = _compose_campaign(page, site)

    # A test copy: marked as a test, to the given address only, counted nowhere.
    page.fill("#campaign-test-emails", "me@teashop.example")
    page.click("#campaign-test-submit")
    expect(page.locator("body")).to_contain_text("Test copy sent to me@teashop.example.")
    [(rcpts, test_copy)] = site.sink.wait_for(lambda rcpts, msg: rcpts == ["me@teashop.example"])
    assert test_copy["Subject"] == "[Test] Spring is here, Alex"
    assert site.run(lambda: Campaign.objects.get(pk=campaign_id).status) == "draft"

    # Send: a confirmation page with the checklist, then the worker delivers and progress reaches 100%.
    page.click("#action-send")
    page.wait_for_url(re.compile(r"/action/send/$"))
    checks = page.locator("#confirm-checklist tr")
    assert checks.count() >= 5
    assert page.locator('#confirm-checklist tr[data-ok="false"]').count() == 0
    expect(page.locator("#check-audience")).to_contain_text("6 recipients")
    screenshot(page, "campaign-confirm-send")
    page.click("#confirm-submit")
    page.wait_for_url(re.compile(rf"/admin/campaigns/campaign/{campaign_id}/change/$"))
    expect(page.locator("#campaign-status")).to_have_attribute("data-status", "sent", timeout=30_000)
    expect(page.locator("#campaign-progress-percent")).to_have_text("100.0%")
    screenshot(page, "campaign-sent")

    delivered = site.sink.wait_for(lambda rcpts, msg: msg["Subject"].startswith("Spring is here"))
    assert sorted(r for rcpts, _ in delivered for r in rcpts) == sorted(AUDIENCE)
    assert all(msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click" for _, msg in delivered)

    # Bence opens and clicks; the roll-up (a beat task in production) counts them.
    [(_, bence)] = [(r, m) for r, m in delivered if r == ["bence.nagy@example.com"]]
    html = bence.get_body(("html",)).get_content()
    pixel = re.search(r'src="([^"]*/t/o/[^"]+)"', html).group(1)
    click = re.search(r'href="([^"]*/t/c/[^"]+)"', html).group(1)
    assert _hit(site, pixel).status == 200
    assert _hit(site, click).status == 302
    site.run(hits_rollup)

    page.click("#campaign-stats-link")
    page.wait_for_url(re.compile(r"/stats/$"))
    expect(page.locator("canvas.chart")).to_have_count(1)
    body = page.inner_text("#content")
    assert "16.7%" in body  # 1 of 6 opened and clicked
    assert "https://shop.example/spring" in body
    screenshot(page, "campaign-stats", full_page=True)

    page.goto(site.url + "/admin/")
    row = page.locator(f'#dashboard-recent-campaigns tr[data-campaign="{campaign_id}"]')
    expect(row.locator('[data-rate="open"]')).to_have_text("16.7%")
    expect(row.locator('[data-rate="click"]')).to_have_text("16.7%")
    screenshot(page, "dashboard", full_page=True)
    assert page.dialogs.seen == []


def test_it_follows_a_sending_campaign_live_on_the_dashboard(marketer_page, site):
    """The dashboard's "Sending now" card refreshes itself until the campaign is done."""

    def start():
        # A campaign mid-send, its progress moved by hand: no task is queued for it, so the worker
        # leaves it alone and the test decides when each recipient is done.
        campaign = Campaign.objects.create(
            name="Autumn teas", subject="Autumn", status="sending", started_at=timezone.now()
        )
        for customer in Customer.objects.filter(email_marketing=True).order_by("id")[:4]:
            CampaignRecipient.objects.create(campaign=campaign, customer=customer, email=customer.email)
        return campaign.pk

    campaign_id = site.run(start)
    page = marketer_page
    page.goto(site.url + "/admin/")
    row = page.locator(f'#dashboard-sending .crm-sending-row[data-campaign="{campaign_id}"]')
    expect(row).to_have_attribute("data-percent", "0.0")
    expect(page.locator("#kpi-sending")).to_have_text("1")

    site.run(
        lambda: CampaignRecipient.objects.filter(
            pk__in=CampaignRecipient.objects.filter(campaign_id=campaign_id).order_by("id").values("pk")[:2]
        ).update(status="sent", sent_at=timezone.now())
    )
    expect(row).to_have_attribute("data-percent", "50.0")
    expect(row).to_contain_text("2 of 4 recipients done")
    page.locator("#dashboard-sending").scroll_into_view_if_needed()
    screenshot(page, "dashboard-sending")

    def finish():
        CampaignRecipient.objects.filter(campaign_id=campaign_id).update(
            status="sent", sent_at=timezone.now()
        )
        Campaign.objects.filter(pk=campaign_id).update(status="sent", sent_at=timezone.now())

    site.run(finish)
    expect(row).to_have_attribute("data-percent", "100.0")
    expect(row).to_have_attribute("data-finished", "1")
    expect(page.locator("#dashboard-sending")).to_have_attribute("data-active", "0")
    expect(page.locator("#kpi-sending")).to_have_text("0")
    assert page.errors == []


def test_it_shows_html_in_customer_data_as_text_everywhere(admin_page, site):
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
    page = admin_page
    page.click("text=Settings")
    page.wait_for_url(re.compile(r"/admin/tenancy/tenant/settings/"))
    page.fill("input[name=send_rate_per_second]", "0")
    page.click("button[name=save]")
    # The form comes back at the same URL: wait for the answer, not for a URL change.
    page.locator("text=The settings were not saved").wait_for()
    assert "The settings were not saved" in page.inner_text("body")
    assert "greater than or equal to 1" in page.inner_text("body")
    assert site.run(lambda: Tenant.objects.get(pk=site.tenant.pk).send_rate_per_second) == 1000

    page.fill("input[name=send_rate_per_second]", "800")
    page.fill("textarea[name=postal_address]", "Fő utca 2, 1011 Budapest")
    page.click("button[name=save]")
    page.wait_for_url(re.compile(r"/admin/tenancy/tenant/settings/$"))
    page.locator("text=Settings saved").wait_for()  # the redirect lands on the URL the form had
    assert "Settings saved" in page.inner_text("body")
    row = site.run(lambda: Tenant.objects.get(pk=site.tenant.pk))
    assert (row.send_rate_per_second, row.postal_address) == (800, "Fő utca 2, 1011 Budapest")
    screenshot(page, "tenant-settings")
    site.run(lambda: Tenant.objects.filter(pk=site.tenant.pk).update(send_rate_per_second=1000))
