"""Tenant A's credentials on tenant B's host: refused everywhere, nothing changed in either tenant."""

import pytest
from django.contrib.sessions.models import Session
from django.db import connection
from django_tenants.utils import schema_context

from customers.models import Customer
from tests.conftest import make_api_client
from tests.tenancy.test_api_auth import PUBLIC, api_paths


def _row_counts(schema):
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT relname, n_live_tup FROM pg_stat_user_tables WHERE schemaname = %s ORDER BY relname",
            [schema],
        )
        tables = [row[0] for row in cursor.fetchall()]
        counts = {}
        for table in tables:
            cursor.execute(f'SELECT count(*) FROM "{schema}"."{table}"')
            counts[table] = cursor.fetchone()[0]
    return counts


@pytest.mark.parametrize("path", [p for p in api_paths() if p not in PUBLIC])
def test_it_refuses_tenant_a_token_on_tenant_b_host_for_every_endpoint(api, other_tenant, path):
    Customer.objects.create(email="a-only@example.com")  # id 1-ish objects exist in A
    before_a, before_b = _row_counts("tenant_a"), _row_counts(other_tenant.schema_name)
    intruder = make_api_client(other_tenant)
    intruder.credentials(HTTP_AUTHORIZATION=f"Token {api.token}")
    for method in ("get", "post", "put", "patch", "delete"):
        response = getattr(intruder, method)(path, {"email": "x@example.com", "name": "x"}, format="json")
        assert response.status_code in (401, 405), (method, path, response.status_code)
    assert _row_counts("tenant_a") == before_a
    assert _row_counts(other_tenant.schema_name) == before_b


def test_it_refuses_tenant_a_session_on_tenant_b_host(client, admin_user, other_tenant):
    client.force_login(admin_user)  # a session in tenant A's schema
    response = client.get("/admin/", HTTP_HOST="tenant-b.localhost")
    assert response.status_code == 302 and "/admin/login/" in response["Location"]
    with schema_context(other_tenant.schema_name):
        assert Session.objects.count() == 0
