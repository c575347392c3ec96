"""The segments API of PRODUCT.md: CRUD, customers, preview, static members, freeze, counts."""

import json

import pytest
from django.core.exceptions import ValidationError
from django.db import connection
from django_tenants.utils import schema_context

from customers.models import Customer
from segments import services
from segments.models import Segment, SegmentMember

VIP_RULES = {"combinator": "and", "rules": [{"field": "tags", "operator": "contains", "value": "vip"}]}
PRODUCT_EXAMPLE = {
    "combinator": "and",
    "not": False,
    "rules": [
        {"field": "total_spent", "operator": ">", "value": "1000"},
        {"field": "city", "operator": "in", "value": ["Budapest", "Szeged"]},
        {
            "combinator": "or",
            "rules": [
                {"field": "tags", "operator": "contains", "value": "vip"},
                {"field": "last_order_at", "operator": "inLastDays", "value": 30},
            ],
        },
    ],
}


def ids(dataset, *keys):
    return sorted(dataset.ids[key] for key in keys)


def snapshot():
    return [
        (s.id, s.name, s.description, s.kind, json.dumps(s.rules, sort_keys=True))
        for s in Segment.objects.all()
    ]


def members_of(segment_id):
    return sorted(SegmentMember.objects.filter(segment_id=segment_id).values_list("customer_id", flat=True))


