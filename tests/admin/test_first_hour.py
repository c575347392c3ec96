"""The marketer's first hour, in a real browser against the live site (see conftest.py and live.py).

One test per stumble a new marketer met, worst first: the sender shown with where it comes from, times
in the tenant's zone with a real picker and a default that works, blockers that block, errors in the
words of the form, preview and test send beside the content, the campaign page's buttons, the dashboard,
the favicon and the login label. Each failed on the admin before these fixes.
"""

import http.client
import re
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from campaigns.models import Campaign, CampaignRecipient, EmailTemplate
from customers.models import Customer, Interaction
from segments.models import Segment
from tenancy.models import Tenant
from tests.admin.conftest import screenshot
from tests.conftest import PASSWORD

pytestmark = pytest.mark.browser
BUDAPEST = "Europe/Budapest"


def _segment(site, name="Budapest", city="Budapest"):
    def create():
        rules = {"combinator": "and", "rules": [{"field": "city", "operator": "=", "value": city}]}
        return Segment.objects.get_or_create(name=name, defaults={"rules": rules})[0].pk

    return site.run(create)


def _campaign(site, name, *, segment_id=None, **fields):
    def create():
        template = EmailTemplate.objects.get(name="Spring newsletter")
        return Campaign.objects.create(name=name, template=template, segment_id=segment_id, **fields).pk

    return site.run(create)


def _status(site, campaign_id):
    return site.run(lambda: Campaign.objects.values_list("status", "scheduled_at").get(pk=campaign_id))


def _set_time_zone(site, name):
    site.run(lambda: Tenant.objects.filter(pk=site.tenant.pk).update(time_zone=name))


@pytest.fixture
def budapest(site):
    """The tenant on Budapest time for one test (UTC+1 in winter, +2 in summer), back to UTC after."""
    _set_time_zone(site, BUDAPEST)
    yield
    _set_time_zone(site, "UTC")


@pytest.mark.django_db  # makes pytest-django set up the test database when this module runs alone
def test_it_shows_the_effective_sender_and_where_it_comes_from(marketer_page, site):
    page = marketer_page
    page.goto(site.url + "/admin/campaigns/campaign/add/")

    sender = page.locator("#campaign-effective-from")
    expect(sender).to_have_text("Teashop <news@teashop.example>")
    expect(sender).to_have_attribute("data-source", "settings")
    expect(page.locator("#campaign-effective-from-source")).to_contain_text("from the account's settings")
    assert page.get_attribute("#id_from_email", "placeholder") == "news@teashop.example"
    assert page.get_attribute("#id_from_name", "placeholder") == "Teashop"


def test_it_disables_send_while_a_blocker_is_left_and_links_to_the_field(marketer_page, site):
    campaign_id = _campaign(site, "No audience yet")
    page = marketer_page
    page.goto(site.url + f"/admin/campaigns/campaign/{campaign_id}/action/send/")

    expect(page.locator("#check-segment")).to_have_attribute("data-ok", "false")
    expect(page.locator("#check-segment")).to_have_attribute("data-blocking", "true")
    expect(page.locator("#check-test")).to_have_attribute("data-blocking", "false")  # advice only
    expect(page.locator("#confirm-submit")).to_be_disabled()
    expect(page.locator("#confirm-blocked")).to_contain_text("fix")
    screenshot(page, "campaign-confirm-blocked")

    page.locator("#check-segment a.check-fix").click()
    page.wait_for_url(re.compile(rf"/campaign/{campaign_id}/change/#id_segment$"))
    expect(page.locator("#id_segment")).to_be_visible()
    assert _status(site, campaign_id)[0] == "draft"


