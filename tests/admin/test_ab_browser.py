"""In a real browser against a live site (see conftest.py): a marketer composes an A/B test, the
variants side by side, picks the metric and the wait, saves, and finds it again as saved."""

import re

import pytest
from playwright.sync_api import expect

from campaigns.models import Campaign
from tenancy.models import Tenant
from tests.admin.conftest import screenshot

pytestmark = pytest.mark.browser


@pytest.mark.django_db  # also makes pytest-django set up the test database when this module runs alone
def test_it_serves_a_tenant_of_its_own(site):
    assert Tenant.objects.get(pk=site.tenant.pk).name == "Teashop Hungary"


def test_it_composes_an_ab_test_with_variants_side_by_side(marketer_page, site):
    page = marketer_page
    page.goto(site.url + "/admin/campaigns/campaign/add/")
    page.fill("#id_name", "Subject line test")
    page.select_option("#id_template", label="Spring newsletter")

    cards = [page.locator(f"#ab-variant-{key}") for key in "ABCD"]
    boxes = [card.bounding_box() for card in cards]
    assert all(box["y"] == boxes[0]["y"] for box in boxes)  # one row: side by side
    assert [box["x"] for box in boxes] == sorted(box["x"] for box in boxes)

    page.check("#id_ab_enabled")
    page.fill("#id_variant_A_subject", "Spring is here, {{ customer.first_name }}")
    page.fill("#id_variant_B_subject", "A spring treat for you")
    page.fill("#id_variant_B_from_name", "Anna from Teashop")
    page.select_option("#id_ab_metric", "click_rate")
    page.fill("#id_ab_test_percent", "25")
    page.fill("#id_ab_wait_hours", "6")
    page.fill("#id_ab_min_confidence", "90")
    page.locator("#ab-test").scroll_into_view_if_needed()
    screenshot(page, "campaign-ab-test")
    page.click("button[name=_continue]")
    page.wait_for_url(re.compile(r"/admin/campaigns/campaign/\d+/change/"))

    campaign = site.run(lambda: Campaign.objects.get(name="Subject line test"))
    assert campaign.variants == [
        {"key": "A", "subject": "Spring is here, {{ customer.first_name }}"},
        {"key": "B", "subject": "A spring treat for you", "from_name": "Anna from Teashop"},
    ]
    assert campaign.ab_test == {
        "test_percent": 25,
        "metric": "click_rate",
        "wait_seconds": 21600,
        "min_confidence": 0.9,
    }
    expect(page.locator("#id_variant_B_from_name")).to_have_value("Anna from Teashop")
    expect(page.locator("#id_ab_enabled")).to_be_checked()

    # A bad test comes back with the error on its field, and nothing changes.
    page.fill("#id_variant_B_subject", "")
    page.fill("#id_variant_B_from_name", "")
    page.click("button[name=_continue]")
    expect(page.locator("#ab-variant-B .errorlist")).to_contain_text("at least one of")
    assert site.run(lambda: Campaign.objects.get(pk=campaign.pk).variants) == campaign.variants
    assert page.errors == []


def test_it_previews_each_variant_beside_the_composer(marketer_page, site):
    page = marketer_page
    page.goto(site.url + "/admin/campaigns/campaign/add/")
    page.select_option("#id_template", label="Spring newsletter")
    page.fill("#campaign-preview-customer", "bence.nagy@example.com")
    subject, sender = page.locator("#campaign-preview-subject"), page.locator("#campaign-preview-from")
    switch = page.locator("#campaign-preview-variant")
    frame = page.frame_locator("#campaign-preview-frame")
    expect(subject).to_have_text("Spring is here, Bence")
    expect(switch).to_be_hidden()  # no test, nothing to switch

    page.check("#id_ab_enabled")
    expect(switch).to_be_visible()
    expect(switch.locator("option[value=C]")).to_have_attribute("hidden", "")  # C counts once filled
    page.fill("#id_variant_A_subject", "Spring sale, {{ customer.first_name }}")
    page.fill("#id_variant_B_from_name", "Anna from Teashop")
    page.fill("#id_variant_B_html_body", "<p>A treat for you, {{ customer.first_name }}</p>")

    switch.select_option("A")
    expect(subject).to_have_text("Spring sale, Bence")
    expect(sender).to_have_text("Teashop")
    expect(frame.locator("h1")).to_have_text("Hello Bence!")
    switch.select_option("B")
    expect(subject).to_have_text("Spring is here, Bence")
    expect(sender).to_have_text("Anna from Teashop")
    expect(frame.locator("body")).to_contain_text("A treat for you, Bence")
    page.locator("#campaign-preview").scroll_into_view_if_needed()
    screenshot(page, "campaign-ab-preview-variant")
    page.fill("#id_variant_C_subject", "A third way")
    switch.select_option("C")
    expect(subject).to_have_text("A third way")
    switch.select_option("")
    expect(subject).to_have_text("Spring is here, Bence")
    expect(frame.locator("h1")).to_have_text("Hello Bence!")
    assert page.errors == []