# --- CRUD ----------------------------------------------------------------------------------------
def test_it_creates_a_dynamic_segment_and_answers_with_its_count(api, dataset):
    response = api.post(
        "/api/segments", {"name": " VIPs ", "description": "big spenders", "rules": VIP_RULES}
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["name"] == "VIPs"
    assert body["kind"] == "dynamic"
    assert body["rules"] == VIP_RULES
    assert body["customer_count"] == 3  # anna, cecil, fanni
    assert set(body) == {
        "id",
        "name",
        "description",
        "kind",
        "rules",
        "created_at",
        "updated_at",
        "customer_count",
        "customer_count_at",
    }
    assert Segment.objects.get(pk=body["id"]).rules == VIP_RULES


def test_it_lists_segments_paginated(api, tenant):
    for name in ("b", "a", "c"):
        api.post("/api/segments", {"name": name, "rules": VIP_RULES})
    response = api.get("/api/segments?page_size=2")
    assert response.status_code == 200
    body = response.json()
    assert body["count"] == 3
    assert [item["name"] for item in body["results"]] == ["a", "b"]
    assert body["next"] is not None
    assert "customer_count" not in body["results"][0]


def test_it_shows_the_product_example_with_its_customers(api, dataset):
    segment = api.post("/api/segments", {"name": "example", "rules": PRODUCT_EXAMPLE}).json()
    response = api.get(f"/api/segments/{segment['id']}")
    assert response.status_code == 200
    assert response.json()["customer_count"] == 2
    customers = api.get(f"/api/segments/{segment['id']}/customers").json()
    assert customers["count"] == 2
    assert sorted(item["id"] for item in customers["results"]) == ids(dataset, "anna", "fanni")
    anna = next(item for item in customers["results"] if item["email"] == "anna@example.com")
    assert anna["tags"] == ["newsletter", "VIP"]
    assert anna["total_spent"] == "1500.00"


def test_it_replaces_with_put_and_changes_with_patch(api, dataset):
    segment = api.post("/api/segments", {"name": "s", "description": "d", "rules": VIP_RULES}).json()
    new_rules = {"combinator": "or", "rules": [{"field": "city", "operator": "=", "value": "győr"}]}
    response = api.put(f"/api/segments/{segment['id']}", {"name": "Győr", "rules": new_rules})
    assert response.status_code == 200, response.content
    assert response.json()["customer_count"] == 2
    response = api.patch(f"/api/segments/{segment['id']}", {"description": "from Győr"})
    assert response.status_code == 200
    stored = Segment.objects.get(pk=segment["id"])
    assert (stored.name, stored.description, stored.rules) == ("Győr", "from Győr", new_rules)


def test_it_refuses_a_put_without_a_name_and_changes_nothing(api, tenant):
    segment = api.post("/api/segments", {"name": "s", "rules": VIP_RULES}).json()
    before = snapshot()
    response = api.put(f"/api/segments/{segment['id']}", {"rules": VIP_RULES})
    assert response.status_code == 400
    assert response.json() == {"name": ["This field is required."]}
    assert snapshot() == before


def test_it_deletes_a_segment(api, tenant):
    segment = api.post("/api/segments", {"name": "s", "rules": VIP_RULES}).json()
    assert api.delete(f"/api/segments/{segment['id']}").status_code == 204
    assert not Segment.objects.filter(pk=segment["id"]).exists()
    assert api.get(f"/api/segments/{segment['id']}").status_code == 404


def test_it_answers_404_for_another_tenants_segment_and_changes_nothing(api, api_b, tenant, dataset):
    segment = api.post("/api/segments", {"name": "mine", "rules": VIP_RULES}).json()
    before = snapshot()
    with schema_context("tenant_b"):
        assert not Segment.objects.filter(pk=segment["id"]).exists()
    url = f"/api/segments/{segment['id']}"
    assert api_b.get(url).status_code == 404
    assert api_b.patch(url, {"name": "theirs"}).status_code == 404
    assert api_b.delete(url).status_code == 404
    assert api_b.get(f"{url}/customers").status_code == 404
    assert api_b.post(f"{url}/freeze", {}).status_code == 404
    connection.set_tenant(tenant)  # the requests left the connection on tenant B
    assert snapshot() == before


def test_it_requires_authentication(anon_api, tenant):
    assert anon_api.get("/api/segments").status_code == 401
    assert anon_api.post("/api/segments/preview", {"rules": VIP_RULES}).status_code == 401


# --- bad input: a 400 naming the path, never a 500, nothing saved --------------------------------
def _nested(depth):
    node = {"field": "city", "operator": "=", "value": "x"}
    for _ in range(depth):
        node = {"combinator": "and", "rules": [node]}
    return node


DEEP_PATH = ".".join(["rules[0]"] * 20)
BAD_RULES = [
    (
        {"combinator": "and", "rules": [{"field": "shoe_size", "operator": "=", "value": "42"}]},
        ["rules[0].field: unknown field 'shoe_size'"],
    ),
    (
        {
            "combinator": "and",
            "rules": [
                {"field": "city", "operator": "null"},
                {"field": "city", "operator": "null"},
                {
                    "combinator": "or",
                    "rules": [{"field": "total_spent", "operator": "beginsWith", "value": "1"}],
                },
            ],
        },
        ["rules[2].rules[0].operator: 'beginsWith' is not valid for total_spent"],
    ),
    (
        {"combinator": "and", "rules": [{"field": "total_spent", "operator": ">", "value": "lots"}]},
        ["rules[0].value: 'lots' is not a number"],
    ),
    (
        {"combinator": "and", "rules": [{"combinator": "or", "rules": []}]},
        ["rules[0].rules: must not be empty"],
    ),
    # 25 groups are 52 levels of JSON: within the parser's 64, so the rule validator names the path.
    (_nested(25), [f"{DEEP_PATH}: groups nest deeper than 20 levels"]),
    (
        {"combinator": "or", "rules": [{"field": "city", "operator": "null"}] * 10_000},
        ["rules[1000]: a segment has at most 1000 rules"],
    ),
    (
        {"combinator": "or", "rules": [{"field": "city", "operator": "=", "value": "x" * 1024 * 1024}]},
        ["rules[0].value: is longer than 1000 characters"],
    ),
    ("city = Budapest", ["must be a group: an object with 'combinator' and 'rules'"]),
]


@pytest.mark.parametrize("rules, messages", BAD_RULES, ids=[str(index) for index in range(len(BAD_RULES))])
def test_it_refuses_bad_rules_on_create_naming_the_path(api, tenant, rules, messages):
    before = snapshot()
    response = api.post("/api/segments", {"name": "bad", "rules": rules})
    assert response.status_code == 400
    assert response.json() == {"rules": messages}
    assert snapshot() == before


@pytest.mark.parametrize("rules, messages", BAD_RULES[:5], ids=[str(index) for index in range(5)])
def test_it_refuses_bad_rules_on_update_and_keeps_the_old_ones(api, tenant, rules, messages):
    segment = api.post("/api/segments", {"name": "good", "rules": VIP_RULES}).json()
    before = snapshot()
    response = api.patch(f"/api/segments/{segment['id']}", {"name": "renamed", "rules": rules})
    assert response.status_code == 400
    assert response.json() == {"rules": messages}
    assert snapshot() == before


@pytest.mark.parametrize("rules, messages", BAD_RULES, ids=[str(index) for index in range(len(BAD_RULES))])
def test_it_refuses_bad_rules_in_a_preview(api, tenant, rules, messages):
    response = api.post("/api/segments/preview", {"rules": rules})
    assert response.status_code == 400
    assert response.json() == {"rules": messages}


@pytest.mark.parametrize(
    "body, expected",
    [
        ({"name": "", "rules": VIP_RULES}, {"name": ["This field may not be blank."]}),
        (
            {"name": "x" * 201, "rules": VIP_RULES},
            {"name": ["Ensure this field has no more than 200 characters."]},
        ),
        ({"name": "x"}, {"rules": ["A dynamic segment needs rules."]}),
        ({"name": "x", "rules": None}, {"rules": ["A dynamic segment needs rules."]}),
        (
            {"name": "x", "kind": "static", "rules": VIP_RULES},
            {"rules": ["A static segment has no rules (it is a list of customers)."]},
        ),
        ({"name": "x", "kind": "fuzzy", "rules": VIP_RULES}, {"kind": ['"fuzzy" is not a valid choice.']}),
        ({"name": "x", "rules": VIP_RULES, "colour": "red"}, {"colour": ["Unknown field."]}),
        ({"name": "a\x00b", "rules": VIP_RULES}, {"name": ["Null characters are not allowed."]}),
        ([1, 2], {"non_field_errors": ["Expected a JSON object, got list."]}),
        (
            {"name": "x", "kind": "static", "customer_ids": [999999999]},
            {"customer_ids": ["No such customers: 999999999."]},
        ),
        (
            {"name": "x", "rules": VIP_RULES, "customer_ids": [1]},
            {"customer_ids": ["Only a static segment has a member list."]},
        ),
    ],
)
def test_it_refuses_bad_segment_input_and_saves_nothing(api, tenant, body, expected):
    before = snapshot()
    response = api.post("/api/segments", body)
    assert response.status_code == 400
    assert response.json() == expected
    assert snapshot() == before


def test_it_refuses_to_change_the_kind(api, tenant):
    segment = api.post("/api/segments", {"name": "s", "rules": VIP_RULES}).json()
    before = snapshot()
    response = api.patch(f"/api/segments/{segment['id']}", {"kind": "static"})
    assert response.status_code == 400
    assert response.json() == {
        "kind": ["The kind of a segment cannot change; freeze a dynamic segment into a static one."]
    }
    assert snapshot() == before


def test_it_refuses_a_body_over_the_api_limit_and_json_nested_beyond_reason(api, tenant, settings):
    before = snapshot()
    huge = json.dumps(
        {"name": "x", "description": "y" * (settings.API_MAX_BODY_BYTES + 1), "rules": VIP_RULES}
    )
    response = api.generic("POST", "/api/segments", huge, content_type="application/json")
    assert response.status_code == 413
    deep = '{"name": "x", "rules": ' + "[" * 100_000 + "]" * 100_000 + "}"
    response = api.generic("POST", "/api/segments", deep, content_type="application/json")
    assert response.status_code == 400
    assert response.json() == {"non_field_errors": ["The JSON nests deeper than 64 levels."]}
    response = api.generic("POST", "/api/segments", "{not json", content_type="application/json")
    assert response.status_code == 400
    assert snapshot() == before


# --- preview -------------------------------------------------------------------------------------
def test_it_previews_a_count_and_a_sample_of_up_to_10(api, dataset):
    response = api.post("/api/segments/preview", {"rules": VIP_RULES})
    assert response.status_code == 200
    body = response.json()
    assert body["count"] == 3
    assert [item["id"] for item in body["sample"]] == sorted(
        ids(dataset, "anna", "cecil", "fanni"), reverse=True
    )
    everyone = {"combinator": "or", "rules": [{"field": "email", "operator": "notNull"}]}
    Customer.objects.bulk_create([Customer(email=f"extra{index}@example.com") for index in range(5)])
    body = api.post("/api/segments/preview", {"rules": everyone}).json()
    assert body["count"] == 13
    assert len(body["sample"]) == 10


@pytest.mark.parametrize("walk_rows", [0, 10**9], ids=["narrow: sorts the matches", "broad: walks the ids"])
def test_it_samples_the_newest_matches_whichever_way_it_reads_them(api, dataset, monkeypatch, walk_rows):
    # The sample's query depends on how many match (segments.selectors.PREVIEW_WALK_ROWS): both
    # shapes give the same newest ten.
    monkeypatch.setattr("segments.selectors.PREVIEW_WALK_ROWS", walk_rows)
    Customer.objects.bulk_create([Customer(email=f"extra{index}@example.com") for index in range(15)])
    matchable = Customer.objects.filter(erased_at__isnull=True)
    newest = list(matchable.order_by("-id").values_list("id", flat=True)[:10])
    everyone = {"combinator": "or", "rules": [{"field": "email", "operator": "notNull"}]}
    body = api.post("/api/segments/preview", {"rules": everyone}).json()
    assert body["count"] == matchable.count()
    assert [item["id"] for item in body["sample"]] == newest
    body = api.post("/api/segments/preview", {"rules": VIP_RULES}).json()
    assert [item["id"] for item in body["sample"]] == sorted(
        ids(dataset, "anna", "cecil", "fanni"), reverse=True
    )


def test_it_previews_no_sample_when_nothing_matches(api, dataset):
    nobody = {
        "combinator": "and",
        "rules": [{"field": "tags", "operator": "contains", "value": "no-such-tag"}],
    }
    assert api.post("/api/segments/preview", {"rules": nobody}).json() | {"milliseconds": 0} == {
        "count": 0,
        "sample": [],
        "milliseconds": 0,
    }


def test_it_refuses_a_preview_without_rules(api, tenant):
    response = api.post("/api/segments/preview", {})
    assert response.status_code == 400
    assert response.json() == {"rules": ["This field is required."]}


# --- a segment's customers: paginated, filtered, ordered like the customer list -------------------
def test_it_lists_a_segments_customers_with_the_customer_lists_filters(api, dataset):
    everyone = {"combinator": "and", "rules": [{"field": "email", "operator": "notNull"}]}
    segment = api.post("/api/segments", {"name": "all", "rules": everyone}).json()
    url = f"/api/segments/{segment['id']}/customers"

    def keys(query):
        response = api.get(url + query)
        assert response.status_code == 200, response.content
        return [dataset.keys_by_id[item["id"]] for item in response.json()["results"]]

    assert keys("?ordering=-total_spent&page_size=3") == ["fanni", "anna", "hanna"]
    assert api.get(url + "?page_size=3").json()["count"] == 8
    assert sorted(keys("?city=GYŐR")) == ["bela", "cecil"]
    assert sorted(keys("?tag=vip")) == ["anna", "cecil", "fanni"]
    assert sorted(keys("?country=hu&email_marketing=true")) == ["anna", "cecil", "erik"]
    assert sorted(keys("?total_spent_min=1000&total_spent_max=1000.01")) == ["cecil", "hanna"]
    assert sorted(keys("?created_after=2024-01-01T00:00:00Z&created_before=2024-02-01T00:00:00Z")) == [
        "cecil",
        "erik",
    ]
    assert keys("?search=kovács") == ["anna"]
    assert keys("?ordering=email&page_size=2") == ["anna", "bela"]


def test_it_filters_searches_and_orders_exactly_as_the_customer_list_does(api, dataset):
    """One filter set for both lists: the same query string gives the same customers, in the same order,
    and the same refusals."""
    everyone = {"combinator": "and", "rules": [{"field": "email", "operator": "notNull"}]}
    segment = api.post("/api/segments", {"name": "all", "rules": everyone}).json()
    created = sorted(
        Customer.objects.filter(pk__in=dataset.ids.values()).values_list("created_at", flat=True)
    )
    boundary = created[len(created) // 2].isoformat().replace("+00:00", "Z")
    queries = [
        f"?created_before={boundary}",  # exclusive in both
        f"?created_after={boundary}",
        "?tag=vip,newsletter",  # every tag named
        "?tag=VIP",
        "?country=HU&ordering=-total_spent",
        "?search=kov",
        "?search=gy%C5%91r",
        "?ordering=city,-last_order_at",
    ]
    for query in queries:
        from_list = api.get("/api/customers" + query)
        from_segment = api.get(f"/api/segments/{segment['id']}/customers" + query)
        assert from_list.status_code == from_segment.status_code == 200, query
        erased = dataset.ids["gabor"]  # the customer list keeps the anonymised row; no segment matches it
        assert [item["id"] for item in from_segment.json()["results"]] == [
            item["id"] for item in from_list.json()["results"] if item["id"] != erased
        ], query
    for query in ("?country=Hungary", "?email_marketing=perhaps", "?ordering=password"):
        from_list = api.get("/api/customers" + query)
        from_segment = api.get(f"/api/segments/{segment['id']}/customers" + query)
        assert from_list.status_code == from_segment.status_code == 400, query
        assert from_segment.json() == from_list.json(), query


def test_it_refuses_bad_filters_on_a_segments_customers(api, dataset):
    segment = api.post("/api/segments", {"name": "vip", "rules": VIP_RULES}).json()
    response = api.get(f"/api/segments/{segment['id']}/customers?total_spent_min=lots")
    assert response.status_code == 400
    assert response.json() == {"total_spent_min": ["Enter a number."]}
    response = api.get(f"/api/segments/{segment['id']}/customers?city=a%00b")
    assert response.status_code == 400


# --- static segments: members, freeze -------------------------------------------------------------
def test_it_adds_and_removes_members_of_a_static_segment(api, dataset):
    response = api.post(
        "/api/segments", {"name": "list", "kind": "static", "customer_ids": ids(dataset, "anna", "bela")}
    )
    assert response.status_code == 201, response.content
    segment = response.json()
    assert segment["customer_count"] == 2
    assert segment["rules"] is None
    url = f"/api/segments/{segment['id']}/members"
    response = api.post(url, {"add": ids(dataset, "cecil", "anna"), "remove": ids(dataset, "bela", "dora")})
    assert response.status_code == 200, response.content
    assert response.json() == {"added": 1, "removed": 1, "member_count": 2}
    assert members_of(segment["id"]) == ids(dataset, "anna", "cecil")
    customers = api.get(f"/api/segments/{segment['id']}/customers").json()
    assert sorted(item["id"] for item in customers["results"]) == ids(dataset, "anna", "cecil")
    assert api.get(f"/api/segments/{segment['id']}").json()["customer_count"] == 2


@pytest.mark.parametrize(
    "body, expected",
    [
        ({"add": [999999999]}, {"add": ["No such customers: 999999999."]}),
        ({"add": ["gabor"]}, {"add": {"0": ["A valid integer is required."]}}),
        ({"add": "1,2"}, {"add": ['Expected a list of items but got type "str".']}),
        ({"remove": [0]}, {"remove": {"0": ["Ensure this value is greater than or equal to 1."]}}),
        ({"drop": [1]}, {"drop": ["Unknown field."]}),
    ],
)
def test_it_refuses_bad_member_changes_and_changes_nothing(api, dataset, body, expected):
    segment = api.post(
        "/api/segments", {"name": "list", "kind": "static", "customer_ids": ids(dataset, "anna")}
    ).json()
    before = snapshot()
    response = api.post(f"/api/segments/{segment['id']}/members", body)
    assert response.status_code == 400
    assert response.json() == expected
    assert members_of(segment["id"]) == ids(dataset, "anna")
    assert snapshot() == before


def test_it_refuses_to_add_an_erased_customer_or_one_added_and_removed_at_once(api, dataset):
    segment = api.post("/api/segments", {"name": "list", "kind": "static"}).json()
    url = f"/api/segments/{segment['id']}/members"
    response = api.post(url, {"add": ids(dataset, "anna", "gabor")})
    assert response.status_code == 400
    assert response.json() == {"add": [f"No such customers: {dataset.ids['gabor']}."]}
    response = api.post(url, {"add": ids(dataset, "anna"), "remove": ids(dataset, "anna")})
    assert response.status_code == 400
    assert members_of(segment["id"]) == []


def test_it_refuses_another_tenants_customer_as_a_member(api, tenant, dataset):
    # Ids are per schema: take a tenant B customer whose id means nobody in tenant A.
    taken = set(Customer.objects.values_list("id", flat=True))
    with schema_context("tenant_b"):
        stranger = Customer.objects.create(email="stranger@example.com")
        while stranger.id in taken:
            stranger = Customer.objects.create(email=f"stranger{stranger.id}@example.com")
    connection.set_tenant(tenant)
    segment = api.post("/api/segments", {"name": "list", "kind": "static"}).json()
    response = api.post(f"/api/segments/{segment['id']}/members", {"add": [stranger.id]})
    assert response.status_code == 400
    assert response.json() == {"add": [f"No such customers: {stranger.id}."]}
    assert members_of(segment["id"]) == []


def test_it_answers_409_for_members_of_a_dynamic_segment(api, dataset):
    segment = api.post("/api/segments", {"name": "vip", "rules": VIP_RULES}).json()
    response = api.post(f"/api/segments/{segment['id']}/members", {"add": ids(dataset, "dora")})
    assert response.status_code == 409
    assert response.json() == {"detail": "Only a static segment has a member list; this one is dynamic."}
    assert SegmentMember.objects.count() == 0


def test_it_freezes_the_current_result_into_a_static_segment(api, dataset):
    segment = api.post("/api/segments", {"name": "VIPs", "rules": VIP_RULES}).json()
    response = api.post(f"/api/segments/{segment['id']}/freeze", {"name": "VIPs in June"})
    assert response.status_code == 201, response.content
    frozen = response.json()
    assert (frozen["name"], frozen["kind"], frozen["rules"], frozen["customer_count"]) == (
        "VIPs in June",
        "static",
        None,
        3,
    )
    assert members_of(frozen["id"]) == ids(dataset, "anna", "cecil", "fanni")
    # Later changes to who matches leave the frozen list alone.
    Customer.objects.filter(pk=dataset.ids["anna"]).update(erased_at="2026-01-01T00:00:00Z", email=None)
    Customer.objects.get(pk=dataset.ids["dora"]).tags.add(
        *Customer.objects.get(pk=dataset.ids["cecil"]).tags.all()
    )
    assert members_of(frozen["id"]) == ids(dataset, "anna", "cecil", "fanni")
    default_name = api.post(f"/api/segments/{segment['id']}/freeze", {}).json()["name"]
    assert default_name.startswith("VIPs (") and default_name.endswith(" UTC)")


def test_it_refuses_a_bad_freeze_and_creates_nothing(api, dataset):
    segment = api.post("/api/segments", {"name": "VIPs", "rules": VIP_RULES}).json()
    before = snapshot()
    response = api.post(f"/api/segments/{segment['id']}/freeze", {"name": ""})
    assert response.status_code == 400
    assert response.json() == {"name": ["This field may not be blank."]}
    assert snapshot() == before


# --- the count: cached briefly per tenant, refreshed on demand ------------------------------------
def test_it_caches_the_count_briefly_and_refreshes_on_demand(api, dataset, redis_service):
    segment = api.post("/api/segments", {"name": "VIPs", "rules": VIP_RULES}).json()
    assert segment["customer_count"] == 3
    Customer.objects.get(pk=dataset.ids["dora"]).tags.add(
        *Customer.objects.get(pk=dataset.ids["cecil"]).tags.all()
    )
    assert api.get(f"/api/segments/{segment['id']}").json()["customer_count"] == 3
    refreshed = api.get(f"/api/segments/{segment['id']}?refresh=true").json()
    assert refreshed["customer_count"] == 4
    assert api.get(f"/api/segments/{segment['id']}").json()["customer_count"] == 4
    assert api.get(f"/api/segments/{segment['id']}?refresh=maybe").status_code == 400


def test_it_recounts_as_soon_as_the_rules_change(api, dataset):
    segment = api.post("/api/segments", {"name": "VIPs", "rules": VIP_RULES}).json()
    gyor = {"combinator": "and", "rules": [{"field": "city", "operator": "=", "value": "Győr"}]}
    assert api.patch(f"/api/segments/{segment['id']}", {"rules": gyor}).json()["customer_count"] == 2


def test_it_documents_the_segment_endpoints_in_the_schema(api, tenant):
    response = api.get("/api/schema/?format=json")
    assert response.status_code == 200
    paths = response.json()["paths"]
    for path in (
        "/api/segments",
        "/api/segments/{id}",
        "/api/segments/{id}/customers",
        "/api/segments/preview",
        "/api/segments/{id}/members",
        "/api/segments/{id}/freeze",
    ):
        assert path in paths
    assert set(paths["/api/segments"]["post"]["responses"]) >= {"201", "400", "401", "413"}
    assert set(paths["/api/segments/{id}/members"]["post"]["responses"]) >= {
        "200",
        "400",
        "404",
        "409",
        "401",
    }


def test_it_answers_409_when_a_higher_app_guards_the_delete(api, tenant, monkeypatch):
    def in_use(*, segment):
        raise ValidationError("A scheduled campaign sends to this segment.")

    monkeypatch.setattr(services, "DELETE_GUARDS", [in_use])
    segment = api.post("/api/segments", {"name": "s", "rules": VIP_RULES}).json()
    response = api.delete(f"/api/segments/{segment['id']}")
    assert response.status_code == 409
    assert response.json() == {"detail": "A scheduled campaign sends to this segment."}
    assert Segment.objects.filter(pk=segment["id"]).exists()


def test_it_treats_put_as_a_replacement(api, tenant):
    segment = api.post("/api/segments", {"name": "s", "description": "old", "rules": VIP_RULES}).json()
    before = snapshot()
    response = api.put(f"/api/segments/{segment['id']}", {"name": "s2"})
    assert response.status_code == 400
    assert response.json() == {"rules": ["A dynamic segment needs rules."]}
    assert snapshot() == before
    response = api.put(f"/api/segments/{segment['id']}", {"name": "s2", "rules": VIP_RULES})
    assert response.status_code == 200
    assert response.json()["description"] == ""
