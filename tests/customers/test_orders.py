from decimal import Decimal

import pytest

from customers import hooks
from customers.models import Customer, Interaction, Order, OrderItem
from events.models import OutboxEvent

from .conftest import events


def snapshot():
    return (
        list(Customer.objects.order_by("id").values()),
        list(Order.objects.order_by("id").values()),
        list(OrderItem.objects.order_by("id").values()),
        list(Interaction.objects.order_by("id").values()),
        OutboxEvent.objects.count(),
    )


def aggregates(customer_id):
    c = Customer.objects.get(pk=customer_id)
    return (
        str(c.total_spent),
        c.order_count,
        c.first_order_at and c.first_order_at.isoformat(),
        c.last_order_at and c.last_order_at.isoformat(),
    )


@pytest.fixture
def recorded(monkeypatch):
    calls = []
    monkeypatch.setattr(hooks, "order_recorded", [lambda **kw: calls.append(("recorded", kw))])
    monkeypatch.setattr(hooks, "order_status_changed", [lambda **kw: calls.append(("status", kw))])
    return calls


def post_order(api, **fields):
    payload = {
        "external_id": "o-1",
        "customer_email": "ann@example.com",
        "total": "100.00",
        "placed_at": "2025-03-01T10:00:00Z",
        **fields,
    }
    return api.post("/api/orders", payload, format="json")