def test_it_schedules_with_the_default_time_it_offers(marketer_page, site, budapest):
    campaign_id = _campaign(site, "Weekend teas", segment_id=_segment(site))
    page = marketer_page
    page.goto(site.url + f"/admin/campaigns/campaign/{campaign_id}/action/schedule/")

    field = page.locator("#schedule-at")
    assert field.get_attribute("type") == "datetime-local"
    expect(page.locator("label[for=schedule-at]")).to_have_text(f"Send at ({BUDAPEST})")
    offered = datetime.fromisoformat(field.input_value()).replace(tzinfo=ZoneInfo(BUDAPEST))
    now = datetime.now(UTC)
    assert offered.minute % 15 == 0
    assert timedelta(hours=1) <= offered - now <= timedelta(hours=1, minutes=16)
    screenshot(page, "campaign-schedule")

    page.click("#confirm-submit")
    page.wait_for_url(re.compile(rf"/campaign/{campaign_id}/change/$"))
    expect(page.locator("body")).to_contain_text(
        f"Scheduled for {offered.strftime('%Y-%m-%d %H:%M')} {BUDAPEST}"
    )
    status, scheduled_at = _status(site, campaign_id)
    assert status == "scheduled"
    assert scheduled_at == offered


def test_it_shows_and_accepts_times_in_the_tenants_time_zone(marketer_page, site, budapest):
    # 08:00 UTC on a winter day is 09:00 in Budapest; 10:00 on a summer day there is 08:00 UTC.
    campaign_id = _campaign(
        site, "Time zones", segment_id=_segment(site), scheduled_at=datetime(2030, 1, 31, 8, 0, tzinfo=UTC)
    )
    page = marketer_page
    page.goto(site.url + f"/admin/campaigns/campaign/{campaign_id}/change/")

    field = page.locator("#id_scheduled_at")
    assert field.get_attribute("type") == "datetime-local"
    assert field.input_value() == "2030-01-31T09:00"
    expect(page.locator("#campaign_form")).to_contain_text(f"In {BUDAPEST}")

    field.fill("2030-06-01T10:00")
    page.click("button[name=_continue]")
    page.wait_for_url(re.compile(rf"/campaign/{campaign_id}/change/$"))
    assert _status(site, campaign_id)[1] == datetime(2030, 6, 1, 8, 0, tzinfo=UTC)
    assert page.locator("#id_scheduled_at").input_value() == "2030-06-01T10:00"

    # The list shows it in Budapest time too.
    page.goto(site.url + "/admin/campaigns/campaign/?q=Time+zones")
    expect(page.locator("#result_list")).to_contain_text("2030-06-01 10:00")


def test_it_speaks_the_fields_label_in_errors(marketer_page, site):
    campaign_id = _campaign(site, "Too late", segment_id=_segment(site))
    page = marketer_page
    page.goto(site.url + f"/admin/campaigns/campaign/{campaign_id}/action/schedule/")
    page.fill("#schedule-at", "2001-01-01T09:00")
    page.evaluate("() => document.getElementById('schedule-at').removeAttribute('min')")
    page.click("#confirm-submit")
    page.wait_for_url(re.compile(r"/action/schedule/$"))

    body = page.inner_text("body")
    assert "Send at: Must be in the future" in body
    assert "scheduled_at" not in body

    # The same words in the form: a past time typed into the campaign's own field.
    page.goto(site.url + f"/admin/campaigns/campaign/{campaign_id}/change/")
    page.fill("#id_scheduled_at", "2001-01-01T09:00")
    page.click("button[name=_continue]")
    expect(page.locator(".field-scheduled_at, .errorlist").first).to_contain_text("Must be in the future")
    assert "scheduled_at" not in page.inner_text("#content")
    assert _status(site, campaign_id)[0] == "draft"


def test_it_puts_preview_and_test_send_beside_the_content_with_a_customer_picker(marketer_page, site):
    campaign_id = _campaign(site, "Beside", segment_id=_segment(site))
    page = marketer_page
    page.goto(site.url + f"/admin/campaigns/campaign/{campaign_id}/change/")

    grid = page.locator("#campaign-compose-grid")
    expect(grid.locator("#campaign-preview")).to_have_count(1)
    expect(grid.locator("#campaign-test-emails")).to_have_count(1)
    content = grid.locator("fieldset").first.bounding_box()
    preview = page.locator("#campaign-preview").bounding_box()
    assert preview["x"] > content["x"] + content["width"] / 2  # to the right of the content
    assert abs(preview["y"] - content["y"]) < 200  # not below it

    page.fill("#campaign-preview-customer", "Bence")
    expect(page.locator("#campaign-preview-subject")).to_have_text("Spring is here, Bence")
    expect(page.locator("#campaign-preview-customers option")).to_have_count(1)
    screenshot(page, "campaign-preview-beside")

    page.fill("#campaign-test-emails", "me@teashop.example")
    page.click("#campaign-test-submit")
    expect(page.locator("body")).to_contain_text("Test copy sent to me@teashop.example.")


