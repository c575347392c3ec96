from django_tenants.utils import schema_context

from customers.models import Customer
from tests.conftest import make_api_client


def test_it_refuses_a_token_of_tenant_a_on_tenant_b(api, other_tenant):
    client_b = make_api_client(other_tenant)
    client_b.credentials(HTTP_AUTHORIZATION=f"Token {api.token}")
    assert client_b.post("/api/auth/token/current").status_code in (401, 405)
    response = client_b.get("/api/schema/")
    assert response.status_code == 200  # the schema is public
    response = client_b.delete("/api/auth/token/current")
    assert response.status_code == 401


def test_it_answers_404_for_an_unknown_host(client, db):
    assert client.get("/healthz", HTTP_HOST="nobody.localhost").status_code == 404
    assert client.get("/api/schema/", HTTP_HOST="nobody.localhost").status_code == 404


def test_it_keeps_tenant_rows_in_their_schema(tenant, other_tenant):
    Customer.objects.create(email="only-in-a@example.com")
    assert Customer.objects.filter(email="only-in-a@example.com").count() == 1
    with schema_context(other_tenant.schema_name):
        assert Customer.objects.filter(email="only-in-a@example.com").count() == 0


def test_it_serves_no_tenant_data_on_the_public_host(client, db):
    assert client.get("/api/schema/", HTTP_HOST="localhost").status_code == 404
    assert client.get("/healthz", HTTP_HOST="localhost").status_code in (200, 503)
