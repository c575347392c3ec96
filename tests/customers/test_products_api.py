"""`POST /api/products`: the webshop's products (bulk upsert by SKU) for the product cards of emails."""

from decimal import Decimal

from django_tenants.utils import schema_context

from customers.models import Product

ITEM = {
    "sku": "TEA-1",
    "name": "Green tea",
    "url": "https://shop.example/tea-1",
    "image_url": "https://shop.example/tea-1.jpg",
    "price": "9.90",
    "currency": "EUR",
    "in_stock": True,
}


def test_it_creates_then_updates_products_by_sku_in_one_request(api):
    response = api.post("/api/products", [ITEM, {**ITEM, "sku": "TEA-2", "name": "Black tea"}], format="json")
    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["created"], body["updated"], body["failed"]) == (2, 0, 0)
    assert [r["status"] for r in body["results"]] == ["created", "created"]
    again = api.post("/api/products", [{**ITEM, "price": "8.50", "in_stock": False}], format="json").json()
    assert (again["created"], again["updated"]) == (0, 1)
    product = Product.objects.get(sku="TEA-1")
    assert (product.price, product.in_stock, product.name) == (Decimal("8.50"), False, "Green tea")
    assert again["results"][0]["id"] == product.pk
    assert Product.objects.count() == 2


def test_it_reports_each_bad_item_by_field_and_stores_the_good_ones(api):
    items = [
        {**ITEM, "url": "javascript:alert(1)"},
        {**ITEM, "sku": "BAD SKU {{ x }}"},
        {**ITEM, "currency": "euro"},
        {**ITEM, "price": "-1"},
        {**ITEM, "sku": "OK-1"},
        {**ITEM, "sku": "OK-1", "name": "twice"},
    ]
    body = api.post("/api/products", items, format="json").json()
    assert (body["created"], body["failed"]) == (1, 5)
    errors = [r.get("errors", {}) for r in body["results"]]
    assert "url" in errors[0] and "sku" in errors[1] and "currency" in errors[2] and "price" in errors[3]
    assert errors[5] == {"sku": ["Twice in this request."]}
    assert list(Product.objects.values_list("sku", "name")) == [("OK-1", "Green tea")]


def test_it_refuses_a_body_that_is_not_a_list_of_at_most_1000(api):
    assert api.post("/api/products", ITEM, format="json").status_code == 400
    assert api.post("/api/products", [ITEM] * 1001, format="json").status_code == 400
    assert not Product.objects.exists()


def test_it_keeps_each_tenants_products_to_itself(api, api_b, tenant, other_tenant):
    api.post("/api/products", [ITEM], format="json")
    assert api_b.post("/api/products", [{**ITEM, "name": "B's tea"}], format="json").json()["created"] == 1
    with schema_context(tenant.schema_name):
        assert Product.objects.get(sku="TEA-1").name == "Green tea"
    with schema_context(other_tenant.schema_name):
        assert Product.objects.get(sku="TEA-1").name == "B's tea"


def test_it_needs_a_token(anon_api):
    assert anon_api.post("/api/products", [ITEM], format="json").status_code in (401, 403)