def test_it_names_cancel_for_what_it_does_and_shows_a_sent_campaign_read_only(marketer_page, site):
    draft_id = _campaign(site, "Cancel me", segment_id=_segment(site))
    page = marketer_page
    page.goto(site.url + f"/admin/campaigns/campaign/{draft_id}/change/")
    cancel = page.locator("#action-cancel")
    expect(cancel).to_have_text("Cancel campaign…")
    assert page.locator("#campaign-actions #action-cancel").count() == 0  # not beside "Send now"

    page.click("#action-send")
    page.click("#confirm-submit")
    page.wait_for_url(re.compile(rf"/campaign/{draft_id}/change/$"))
    expect(page.locator("body")).to_contain_text("Queued: sending starts in a moment")
    assert "Send now: done." not in page.inner_text("body")

    # The worker sends it; the page reloads itself when it is done.
    expect(page.locator("#campaign-status")).to_have_attribute("data-status", "sent", timeout=30_000)
    page.wait_for_load_state()
    page.goto(site.url + f"/admin/campaigns/campaign/{draft_id}/change/")
    assert site.run(lambda: Campaign.objects.get(pk=draft_id).status) == "sent"
    assert page.locator("button[name=_save], button[name=_continue]").count() == 0
    assert page.locator("#id_subject").count() == 0


def test_it_answers_the_favicon_and_asks_for_an_email_at_login(chromium, site):
    connection = http.client.HTTPConnection("127.0.0.1", site.processes.port, timeout=10)
    connection.request("GET", "/favicon.ico", headers={"Host": f"{site.domain}:{site.processes.port}"})
    response = connection.getresponse()
    assert response.status == 200
    assert response.getheader("Content-Type") == "image/svg+xml"
    response.read()
    connection.close()

    context = chromium.new_context(viewport={"width": 1440, "height": 900}, locale="en-US")
    page = context.new_page()
    try:
        page.goto(f"{site.url}/admin/login/")
        expect(page.locator("label[for=id_username]")).to_contain_text("Email")
        assert "Username" not in page.inner_text("form")
        assert page.locator("link[rel=icon]").count() >= 1
    finally:
        context.close()


def test_it_does_not_turn_a_handful_of_customers_into_a_percentage(marketer_page, site):
    page = marketer_page
    page.goto(site.url + "/admin/")
    expect(page.locator("#kpi-growth")).to_be_visible()
    assert page.locator("#kpi-growth-percent").count() == 0
    assert "%" not in page.inner_text("#kpi-growth")


def test_it_shows_the_customer_lists_filters_as_chips_and_money_and_dates_on_one_line(marketer_page, site):
    page = marketer_page
    page.goto(site.url + "/admin/customers/customer/?city=Budapest&total_spent_from=20+000")

    # "20 000" is read as 20000 and said so, not silently dropped.
    expect(page.locator("body")).to_contain_text("Read the amount as 20,000 HUF.")
    assert "total_spent_from=20000" in page.url
    chips = page.locator("#filter-chips .filter-chip")
    expect(chips).to_have_count(2)
    expect(page.locator('.filter-chip[data-parameter="city"]')).to_contain_text("City: Budapest")
    expect(page.locator('.filter-chip[data-parameter="total_spent_from"]')).to_contain_text("20,000 HUF")
    rows = page.locator("#result_list tbody tr")
    expect(rows).to_have_count(3)  # Bence, László, István (Anna spent 8,900)
    row = page.locator("#result_list tbody tr", has_text="bence.nagy@example.com")
    expect(row.locator("td.field-lifetime_value")).to_have_text("125,000 HUF")
    created = row.locator("td.field-created_at")
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d", created.inner_text().strip())
    assert created.evaluate("cell => getComputedStyle(cell).whiteSpace") == "nowrap"
    screenshot(page, "customers-filtered")

    page.locator('.filter-chip[data-parameter="city"] .filter-chip-remove').click()
    page.wait_for_load_state()
    assert "city=" not in page.url and "total_spent_from=20000" in page.url
    expect(page.locator("#filter-chips .filter-chip")).to_have_count(1)

    page.goto(site.url + "/admin/customers/customer/?total_spent_from=lots")
    expect(page.locator("body")).to_contain_text("“lots” is not an amount")
    assert "total_spent_from" not in page.url


