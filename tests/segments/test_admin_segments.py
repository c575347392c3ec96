"""The segment admin: the visual builder's page, its live count endpoint, saving through services."""

import json

import pytest
from django.test import Client

from segments.models import Segment, SegmentMember

VIP_RULES = {"combinator": "and", "rules": [{"field": "tags", "operator": "contains", "value": "vip"}]}
HOST = "tenant-a.localhost"


@pytest.fixture
def browser(admin_user):
    client = Client(HTTP_HOST=HOST)
    client.force_login(admin_user)
    return client


def test_it_shows_the_visual_builder_with_the_fields_it_allows(browser, tenant):
    response = browser.get("/admin/segments/segment/add/")
    assert response.status_code == 200
    html = response.content.decode()
    for hook in (
        'id="segment-rule-builder"',
        'data-preview-url="/admin/segments/segment/preview/"',
        'id="segment-rule-fields"',
        'id="segment-live-count"',
        'id="segment-rules-raw"',
        'id="id_rules"',
        "segments/builder.js",
        "segments/builder.css",
    ):
        assert hook in html
    catalogue = json.loads(
        html.split('id="segment-rule-fields" type="application/json">')[1].split("</script>")[0]
    )
    total_spent = next(field for field in catalogue["fields"] if field["name"] == "total_spent")
    assert "beginsWith" not in total_spent["operators"]


