"""The flow builder in a real browser (Playwright driving Debian's chromium, the live site of
tests/admin): a branch's conditions combined with all / any (the segment language, nested groups,
the server's refusal outlined on the condition it names), and steps reordered by drag and drop
with the up / down buttons still there for the keyboard."""

import re

import pytest
from playwright.sync_api import expect

from flows.models import Flow
from tests.admin.conftest import (  # noqa: F401 (the live site's fixtures)
    chromium,
    marketer_page,
    screenshot,
    site,
)

pytestmark = pytest.mark.browser


@pytest.mark.django_db  # also makes pytest-django set up the test database when this module runs alone
def test_it_has_a_live_site_for_the_builder(site):  # noqa: F811
    assert site.tenant.pk


def _draft(live, steps, **fields):
    return live.run(lambda: Flow.objects.create(name="Builder test", steps=steps, **fields).pk)


def _open(page, live, flow_id):
    page.goto(f"{live.url}/admin/flows/flow/{flow_id}/builder/")
    expect(page.locator("#flow-steps .step").first).to_be_visible()


def _stored(live, flow_id):
    return live.run(lambda: Flow.objects.values("steps", "exit_rules").get(pk=flow_id))


def _order(page):
    return [
        re.sub(r"^step-", "", i)
        for i in page.locator("#flow-steps .step").evaluate_all("n => n.map(e => e.id)")
    ]


def test_it_combines_a_branchs_conditions_with_any_and_names_the_bad_one(marketer_page, site):  # noqa: F811
    page = marketer_page
    one = {"combinator": "and", "rules": [{"field": "total_spent", "operator": ">", "value": "100"}]}
    flow_id = _draft(
        site,
        [
            {"id": "b", "type": "branch", "rules": one, "yes": "vip"},
            {"id": "plain", "type": "tag", "add": ["plain"]},
            {"id": "vip", "type": "tag", "add": ["vip"]},
        ],
    )
    _open(page, site, flow_id)
    branch = page.locator("#step-b .step-rules")
    # Operators read as the segment builder's words; the stored rules keep the operator.
    expect(branch.locator(".rule-operator option:checked")).to_have_text("greater than")
    expect(branch.locator(".rule-operator option")).to_have_text(
        [
            "equals",
            "does not equal",
            "less than",
            "greater than",
            "at most",
            "at least",
            "is between",
            "is not between",
            "is one of",
            "is none of",
        ]
    )

    branch.locator(".rule-combinator").first.select_option("or")
    branch.locator(".rule-add").first.click()
    second = branch.locator(".rule").nth(1)
    second.locator(".rule-field").select_option("city")
    second.locator(".rule-operator").select_option("=")
    second.locator(".rule-value").fill("Szeged")
    branch.locator(".rule-add-group").first.click()  # a nested group: both of these
    group = branch.locator(".rule-group .rule-group")
    group.locator(".rule-combinator").select_option("and")
    inner = group.locator(".rule").first
    inner.locator(".rule-field").select_option("order_count")
    inner.locator(".rule-operator").select_option(">=")
    expect(inner.locator(".rule-operator option:checked")).to_have_text("at least")
    inner.locator(".rule-value").fill("many")  # not a number: the server refuses it, naming the path
    page.click("#flow-save")

    expect(page.locator("#flow-errors")).to_contain_text("steps[0].rules: rules[2].rules[0].value")
    expect(page.locator('#step-b .rule.rule-invalid[data-path="rules[2].rules[0]"]')).to_have_count(1)
    assert _stored(site, flow_id)["steps"][0]["rules"] == one

    inner.locator(".rule-value").fill("3")
    page.click("#flow-save")

    expect(page.locator("#flow-save-result")).to_contain_text("Saved")
    expect(page.locator(".rule-invalid")).to_have_count(0)
    page.locator("#step-b").scroll_into_view_if_needed()
    screenshot(page, "flow-builder-conditions")
    assert _stored(site, flow_id)["steps"][0]["rules"] == {
        "combinator": "or",
        "rules": [
            {"field": "total_spent", "operator": ">", "value": "100"},
            {"field": "city", "operator": "=", "value": "Szeged"},
            {"combinator": "and", "rules": [{"field": "order_count", "operator": ">=", "value": "3"}]},
        ],
    }
    # The exit conditions use the same editor: none until one is added.
    page.click("#flow-exit-rules .rule-start")
    page.locator("#flow-exit-rules .rule-field").select_option("city")
    page.locator("#flow-exit-rules .rule-operator").select_option("=")
    page.locator("#flow-exit-rules .rule-value").fill("Pécs")
    page.click("#flow-save")
    expect(page.locator("#flow-save-result")).to_contain_text("Saved")
    assert _stored(site, flow_id)["exit_rules"] == {
        "combinator": "and",
        "rules": [{"field": "city", "operator": "=", "value": "Pécs"}],
    }
    assert page.errors == [] and page.dialogs.seen == []