def test_it_opens_a_customer_as_a_profile_with_consent_actions_and_a_timeline(marketer_page, site):
    def prepare():
        judit = Customer.objects.get(email="judit.kiss@example.com")
        campaign = Campaign.objects.create(name="Summer teas", subject="Summer", status="sent")
        CampaignRecipient.objects.create(
            campaign=campaign, customer=judit, email=judit.email, status="sent", sent_at=timezone.now()
        )
        return judit.pk

    judit_id = site.run(prepare)
    page = marketer_page
    page.goto(site.url + f"/admin/customers/customer/{judit_id}/change/")

    expect(page.locator("#profile-name")).to_have_text("Judit Kiss")
    expect(page.locator("#profile-email")).to_have_text("judit.kiss@example.com")
    assert "Judit.kiss@example.com" not in page.inner_text("body")  # the email is never capitalised
    expect(page.locator("#profile-ltv")).to_have_text("0 HUF")
    expect(page.locator("#profile-consent")).to_have_attribute("data-state", "subscribed")
    expect(page.locator('#profile-timeline li[data-kind="email_sent"]')).to_contain_text("Summer teas")
    expect(page.locator("#customer_form")).to_be_hidden()  # a profile first
    assert page.locator("input#id_unsubscribed_at, input[name^=unsubscribed_at]").count() == 0
    assert page.locator("input#id_email_marketing").count() == 0
    screenshot(page, "customer-profile", full_page=True)

    page.click("#profile-edit")
    expect(page.locator("#customer_form")).to_be_visible()
    expect(page.locator("#id_first_name")).to_have_value("Judit")

    page.fill("#profile-note", "Prefers green teas")
    page.click("#profile-note-submit")
    expect(page.locator('#profile-timeline li[data-kind="note"]')).to_contain_text("Prefers green teas")

    # Consent changes through an explicit action that records who and why.
    page.click("#profile-consent-withdraw")
    page.click("#consent-apply")  # no reason: the browser asks for one
    assert "/consent/" in page.url
    page.fill("#consent-reason", "Asked by phone")
    page.click("#consent-apply")
    page.wait_for_url(re.compile(rf"/customer/{judit_id}/change/$"))
    expect(page.locator("#profile-consent")).to_have_attribute("data-state", "unsubscribed")
    expect(page.locator("#profile-consent-history")).to_contain_text(
        f"Unsubscribed from marketing email by {site.marketer_email} (admin): Asked by phone"
    )
    consent = site.run(
        lambda: Customer.objects.values_list("email_marketing", "unsubscribed_at").get(pk=judit_id)
    )
    assert consent[0] is False and consent[1] is not None

    page.click("#profile-consent-give")
    page.fill("#consent-reason", "Signed form at the shop")
    page.click("#consent-apply")
    expect(page.locator("#profile-consent")).to_have_attribute("data-state", "subscribed")
    record = site.run(lambda: Interaction.objects.filter(customer_id=judit_id, kind="resubscribed").get())
    assert record.data["reason"] == "Signed form at the shop"
    assert page.errors == []


