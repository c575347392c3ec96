import json

import pytest

from customers.models import Address, Customer, CustomerTag, Tag
from events.models import OutboxEvent

from .conftest import events


def snapshot():
    return (
        list(Customer.objects.order_by("id").values()),
        list(Address.objects.order_by("id").values()),
        list(CustomerTag.objects.order_by("id").values()),
        list(Tag.objects.order_by("id").values()),
        OutboxEvent.objects.count(),
    )


def test_it_creates_a_customer_normalising_its_fields(api):
    response = api.post(
        "/api/customers",
        {
            "email": "  Ann.Smith@Example.COM ",
            "first_name": " Ann ",
            "last_name": None,
            "country": "hu",
            "tags": ["VIP", "vip", "new"],
            "attributes": {"shoe_size": 38},
            "email_marketing": True,
            "addresses": [
                {"kind": "billing", "line1": "Fő utca 1", "city": "Győr", "country": "hu", "is_default": True}
            ],
        },
        format="json",
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["email"] == "ann.smith@example.com"
    assert (body["first_name"], body["last_name"], body["country"]) == ("Ann", "", "HU")
    assert body["tags"] == ["new", "VIP"]
    assert body["attributes"] == {"shoe_size": 38}
    assert (body["email_marketing"], body["email_transactional"]) == (True, True)
    assert body["addresses"][0] | {"id": 0} == {
        "id": 0,
        "kind": "billing",
        "line1": "Fő utca 1",
        "line2": "",
        "city": "Győr",
        "postal_code": "",
        "country": "HU",
        "is_default": True,
    }
    assert (body["total_spent"], body["order_count"], body["last_order_at"]) == ("0.00", 0, None)
    assert api.get(f"/api/customers/{body['id']}").json() == body


def test_it_emits_customer_created_with_the_api_representation(api):
    body = api.post("/api/customers", {"email": "ann@example.com", "tags": ["a"]}, format="json").json()
    assert events() == [("customer.created", body)]


def test_it_updates_with_patch_and_emits_the_changed_fields(api, customer_factory):
    customer = customer_factory(email="ann@example.com", first_name="Ann", tags=["a"], city="Pécs")
    response = api.patch(
        f"/api/customers/{customer.pk}", {"first_name": "Anna", "tags": ["b"], "city": "Pécs"}, format="json"
    )
    assert response.status_code == 200
    body = response.json()
    assert (body["first_name"], body["city"], body["tags"]) == ("Anna", "Pécs", ["b"])
    assert events("customer.updated") == [("customer.updated", {**body, "changed": ["first_name", "tags"]})]


def test_it_emits_nothing_when_a_patch_changes_nothing(api, customer_factory):
    customer = customer_factory(email="ann@example.com", first_name="Ann")
    before = Customer.objects.get(pk=customer.pk).updated_at
    response = api.patch(
        f"/api/customers/{customer.pk}", {"first_name": "Ann", "email": "ANN@example.com"}, format="json"
    )
    assert response.status_code == 200
    assert events("customer.updated") == []
    assert Customer.objects.get(pk=customer.pk).updated_at == before


def test_it_replaces_everything_with_put(api, customer_factory):
    customer = customer_factory(
        email="ann@example.com",
        first_name="Ann",
        phone="123",
        tags=["a"],
        attributes={"x": 1},
        addresses=[{"kind": "shipping", "line1": "Main 1"}],
    )
    response = api.put(
        f"/api/customers/{customer.pk}", {"email": "ann@example.com", "last_name": "Smith"}, format="json"
    )
    assert response.status_code == 200
    body = response.json()
    assert (body["first_name"], body["last_name"], body["phone"]) == ("", "Smith", "")
    assert (body["tags"], body["attributes"], body["addresses"]) == ([], {}, [])


def test_it_accepts_back_what_it_returned(api, customer_factory):
    customer = customer_factory(
        email="ann@example.com", tags=["a"], addresses=[{"kind": "billing", "line1": "x"}]
    )
    body = api.get(f"/api/customers/{customer.pk}").json()
    response = api.put(f"/api/customers/{customer.pk}", body, format="json")
    assert response.status_code == 200
    assert response.json() == body


@pytest.mark.parametrize(
    "payload, errors",
    [
        ({"email": "not-an-email"}, {"email": ["'not-an-email' is not a valid email address."]}),
        ({"email": ""}, {"email": ["This field may not be blank."]}),
        ({}, {"email": ["This field is required."]}),
        (
            {"email": "new@example.com", "country": "XX"},
            {"country": ["'XX' is not an ISO 3166-1 alpha-2 country code."]},
        ),
        (
            {"email": "new@example.com", "colour": "red", "size": 1},
            {"colour": ["Unknown field."], "size": ["Unknown field."]},
        ),
        (
            {"email": "new@example.com", "first_name": "a\x00b"},
            {"first_name": ["Null characters are not allowed."]},
        ),
        (
            {"email": "new@example.com", "attributes": {"k": "a\x00b"}},
            {"attributes": ["NUL characters are not allowed (at k)."]},
        ),
        (
            {"email": "new@example.com", "attributes": [1, 2]},
            {"attributes": ["Attributes are a JSON object."]},
        ),
        (
            {"email": "new@example.com", "tags": ["a,b"]},
            {"tags": {"0": ["A tag name cannot contain a comma."]}},
        ),
        (
            {"email": "new@example.com", "first_name": "x" * 151},
            {"first_name": ["Ensure this field has no more than 150 characters."]},
        ),
        (
            {"email": "new@example.com", "addresses": [{"kind": "home", "line1": "x"}]},
            {"addresses": {"0": {"kind": ['"home" is not a valid choice.']}}},
        ),
        (
            {"email": "new@example.com", "addresses": [{"kind": "billing", "line1": "x", "country": "ZZ"}]},
            {"addresses": {"0": {"country": ["'ZZ' is not an ISO 3166-1 alpha-2 country code."]}}},
        ),
        (
            {"email": "ANN@EXAMPLE.COM"},
            {"email": ["A customer with the email 'ann@example.com' already exists."]},
        ),
        (
            {"email": "x@example.com", "external_id": "ws-1"},
            {"external_id": ["A customer with the external_id 'ws-1' already exists."]},
        ),
    ],
)
def test_it_refuses_bad_input_and_writes_nothing(api, customer_factory, payload, errors):
    customer_factory(email="ann@example.com", external_id="ws-1", tags=["a"])
    before = snapshot()
    response = api.post("/api/customers", payload, format="json")
    assert response.status_code == 400
    assert response.json() == errors
    assert snapshot() == before


def test_it_refuses_a_duplicate_email_on_update(api, customer_factory):
    customer_factory(email="ann@example.com")
    bob = customer_factory(email="bob@example.com")
    before = snapshot()
    response = api.patch(f"/api/customers/{bob.pk}", {"email": "Ann@Example.com"}, format="json")
    assert response.status_code == 400
    assert response.json() == {"email": ["A customer with the email 'ann@example.com' already exists."]}
    assert snapshot() == before


def test_it_refuses_a_body_that_is_not_json(api, tenant):
    before = snapshot()
    response = api.post("/api/customers", data="email=ann@example.com", content_type="application/json")
    assert response.status_code == 400
    assert "JSON parse error" in response.json()["detail"]
    response = api.post(
        "/api/customers", data="email=ann@example.com", content_type="application/x-www-form-urlencoded"
    )
    assert response.status_code == 415
    response = api.post("/api/customers", [1, 2], format="json")
    assert response.status_code == 400
    assert response.json() == {"non_field_errors": ["Expected a JSON object, got list."]}
    assert snapshot() == before


def test_it_refuses_a_10_mb_body_with_413(api, tenant):
    before = snapshot()
    body = json.dumps({"email": "big@example.com", "attributes": {"blob": "x" * (10 * 1024 * 1024)}})
    response = api.post("/api/customers", data=body, content_type="application/json")
    assert response.status_code == 413
    assert "limit" in response.json()["detail"]
    assert snapshot() == before


def test_it_refuses_to_edit_an_erased_customer(api, customer_factory):
    customer = customer_factory(email="ann@example.com")
    assert api.delete(f"/api/customers/{customer.pk}").status_code == 204
    before = snapshot()
    response = api.patch(f"/api/customers/{customer.pk}", {"first_name": "Ann"}, format="json")
    assert response.status_code == 409
    assert snapshot() == before


def test_it_answers_404_for_unknown_customers(api, tenant):
    for method in ("get", "put", "patch", "delete"):
        assert getattr(api, method)("/api/customers/999999", {}, format="json").status_code == 404
    assert api.get("/api/customers/999999/orders").status_code == 404
    assert api.get("/api/customers/999999/activity").status_code == 404


def test_it_upserts_customers_in_bulk_item_by_item(api, customer_factory):
    ann = customer_factory(email="ann@example.com", external_id="ws-1", first_name="Ann")
    response = api.post(
        "/api/customers/bulk",
        [
            {"email": "new@example.com", "first_name": "New"},
            {"email": "broken"},
            {"external_id": "ws-1", "city": "Szeged"},
            {"email": "ANN@example.com", "city": "Szeged"},
            {"external_id": "ws-unknown"},
            {"email": "x@example.com", "bogus": 1},
        ],
        format="json",
    )
    assert response.status_code == 200
    body = response.json()
    new_id = Customer.objects.get(email="new@example.com").pk
    assert body == {
        "created": 1,
        "updated": 1,
        "unchanged": 1,
        "failed": 3,
        "results": [
            {"index": 0, "status": "created", "id": new_id},
            {
                "index": 1,
                "status": "error",
                "id": None,
                "errors": {"email": ["'broken' is not a valid email address."]},
            },
            {"index": 2, "status": "updated", "id": ann.pk},
            {"index": 3, "status": "unchanged", "id": ann.pk},
            {
                "index": 4,
                "status": "error",
                "id": None,
                "errors": {"email": ["This field is required to create a customer."]},
            },
            {"index": 5, "status": "error", "id": None, "errors": {"bogus": ["Unknown field."]}},
        ],
    }
    assert Customer.objects.get(pk=ann.pk).city == "Szeged"
    assert not Customer.objects.filter(email__in=["broken", "x@example.com"]).exists()


@pytest.mark.parametrize(
    "payload, message",
    [
        ({"email": "a@example.com"}, "Expected a JSON array of items."),
        ([], "Expected at least one item."),
        ([{"email": f"c{i}@example.com"} for i in range(1001)], "At most 1000 items per request, got 1001."),
    ],
)
def test_it_refuses_malformed_bulk_requests(api, tenant, payload, message):
    before = snapshot()
    response = api.post("/api/customers/bulk", payload, format="json")
    assert response.status_code == 400
    assert response.json() == {"non_field_errors": [message]}
    assert snapshot() == before
