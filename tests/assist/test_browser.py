"""In a real browser against the live site of the admin tests (tests/admin/conftest.py): a marketer
describes a segment in a sentence, the builder fills in, the live count follows, the marketer edits a
rule and saves."""

import json

import pytest
from playwright.sync_api import expect

from segments import hooks
from segments.models import Segment
from tests.admin.conftest import chromium, marketer_page, screenshot, site  # noqa: F401  (fixtures)

pytestmark = pytest.mark.browser


@pytest.mark.django_db  # also makes pytest-django set up the test database when this module runs alone
def test_the_builder_offers_the_sentence_box_when_assist_is_installed():
    assert hooks.sentence_endpoints == ["ai-segment"]


def test_a_sentence_fills_the_segment_builder_which_the_marketer_edits_before_saving(marketer_page, site):  # noqa: F811
    page = marketer_page
    page.goto(site.url + "/admin/segments/segment/add/")
    page.fill("#id_name", "Budapest big spenders")

    page.fill("#segment-sentence-text", "customers in Budapest who spent over 40000 and love jazz")
    page.click("#segment-sentence-apply")

    result = page.locator("#segment-sentence-result")
    expect(result).to_have_attribute("data-source", "offline")
    expect(result).to_contain_text("Not understood: love, jazz")
    expect(page.locator(".rb-rule")).to_have_count(2)
    expect(page.locator('.rb-rule[data-path="rules[0]"] .rb-field')).to_have_value("city")
    expect(page.locator('.rb-rule[data-path="rules[1]"] .rb-field')).to_have_value("total_spent")
    # Budapest and over 40,000 in the seed: Bence (125,000), László (310,000), István (45,000).
    expect(page.locator("#segment-live-count")).to_have_text("3")
    screenshot(page, "segment-sentence")

    page.locator('.rb-rule[data-path="rules[1]"] .rb-value').fill("100000")
    expect(page.locator("#segment-live-count")).to_have_text("2")
    page.click("input[name=_save], button[name=_save]")

    saved = site.run(lambda: Segment.objects.get(name="Budapest big spenders").rules)
    assert saved["rules"] == [
        {"field": "city", "operator": "=", "value": "Budapest"},
        {"field": "total_spent", "operator": ">", "value": "100000"},
    ], json.dumps(saved)


def test_a_sentence_without_a_condition_says_so_and_leaves_the_builder_alone(marketer_page, site):  # noqa: F811
    page = marketer_page
    page.goto(site.url + "/admin/segments/segment/add/")

    page.fill("#segment-sentence-text", "purple elephants")
    page.click("#segment-sentence-apply")

    expect(page.locator("#segment-sentence-result")).to_have_attribute("data-source", "error")
    expect(page.locator("#segment-sentence-result")).to_contain_text("No condition found")
    expect(page.locator(".rb-rule")).to_have_count(0)
