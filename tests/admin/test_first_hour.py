"""The marketer's first hour, in a real browser against the live site (see conftest.py and live.py).

One test per stumble a new marketer met, worst first: the sender shown with where it comes from, times
in the tenant's zone with a real picker and a default that works, blockers that block, errors in the
words of the form, preview and test send beside the content, the campaign page's buttons, the dashboard,
the favicon and the login label. Each failed on the admin before these fixes.
"""

import http.client
import re
from datetime import UTC, datetime, timedelta

import pytest
from playwright.sync_api import expect

from tests.admin.conftest import screenshot

pytestmark = pytest.mark.browser
BUDAPEST = "Europe/Budapest"


def _segment(site, name="Budapest", city="Budapest"):
    from segments.models import Segment

    def create():
        rules = {"combinator": "and", "rules": [{"field": "city", "operator": "=", "value": city}]}
        return Segment.objects.get_or_create(name=name, defaults={"rules": rules})[0].pk

    return site.run(create)


def _campaign(site, name, *, segment_id=None, **fields):
    from campaigns.models import Campaign, EmailTemplate

    def create():
        template = EmailTemplate.objects.get(name="Spring newsletter")
        return Campaign.objects.create(name=name, template=template, segment_id=segment_id, **fields).pk

    return site.run(create)


def _status(site, campaign_id):
    from campaigns.models import Campaign

    return site.run(lambda: Campaign.objects.values_list("status", "scheduled_at").get(pk=campaign_id))


def _set_time_zone(site, name):
    from tenancy.models import Tenant

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
    from zoneinfo import ZoneInfo

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
    from campaigns.models import Campaign

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

    site.run(lambda: Campaign.objects.filter(pk=draft_id).update(status="sent"))
    page.goto(site.url + f"/admin/campaigns/campaign/{draft_id}/change/")
    expect(page.locator("#campaign-status")).to_have_attribute("data-status", "sent")
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
