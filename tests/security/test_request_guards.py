import json

from django.core.cache import cache

from customers.models import Customer
from tests.conftest import TENANT_A


def test_it_refuses_an_oversized_api_body_with_413_and_changes_nothing(api, settings):
    settings.API_MAX_BODY_BYTES = 1024
    before = Customer.objects.count()
    body = json.dumps({"email": "big@example.com", "first_name": "x" * 5000})
    response = api.generic("POST", "/api/customers", body, content_type="application/json")
    assert response.status_code == 413
    assert "too large" in response.json()["detail"]
    assert Customer.objects.count() == before


def test_it_throttles_admin_login_after_a_burst_of_failures(client, admin_user, settings):
    settings.LOGIN_MAX_FAILURES = 3
    cache.clear()
    host = TENANT_A["domain"]
    for _ in range(3):
        response = client.post(
            "/admin/login/", {"username": admin_user.username, "password": "wrong"}, HTTP_HOST=host
        )
        assert response.status_code == 200
    response = client.post(
        "/admin/login/", {"username": admin_user.username, "password": "wrong"}, HTTP_HOST=host
    )
    assert response.status_code == 429
    assert int(response["Retry-After"]) > 0
    # Another username from the same address is not locked out.
    response = client.post("/admin/login/", {"username": "someone@else", "password": "wrong"}, HTTP_HOST=host)
    assert response.status_code == 200
    cache.clear()


def test_it_throttles_the_token_endpoint_after_a_burst_of_failures(anon_api, admin_user, settings):
    cache.clear()
    codes = []
    for _ in range(settings.LOGIN_MAX_FAILURES + 1):
        codes.append(
            anon_api.post("/api/auth/token", {"username": admin_user.username, "password": "x"}).status_code
        )
    assert codes[:-1] == [400] * (len(codes) - 1)
    assert codes[-1] == 429
    cache.clear()


def test_it_sends_security_headers(api):
    response = api.get("/api/schema/")
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["X-Frame-Options"] == "DENY"
    assert response["Referrer-Policy"] == "same-origin"


def test_it_allows_cors_only_for_configured_origins(anon_api, settings):
    settings.CORS_ALLOWED_ORIGINS = ["https://shop.example.com"]
    allowed = anon_api.options(
        "/api/customers", HTTP_ORIGIN="https://shop.example.com", HTTP_ACCESS_CONTROL_REQUEST_METHOD="GET"
    )
    assert allowed["Access-Control-Allow-Origin"] == "https://shop.example.com"
    refused = anon_api.options(
        "/api/customers", HTTP_ORIGIN="https://evil.example.com", HTTP_ACCESS_CONTROL_REQUEST_METHOD="GET"
    )
    assert "Access-Control-Allow-Origin" not in refused
