"""The flows admin: recipes, the builder page, saving, activate / pause behind a confirmation, the run
inspector; a marketer can use it, HTML in names stays text."""

import json
import re

import pytest
from django.test import Client

from flows import recipes
from flows.models import Flow, FlowRun
from flows.services import flow_activate
from segments.rules import field_catalogue

from .conftest import customer, post_event, tick


@pytest.fixture
def browser(tenant, marketer):
    client = Client(HTTP_HOST=tenant.get_primary_domain().domain)
    client.force_login(marketer)
    return client


@pytest.mark.parametrize("key", [recipe.key for recipe in recipes.RECIPES])
def test_every_recipe_makes_a_valid_draft_that_can_be_activated(tenant, key):
    flow = recipes.flow_from_recipe(key=key)

    assert flow.status == "draft" and flow.steps

    assert flow_activate(flow=flow).status == "active"


def test_it_builds_a_flow_from_a_recipe_and_shows_the_builder(browser):
    page = browser.get("/admin/flows/flow/")
    assert page.status_code == 200 and 'id="flow-from-recipe"' in page.content.decode()
    listing = browser.get("/admin/flows/flow/recipes/").content.decode()
    for recipe in recipes.RECIPES:
        assert f'id="recipe-{recipe.key}"' in listing

    response = browser.post("/admin/flows/flow/recipes/", {"recipe": "abandoned_cart"})

    flow = Flow.objects.get()
    assert response.status_code == 302 and response["Location"].endswith(
        f"/admin/flows/flow/{flow.pk}/builder/"
    )
    html = browser.get(response["Location"]).content.decode()
    for dom_id in (
        "flow-builder",
        "flow-steps",
        "flow-save",
        "flow-activate",
        "flow-trigger",
        "add-step",
        "inspect-q",
    ):
        assert f'id="{dom_id}"' in html, dom_id
    assert browser.get(f"/admin/flows/flow/{flow.pk}/change/")["Location"].endswith("/builder/")


def test_it_gives_the_builder_the_segment_builders_words_for_condition_operators(browser):
    flow = Flow.objects.create(
        name="Big spenders",
        steps=[
            {
                "id": "b",
                "type": "branch",
                "rules": {
                    "combinator": "and",
                    "rules": [{"field": "total_spent", "operator": ">=", "value": "100"}],
                },
            }
        ],
    )

    html = browser.get(f"/admin/flows/flow/{flow.pk}/builder/").content.decode()

    script = re.search(r'<script id="flow-catalogue" type="application/json">(.*?)</script>', html, re.S)
    labels = json.loads(script.group(1))["rule_fields"]["operator_labels"]
    assert labels == field_catalogue()["operator_labels"]  # one list, the segment builder's
    assert (labels["number"][">="], labels["number"]["="], labels["date"]["<="]) == (
        "at least",
        "equals",
        "on or before",
    )


def test_it_saves_from_the_builder_and_refuses_bad_steps_naming_them(browser):
    flow = recipes.flow_from_recipe(key="abandoned_cart")
    steps = [dict(step) for step in flow.steps]
    steps[0]["hours"] = 2

    saved = browser.post(
        f"/admin/flows/flow/{flow.pk}/save/", json.dumps({"steps": steps}), content_type="application/json"
    )
    refused = browser.post(
        f"/admin/flows/flow/{flow.pk}/save/",
        json.dumps({"steps": [{"id": "x", "type": "delay", "hours": -1}]}),
        content_type="application/json",
    )

    assert saved.status_code == 200
    assert refused.status_code == 400 and "steps" in refused.json()["errors"]
    assert Flow.objects.get().steps[0]["hours"] == 2


def test_activate_and_pause_need_a_confirmation(browser):
    flow = recipes.flow_from_recipe(key="welcome")
    url = f"/admin/flows/flow/{flow.pk}/action/activate/"

    assert 'id="confirm-submit"' in browser.get(url).content.decode()
    assert Flow.objects.get().status == "draft"
    browser.post(url)
    assert Flow.objects.get().status == "active"
    browser.post(f"/admin/flows/flow/{flow.pk}/action/pause/")
    assert Flow.objects.get().status == "paused"


def test_the_run_inspector_answers_why_from_the_step_log(browser, api):
    flow = recipes.flow_from_recipe(key="abandoned_cart")

    flow_activate(flow=flow)
    anna = customer("anna@example.com", consent=False)
    post_event(api, "c-1", anna)
    tick()
    FlowRun.objects.update(due_at="2000-01-01T00:00:00Z")
    tick()

    data = browser.get(f"/admin/flows/flow/{flow.pk}/inspect/", {"q": "anna@example.com"}).json()

    steps = {s["step_id"]: s for s in data["runs"][0]["steps"]}
    assert steps["remind"]["message"] == "skipped"
    assert steps["remind"]["why"] == "the customer withdrew marketing consent"
    assert (
        browser.get(f"/admin/flows/flow/{flow.pk}/inspect/", {"q": "nobody@example.com"}).json()["customer"]
        is None
    )


def test_html_in_a_flow_name_stays_text(browser):
    flow = Flow.objects.create(name='<img src=x onerror="alert(1)">')

    html = browser.get(f"/admin/flows/flow/{flow.pk}/builder/").content.decode()

    assert '<img src=x onerror="alert(1)">' not in html


def test_it_adds_a_draft_by_name_and_deletes_only_drafts(browser):
    response = browser.post("/admin/flows/flow/add/", {"name": "By hand"})

    flow = Flow.objects.get()
    assert response.status_code == 302 and response["Location"].endswith(
        f"/admin/flows/flow/{flow.pk}/builder/"
    )
    assert (flow.name, flow.status) == ("By hand", "draft")
    Flow.objects.filter(pk=flow.pk).update(status="active")
    assert browser.post(f"/admin/flows/flow/{flow.pk}/delete/", {"post": "yes"}).status_code == 403
    assert Flow.objects.filter(pk=flow.pk).exists()