def test_it_saves_the_builders_json_through_the_services(browser, dataset):
    response = browser.post(
        "/admin/segments/segment/add/",
        {"name": "VIPs", "description": "", "kind": "dynamic", "rules": json.dumps(VIP_RULES)},
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    segment = Segment.objects.get(name="VIPs")
    assert (segment.kind, segment.rules) == ("dynamic", VIP_RULES)
    page = browser.get(f"/admin/segments/segment/{segment.pk}/change/").content.decode()
    assert 'id="segment-saved-count">3<' in page


def test_it_refuses_invalid_rules_in_the_form_naming_the_rule_and_saves_nothing(browser, tenant):
    bad = {"combinator": "and", "rules": [{"field": "total_spent", "operator": "beginsWith", "value": "1"}]}
    response = browser.post(
        "/admin/segments/segment/add/",
        {"name": "bad", "description": "", "kind": "dynamic", "rules": json.dumps(bad)},
    )
    assert response.status_code == 200
    assert (
        "Rule 1 (Total spent), condition: &#x27;beginsWith&#x27; is not valid for Total spent"
        in response.content.decode()
    )
    response = browser.post(
        "/admin/segments/segment/add/", {"name": "empty", "description": "", "kind": "dynamic", "rules": ""}
    )
    assert "A dynamic segment needs at least one rule." in response.content.decode()
    assert Segment.objects.count() == 0


def test_it_counts_live_for_the_builder(browser, dataset):
    response = browser.post(
        "/admin/segments/segment/preview/", json.dumps({"rules": VIP_RULES}), content_type="application/json"
    )
    assert response.status_code == 200
    body = response.json()
    assert body["count"] == 3
    assert [item["email"] for item in body["sample"]] == [
        "fanni@example.org",
        "cecil@example.net",
        "anna@example.com",
    ]
    assert body["sample"][0]["url"] == f"/admin/customers/customer/{dataset.ids['fanni']}/change/"


@pytest.mark.parametrize(
    "body, expected",
    [
        (
            {"rules": {"combinator": "and", "rules": [{"field": "nope", "operator": "=", "value": "x"}]}},
            ["rules[0].field: unknown field 'nope'"],
        ),
        ({"rules": {"combinator": "and", "rules": []}}, ["rules: must not be empty"]),
        ({"no": "rules"}, ['Send {"rules": ...}.']),
    ],
)
def test_it_answers_the_builder_with_path_errors(browser, tenant, body, expected):
    response = browser.post(
        "/admin/segments/segment/preview/", json.dumps(body), content_type="application/json"
    )
    assert response.status_code == 400
    assert response.json()["errors"] == expected
    # What the builder shows: the same in a person's words (no "rules[0]" paths).
    assert not any("rules[" in message for message in response.json().get("messages", []))


def test_it_refuses_a_preview_that_is_not_json_or_not_a_post(browser, tenant):
    response = browser.post("/admin/segments/segment/preview/", "{", content_type="application/json")
    assert response.status_code == 400
    assert browser.get("/admin/segments/segment/preview/").status_code == 405


def test_it_keeps_the_live_count_behind_login_and_csrf(admin_user, tenant):
    anonymous = Client(HTTP_HOST=HOST)
    response = anonymous.post(
        "/admin/segments/segment/preview/", json.dumps({"rules": VIP_RULES}), content_type="application/json"
    )
    assert response.status_code == 302
    strict = Client(HTTP_HOST=HOST, enforce_csrf_checks=True)
    strict.force_login(admin_user)
    response = strict.post(
        "/admin/segments/segment/preview/", json.dumps({"rules": VIP_RULES}), content_type="application/json"
    )
    assert response.status_code == 403


def test_it_lets_a_marketer_use_the_builder(marketer, dataset):
    client = Client(HTTP_HOST=HOST)
    client.force_login(marketer)
    response = client.post(
        "/admin/segments/segment/preview/", json.dumps({"rules": VIP_RULES}), content_type="application/json"
    )
    assert response.status_code == 200
    assert response.json()["count"] == 3


def test_it_edits_the_members_of_a_static_segment_inline(browser, dataset):
    segment = Segment.objects.create(name="list", kind="static")
    SegmentMember.objects.create(segment=segment, customer_id=dataset.ids["anna"])
    page = browser.get(f"/admin/segments/segment/{segment.pk}/change/")
    assert page.status_code == 200
    assert 'id="segment-rule-builder"' not in page.content.decode()
    member = SegmentMember.objects.get(segment=segment)
    prefix = "segmentmember_set"
    response = browser.post(
        f"/admin/segments/segment/{segment.pk}/change/",
        {
            "name": "list",
            "description": "",
            f"{prefix}-TOTAL_FORMS": "2",
            f"{prefix}-INITIAL_FORMS": "1",
            f"{prefix}-MIN_NUM_FORMS": "0",
            f"{prefix}-MAX_NUM_FORMS": "1000",
            f"{prefix}-0-id": str(member.pk),
            f"{prefix}-0-segment": str(segment.pk),
            f"{prefix}-0-customer": str(dataset.ids["anna"]),
            f"{prefix}-0-DELETE": "on",
            f"{prefix}-1-id": "",
            f"{prefix}-1-segment": str(segment.pk),
            f"{prefix}-1-customer": str(dataset.ids["bela"]),
        },
    )
    assert response.status_code == 302, response.content.decode()[:3000]
    assert list(SegmentMember.objects.filter(segment=segment).values_list("customer_id", flat=True)) == [
        dataset.ids["bela"]
    ]


def test_it_freezes_selected_segments_from_the_list(browser, dataset):
    segment = Segment.objects.create(name="VIPs", rules=VIP_RULES)
    response = browser.post(
        "/admin/segments/segment/", {"action": "freeze_selected", "_selected_action": [str(segment.pk)]}
    )
    assert response.status_code == 302
    frozen = Segment.objects.get(kind="static")
    assert frozen.name.startswith("VIPs (")
    assert sorted(
        SegmentMember.objects.filter(segment=frozen).values_list("customer_id", flat=True)
    ) == sorted(dataset.ids[key] for key in ("anna", "cecil", "fanni"))
    assert browser.get("/admin/segments/segment/").status_code == 200


def test_it_creates_a_static_segment_ignoring_whatever_the_builder_held(browser, tenant):
    for index, leftover in enumerate(["{", json.dumps(VIP_RULES)]):
        response = browser.post(
            "/admin/segments/segment/add/",
            {"name": f"hand-picked {index}", "description": "", "kind": "static", "rules": leftover},
        )
        assert response.status_code == 302
        segment = Segment.objects.get(name=f"hand-picked {index}")
        assert (segment.kind, segment.rules) == ("static", None)


def test_it_refuses_an_overlong_description_in_the_form(browser, tenant):
    response = browser.post(
        "/admin/segments/segment/add/",
        {"name": "long", "description": "x" * 10_001, "kind": "dynamic", "rules": json.dumps(VIP_RULES)},
    )
    assert response.status_code == 200
    assert "Ensure this value has at most 10000 characters" in response.content.decode()
    assert Segment.objects.count() == 0
