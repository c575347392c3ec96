import pytest

from customers.models import Customer


@pytest.mark.parametrize(
    "path", ["/api/customers", "/api/campaigns", "/api/segments", "/api/orders", "/api/templates"]
)
def test_it_refuses_deeply_nested_json_with_400(api, path):
    body = "[" * 100_000 + "]" * 100_000
    response = api.generic("POST", path, body, content_type="application/json")
    assert response.status_code == 400, response.content[:300]
    assert "nests" in str(response.json())


def test_it_refuses_nul_characters_with_400_and_writes_nothing(api):
    before = Customer.objects.count()
    response = api.post("/api/customers", {"email": "nul@example.com", "first_name": "a\x00b"}, format="json")
    assert response.status_code == 400
    assert Customer.objects.count() == before


def test_it_refuses_a_body_that_is_not_utf8(api):
    response = api.generic(
        "POST", "/api/customers", b'{"email": "\xff\xfe"}', content_type="application/json"
    )
    assert response.status_code == 400


def test_it_refuses_a_non_json_body_with_415(api):
    response = api.generic(
        "POST", "/api/customers", "email=x", content_type="application/x-www-form-urlencoded"
    )
    assert response.status_code == 415