def test_it_builds_a_segment_without_jargon_typed_dates_or_early_red(marketer_page, site):
    page = marketer_page
    page.goto(site.url + "/admin/segments/segment/add/")
    tree = page.locator("#segment-builder-tree")
    count = page.locator("#segment-live-count")
    expect(page.locator("#segment-rules-raw summary")).to_contain_text("For developers")
    assert "react-querybuilder" not in page.inner_text("#content")
    assert page.locator("#segment-rules-raw").get_attribute("open") is None  # the JSON stays folded

    # A new rule is not red before anything was typed into it.
    tree.locator('.rb-group[data-path=""] > .rb-group-header .rb-add-rule').click()
    rule = tree.locator('.rb-rule[data-path="rules[0]"]')
    rule.locator(".rb-field").select_option("city")
    expect(page.locator("#segment-live-status")).to_have_text("finish the new rule to count")
    assert page.locator(".rb-invalid").count() == 0
    assert page.locator("#segment-live-errors li").count() == 0

    # Cities are suggested from the tenant's own customers.
    rule.locator(".rb-value").click()
    rule.locator(".rb-value").fill("Bud")
    expect(page.locator("#rb-suggest-city option")).to_have_count(1)
    assert page.locator("#rb-suggest-city option").first.get_attribute("value") == "Budapest"
    rule.locator(".rb-value").fill("Budapest")
    expect(count).to_have_text("4")  # Bence, Anna, László, István

    # Booleans read yes/no.
    tree.locator('.rb-group[data-path=""] > .rb-group-header .rb-add-rule').click()
    consent = tree.locator('.rb-rule[data-path="rules[1]"]')
    consent.locator(".rb-field").select_option("email_marketing")
    assert consent.locator(".rb-value option").all_inner_texts() == ["yes", "no"]
    expect(count).to_have_text("4")

    # Dates: a picker, and presets for "in the last N days".
    tree.locator('.rb-group[data-path=""] > .rb-group-header .rb-add-rule').click()
    joined = tree.locator('.rb-rule[data-path="rules[2]"]')
    joined.locator(".rb-field").select_option("created_at")
    joined.locator(".rb-operator").select_option(">")
    assert joined.locator(".rb-value").get_attribute("type") == "date"
    joined.locator(".rb-operator").select_option("inLastDays")
    joined.locator('.rb-preset[data-days="365"]').click()
    assert joined.locator(".rb-value").input_value() == "365"
    expect(count).to_have_text("4")

    # A wrong value, once typed, is red and named by the rule and its field, not by its path.
    tree.locator('.rb-group[data-path=""] > .rb-group-header .rb-add-rule').click()
    spent = tree.locator('.rb-rule[data-path="rules[3]"]')
    spent.locator(".rb-field").select_option("total_spent")
    spent.locator(".rb-operator").select_option(">")
    spent.locator(".rb-value").fill("lots")
    expect(page.locator("#segment-live-errors li").first).to_contain_text("Rule 4 (Total spent)")
    assert "rules[3]" not in page.inner_text("#segment-live-errors")
    expect(spent).to_have_class(re.compile("rb-invalid"))
    page.evaluate(
        "() => window.scrollBy(0, document.getElementById('segment-rule-builder').getBoundingClientRect().top - 120)"
    )
    screenshot(page, "segment-builder-styled")
    spent.locator(".rb-value").fill("20000")
    expect(count).to_have_text("3")
    assert page.locator(".rb-invalid").count() == 0
    assert page.errors == []