def test_it_reorders_steps_by_drag_and_drop_and_keeps_the_buttons(marketer_page, site):  # noqa: F811
    page = marketer_page
    flow_id = _draft(
        site,
        [
            {"id": "first", "type": "delay", "hours": 1},
            {"id": "second", "type": "tag", "add": ["two"]},
            {"id": "third", "type": "tag", "add": ["three"]},
        ],
    )
    _open(page, site, flow_id)

    # Onto the upper half of the first card: the third step goes before it.
    page.locator("#step-third .step-handle").drag_to(
        page.locator("#step-first"), target_position={"x": 60, "y": 4}
    )
    assert _order(page) == ["third", "first", "second"]
    expect(page.locator("#flow-steps-announce")).to_have_text("Step third moved to position 1.")
    # Onto the lower half of the last card: the third step goes to the end again.
    box = page.locator("#step-second").bounding_box()
    page.locator("#step-third .step-handle").drag_to(
        page.locator("#step-second"), target_position={"x": 60, "y": box["height"] - 4}
    )
    assert _order(page) == ["first", "second", "third"]

    # The keyboard: the buttons move a step one place and keep the focus on it.
    page.focus("#step-first .step-down")
    page.keyboard.press("Enter")
    assert _order(page) == ["second", "first", "third"]
    page.keyboard.press("Enter")
    assert _order(page) == ["second", "third", "first"]
    expect(page.locator("#step-second .step-up")).to_be_disabled()
    page.click("#flow-save")

    expect(page.locator("#flow-save-result")).to_contain_text("Saved")
    assert [s["id"] for s in _stored(site, flow_id)["steps"]] == ["second", "third", "first"]
    assert page.errors == [] and page.dialogs.seen == []


def test_it_keeps_a_jump_a_move_broke_visible_and_the_save_names_it(marketer_page, site):  # noqa: F811
    page = marketer_page
    rules = {"combinator": "and", "rules": [{"field": "city", "operator": "=", "value": "Szeged"}]}
    flow_id = _draft(
        site,
        [
            {"id": "ask", "type": "branch", "rules": rules, "yes": "vip"},
            {"id": "plain", "type": "tag", "add": ["plain"]},
            {"id": "vip", "type": "tag", "add": ["vip"]},
        ],
    )
    _open(page, site, flow_id)

    page.locator("#step-vip .step-handle").drag_to(
        page.locator("#step-ask"), target_position={"x": 60, "y": 4}
    )

    assert _order(page) == ["vip", "ask", "plain"]
    expect(page.locator("#step-ask .step-yes option:checked")).to_have_text(
        "vip (not after this step: pick another)"
    )
    page.click("#flow-save")
    expect(page.locator("#flow-errors")).to_contain_text("steps[1].yes: must jump forward")
    assert [s["id"] for s in _stored(site, flow_id)["steps"]] == ["ask", "plain", "vip"]
    page.locator("#step-ask .step-yes").select_option("")
    page.click("#flow-save")
    expect(page.locator("#flow-save-result")).to_contain_text("Saved")
    assert _stored(site, flow_id)["steps"][1] == {"id": "ask", "type": "branch", "rules": rules}