def test_it_records_an_order_and_creates_the_unknown_customer(
    api, recorded, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = post_order(
            api,
            customer_external_id="ws-9",
            number="1001",
            status="paid",
            currency="eur",
            items=[{"sku": "A-1", "name": "Mug", "quantity": 2, "unit_price": "50.00"}],
        )
    assert response.status_code == 201, response.content
    body = response.json()
    customer = Customer.objects.get(email="ann@example.com")
    assert customer.external_id == "ws-9"
    assert body | {"id": 0, "created_at": "", "updated_at": "", "items": []} == {
        "id": 0,
        "external_id": "o-1",
        "customer": customer.pk,
        "number": "1001",
        "status": "paid",
        "currency": "EUR",
        "total": "100.00",
        "placed_at": "2025-03-01T10:00:00Z",
        "items": [],
        "attribution": None,
        "created_at": "",
        "updated_at": "",
    }
    assert [(i["sku"], i["quantity"], i["unit_price"]) for i in body["items"]] == [("A-1", 2, "50.00")]
    assert aggregates(customer.pk) == ("100.00", 1, "2025-03-01T10:00:00+00:00", "2025-03-01T10:00:00+00:00")
    assert [e[0] for e in events()] == ["customer.created"]
    assert list(Interaction.objects.filter(customer=customer).values_list("kind", "body")) == [
        ("order_placed", "Order 1001 placed: 100.00 EUR")
    ]
    assert recorded == [("recorded", {"order_id": body["id"], "created": True})]


def test_it_is_idempotent_on_redelivery(api, recorded, django_capture_on_commit_callbacks):
    first = post_order(api).json()
    before = (aggregates(first["customer"]), Interaction.objects.count(), Order.objects.count())
    with django_capture_on_commit_callbacks(execute=True):
        again = post_order(api, customer_email="ANN@example.com")
    assert again.status_code == 200
    assert again.json()["id"] == first["id"]
    assert (aggregates(first["customer"]), Interaction.objects.count(), Order.objects.count()) == before
    assert recorded == [("recorded", {"order_id": first["id"], "created": False})]


def test_it_keeps_aggregates_exact_through_status_changes(api, recorded, django_capture_on_commit_callbacks):
    a = post_order(api, external_id="a", total="100.00", placed_at="2025-01-01T00:00:00Z").json()
    post_order(api, external_id="b", total="50.50", placed_at="2025-02-01T00:00:00Z")
    c = post_order(api, external_id="c", total="10.00", placed_at="2025-03-01T00:00:00Z").json()
    cid = a["customer"]
    assert aggregates(cid) == ("160.50", 3, "2025-01-01T00:00:00+00:00", "2025-03-01T00:00:00+00:00")

    with django_capture_on_commit_callbacks(execute=True):
        response = api.patch(f"/api/orders/{c['id']}", {"status": "cancelled"}, format="json")
    assert response.status_code == 200
    assert response.json()["status"] == "cancelled"
    assert aggregates(cid) == ("150.50", 2, "2025-01-01T00:00:00+00:00", "2025-02-01T00:00:00+00:00")
    assert recorded == [("status", {"order_id": c["id"], "old": "pending", "new": "cancelled"})]

    api.patch(f"/api/orders/{a['id']}", {"status": "refunded"}, format="json")
    assert aggregates(cid) == ("50.50", 1, "2025-02-01T00:00:00+00:00", "2025-02-01T00:00:00+00:00")

    post_order(api, external_id="b", total="50.50", status="refunded", placed_at="2025-02-01T00:00:00Z")
    assert aggregates(cid) == ("0.00", 0, None, None)

    api.patch(f"/api/orders/{c['id']}", {"status": "shipped"}, format="json")
    assert aggregates(cid) == ("10.00", 1, "2025-03-01T00:00:00+00:00", "2025-03-01T00:00:00+00:00")
    kinds = list(
        Interaction.objects.filter(customer_id=cid, kind="order_status").values_list("body", flat=True)
    )
    assert sorted(kinds) == sorted(
        [
            "Order c: pending → cancelled",
            "Order a: pending → refunded",
            "Order b: pending → refunded",
            "Order c: cancelled → shipped",
        ]
    )


def test_it_does_nothing_when_the_status_is_unchanged(api, recorded, django_capture_on_commit_callbacks):
    order = post_order(api).json()
    before = snapshot()
    with django_capture_on_commit_callbacks(execute=True):
        response = api.patch(f"/api/orders/{order['id']}", {"status": "pending"}, format="json")
    assert response.status_code == 200
    assert snapshot() == before
    assert recorded == []


def test_it_attaches_orders_to_a_customer_by_id(api, customer_factory):
    customer = customer_factory(email="bob@example.com")
    response = api.post(
        "/api/orders", {"external_id": "x", "customer": customer.pk, "total": "5"}, format="json"
    )
    assert response.status_code == 201
    assert response.json()["customer"] == customer.pk
    assert aggregates(customer.pk)[:2] == ("5.00", 1)


def test_it_computes_a_missing_total_from_the_items(api, tenant):
    response = post_order(
        api, total=None, items=[{"sku": "A", "quantity": 3, "unit_price": "2.50"}, {"sku": "B"}]
    )
    assert response.status_code == 400  # total: null is not a decimal
    payload = {
        "external_id": "o-2",
        "customer_email": "ann@example.com",
        "items": [{"sku": "A", "quantity": 3, "unit_price": "2.50"}, {"sku": "B", "unit_price": "1"}],
    }
    response = api.post("/api/orders", payload, format="json")
    assert response.status_code == 201
    assert response.json()["total"] == "8.50"


@pytest.mark.parametrize(
    "fields, errors",
    [
        (
            {"items": [{"sku": "A", "quantity": -1}]},
            {"items": {"0": {"quantity": ["Ensure this value is greater than or equal to 1."]}}},
        ),
        (
            {"items": [{"sku": "A", "quantity": 0}]},
            {"items": {"0": {"quantity": ["Ensure this value is greater than or equal to 1."]}}},
        ),
        ({"items": [{"quantity": 1}]}, {"items": {"0": {"sku": ["This field is required."]}}}),
        ({"total": "-1.00"}, {"total": ["Ensure this value is greater than or equal to 0."]}),
        ({"total": "abc"}, {"total": ["A valid number is required."]}),
        ({"status": "lost"}, {"status": ['"lost" is not a valid choice.']}),
        ({"currency": "EURO"}, {"currency": ["A currency is a 3-letter ISO 4217 code."]}),
        ({"customer_email": "nope"}, {"customer_email": ["'nope' is not a valid email address."]}),
        ({"customer_email": None}, {"customer_email": ["This field may not be null."]}),
        (
            {"placed_at": "yesterday"},
            {
                "placed_at": [
                    "Datetime has wrong format. Use one of these formats instead: YYYY-MM-DDThh:mm[:ss[.uuuuuu]][+HH:MM|-HH:MM|Z]."
                ]
            },
        ),
        ({"coupon": "X"}, {"coupon": ["Unknown field."]}),
        ({"number": "1\x00"}, {"number": ["Null characters are not allowed."]}),
        ({"customer": 999999, "customer_email": None}, {"customer_email": ["This field may not be null."]}),
    ],
)
def test_it_refuses_bad_orders_and_writes_nothing(api, tenant, fields, errors):
    before = snapshot()
    response = post_order(api, **fields)
    assert response.status_code == 400
    assert response.json() == errors
    assert snapshot() == before


def test_it_refuses_an_order_without_a_customer_reference(api, tenant):
    before = snapshot()
    response = api.post("/api/orders", {"external_id": "x", "total": "1"}, format="json")
    assert response.status_code == 400
    assert response.json() == {
        "customer": ["Give `customer` (an id), `customer_email` or `customer_external_id`."]
    }
    response = api.post("/api/orders", {"external_id": "x", "total": "1", "customer": 999999}, format="json")
    assert response.json() == {"customer": ["There is no customer with id 999999."]}
    response = api.post(
        "/api/orders", {"external_id": "x", "total": "1", "customer_external_id": "nobody"}, format="json"
    )
    assert response.json() == {
        "customer_email": ["Required to create the customer of an unknown customer_external_id."]
    }
    assert snapshot() == before


def test_it_refuses_moving_an_order_to_another_customer(api, customer_factory):
    post_order(api)
    before = snapshot()
    response = post_order(api, customer_email="bob@example.com")
    assert response.status_code == 400
    assert "belongs to another customer" in response.json()["customer"][0]
    assert snapshot() == before


def test_it_refuses_bad_status_changes(api, tenant):
    order = post_order(api).json()
    before = snapshot()
    for payload in ({"status": "lost"}, {"status": "paid", "total": "1"}, {}):
        assert api.patch(f"/api/orders/{order['id']}", payload, format="json").status_code == 400
    assert api.patch("/api/orders/999999", {"status": "paid"}, format="json").status_code == 404
    assert snapshot() == before


def test_it_lists_a_customers_orders_newest_first(api, tenant):
    post_order(api, external_id="old", placed_at="2024-01-01T00:00:00Z")
    post_order(api, external_id="new", placed_at="2025-01-01T00:00:00Z")
    cid = Customer.objects.get(email="ann@example.com").pk
    body = api.get(f"/api/customers/{cid}/orders").json()
    assert body["count"] == 2
    assert [o["external_id"] for o in body["results"]] == ["new", "old"]


def test_it_upserts_orders_in_bulk_item_by_item(api, tenant):
    response = api.post(
        "/api/orders/bulk",
        [
            {"external_id": "a", "customer_email": "ann@example.com", "total": "10"},
            {
                "external_id": "b",
                "customer_email": "ann@example.com",
                "items": [{"sku": "x", "quantity": -2}],
            },
            {"external_id": "a", "customer_email": "ann@example.com", "total": "10", "status": "paid"},
        ],
        format="json",
    )
    assert response.status_code == 200
    body = response.json()
    order_id = Order.objects.get(external_id="a").pk
    assert body == {
        "created": 1,
        "updated": 1,
        "unchanged": 0,
        "failed": 1,
        "results": [
            {"index": 0, "status": "created", "id": order_id},
            {
                "index": 1,
                "status": "error",
                "id": None,
                "errors": {
                    "items": {"0": {"quantity": ["Ensure this value is greater than or equal to 1."]}}
                },
            },
            {"index": 2, "status": "updated", "id": order_id},
        ],
    }
    assert not Order.objects.filter(external_id="b").exists()
    assert aggregates(Customer.objects.get(email="ann@example.com").pk)[:2] == ("10.00", 1)


def test_it_reads_one_order(api, tenant):
    order = post_order(api).json()
    assert api.get(f"/api/orders/{order['id']}").json() == order
    assert Decimal(order["total"]) == Decimal("100")


def test_it_refuses_items_adding_up_beyond_the_largest_total(api, tenant):
    before = snapshot()
    payload = {
        "external_id": "big",
        "customer_email": "ann@example.com",
        "items": [{"sku": "A", "quantity": 1000000, "unit_price": "999999999999.99"}],
    }
    response = api.post("/api/orders", payload, format="json")
    assert response.status_code == 400
    assert response.json() == {"total": ["The items add up to more than 999999999999.99."]}
    assert snapshot() == before


def test_it_answers_success_when_an_after_commit_hook_fails(
    api, monkeypatch, django_capture_on_commit_callbacks
):
    calls = []

    def broken(**kwargs):
        raise RuntimeError("mail server on fire")

    monkeypatch.setattr(hooks, "order_recorded", [broken, lambda **kw: calls.append(kw)])
    with django_capture_on_commit_callbacks(execute=True):
        response = post_order(api)
    assert response.status_code == 201
    assert calls == [{"order_id": response.json()["id"], "created": True}]