def test_it_takes_a_new_marketer_through_the_first_hour_in_local_time(chromium, site, budapest):
    """The tour, screenshots for the README (tour-*.png): log in, find a customer, build a segment
    without typing JSON or dates, compose with preview and a test, send, read the stats, open the
    customer's timeline; times in Budapest's zone."""
    context = chromium.new_context(viewport={"width": 1440, "height": 900}, locale="en-US")
    context.set_default_timeout(15_000)
    page = context.new_page()
    page.errors = []
    page.on("pageerror", lambda error: page.errors.append(str(error)))
    try:
        # Log in with an email address, as the form asks.
        page.goto(f"{site.url}/admin/login/?next=/admin/")
        expect(page.locator("label[for=id_username]")).to_contain_text("Email")
        page.fill("input[name=username]", site.marketer_email)
        page.fill("input[name=password]", PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_url(f"{site.url}/admin/")
        page.wait_for_load_state("networkidle")
        screenshot(page, "tour-1-dashboard", full_page=True)

        # Find a customer.
        page.click("text=Customers")
        page.fill("input[name=q]", "Nagy")
        page.keyboard.press("Enter")
        expect(page.locator("#result_list tbody tr")).to_have_count(1)
        expect(page.locator("#filter-chips")).to_contain_text("Search: Nagy")
        page.wait_for_load_state("networkidle")
        screenshot(page, "tour-2-customers")

        # A segment from pickers: a suggested city, a preset period.
        page.goto(site.url + "/admin/segments/segment/add/")
        page.fill("#id_name", "Budapest, joined this year")
        tree = page.locator("#segment-builder-tree")
        add = tree.locator('.rb-group[data-path=""] > .rb-group-header .rb-add-rule')
        add.click()
        city = tree.locator('.rb-rule[data-path="rules[0]"]')
        city.locator(".rb-field").select_option("city")
        city.locator(".rb-value").fill("Buda")
        expect(page.locator("#rb-suggest-city option")).to_have_count(1)
        city.locator(".rb-value").fill(page.locator("#rb-suggest-city option").first.get_attribute("value"))
        add.click()
        joined = tree.locator('.rb-rule[data-path="rules[1]"]')
        joined.locator(".rb-field").select_option("created_at")
        joined.locator(".rb-operator").select_option("inLastDays")
        joined.locator('.rb-preset[data-days="365"]').click()
        expect(page.locator("#segment-live-count")).to_have_text("4")
        page.evaluate(
            "() => window.scrollBy(0, document.getElementById('segment-rule-builder').getBoundingClientRect().top - 120)"
        )
        page.wait_for_load_state("networkidle")
        screenshot(page, "tour-3-segment")
        page.click("button[name=_save]")
        page.wait_for_url(re.compile(r"/admin/segments/segment/$"))

        # Compose: the sender and its source, a preview as a customer picked by name, a test copy.
        page.goto(site.url + "/admin/campaigns/campaign/add/")
        page.fill("#id_name", "Tour: spring teas")
        page.select_option("#id_template", label="Spring newsletter")
        page.select_option("#id_segment", label="Budapest, joined this year")
        expect(page.locator("#campaign-audience-count")).to_have_text("4")
        expect(page.locator("#campaign-effective-from")).to_have_text("Teashop <news@teashop.example>")
        page.fill("#campaign-preview-customer", "Varga")
        expect(page.locator("#campaign-preview-subject")).to_have_text("Spring is here, László")
        page.wait_for_load_state("networkidle")
        screenshot(page, "tour-4-compose")
        page.click("button[name=_continue]")
        page.wait_for_url(re.compile(r"/admin/campaigns/campaign/\d+/change/"))
        campaign_id = int(re.search(r"/campaign/(\d+)/change/", page.url).group(1))
        page.fill("#campaign-test-emails", "me@teashop.example")
        page.click("#campaign-test-submit")
        expect(page.locator("body")).to_contain_text("Test copy sent to me@teashop.example.")

        # Scheduling speaks Budapest time; then send now instead.
        page.click("#action-schedule")
        expect(page.locator("label[for=schedule-at]")).to_have_text(f"Send at ({BUDAPEST})")
        page.wait_for_load_state("networkidle")
        screenshot(page, "tour-5-schedule")
        page.click("#confirm-back")
        page.click("#action-send")
        expect(page.locator('#confirm-checklist tr[data-ok="false"]')).to_have_count(0)
        expect(page.locator("#check-test")).to_contain_text(BUDAPEST)  # when the test went out, local time
        expect(page.locator("#confirm-submit")).to_be_enabled()
        page.wait_for_load_state("networkidle")
        screenshot(page, "tour-6-confirm")
        page.click("#confirm-submit")
        expect(page.locator("body")).to_contain_text("Queued")
        expect(page.locator("#campaign-status")).to_have_attribute("data-status", "sent", timeout=30_000)
        page.wait_for_load_state()

        # The results, with the hours in Budapest time.
        page.goto(site.url + f"/admin/tracking/campaignreport/{campaign_id}/stats/")
        expect(page.locator("#content")).to_contain_text(f"Opens and clicks per hour ({BUDAPEST})")
        expect(page.locator("#funnel-delivered-not-reported")).to_contain_text(
            "not reported by your mail server"
        )
        page.wait_for_load_state("networkidle")
        screenshot(page, "tour-7-stats", full_page=True)

        # The customer's story: the campaign is on László's timeline.
        page.goto(site.url + "/admin/customers/customer/?q=Varga")
        page.locator("#result_list tbody tr a").first.click()
        expect(page.locator('#profile-timeline li[data-kind="email_sent"]').first).to_contain_text(
            "Tour: spring teas"
        )
        page.wait_for_load_state("networkidle")
        screenshot(page, "tour-8-customer", full_page=True)
        assert site.run(lambda: Campaign.objects.get(pk=campaign_id).status) == "sent"
        assert page.errors == []
    finally:
        context.close()
