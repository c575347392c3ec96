"""In a real browser, a marketer's main flow end to end: build a nested segment in the visual builder
and watch the live count change, compose a campaign from a template with its live preview, send a test,
send it (a real Celery worker delivers to a real SMTP server), watch the progress reach 100%, and open
the stats page with its charts once opens and clicks came in."""

import http.client
import re
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import expect

from tests.admin.conftest import screenshot

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


def test_it_takes_a_marketer_from_segment_to_sent_campaign_and_its_stats(marketer_page, site):
    from campaigns.models import Campaign
    from segments.models import Segment
    from tracking.services import hits_rollup

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
