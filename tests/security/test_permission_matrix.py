"""Each role against every API operation: allowed exactly what its Django permissions allow; refused
with 403 and nothing changed otherwise (PRODUCT.md "API conventions").

The operations come from the OpenAPI schema, which is checked to cover every /api/ route, so an
endpoint added later is in the matrix without anyone listing it. Each operation's `x-permissions` is
checked against what its method means (a read needs only view permissions, a write a non-view one),
and then enforced: the built-in Admin and Marketer roles may do everything of the CRM, a custom group
with only the view permissions may read and nothing else, a user without a group may do nothing.
"""

import re

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.db import connection
from drf_spectacular.generators import SchemaGenerator

from campaigns.models import EmailTemplate
from customers.models import Customer, Order
from tenancy.roles import ADMIN, MARKETER, MARKETER_APPS
from tests.campaigns.conftest import make_campaign, make_customers, static_segment
from tests.conftest import make_api_client
from tests.tenancy.test_api_auth import PUBLIC, api_paths

# Operations that read although they are POSTs (they evaluate what they are given and store nothing).
READING_POSTS = {"/api/segments/preview", "/api/templates/{id}/preview", "/api/ai/segment"}
ROLES = ["nobody", "read_only", "marketer", "admin"]  # refusals before the roles that may write


SCHEMA = SchemaGenerator().get_schema(request=None, public=True)


def _operations():
    found = []
    for path, methods in SCHEMA["paths"].items():
        for method, operation in methods.items():
            if path in PUBLIC or path.startswith(("/api/schema", "/api/docs")):
                continue
            found.append((path, method.upper(), tuple(operation.get("x-permissions", ("undocumented",)))))
    return found


OPERATIONS = _operations()


def _route(path):
    return re.sub(r"\{[^}]+\}", "1", path)


def test_it_documents_every_api_route_in_the_schema():
    documented = {_route(path) for path, _, _ in OPERATIONS} | PUBLIC
    assert set(api_paths()) - documented == set()


@pytest.mark.parametrize(("path", "method", "perms"), OPERATIONS, ids=[f"{m} {p}" for p, m, _ in OPERATIONS])
def test_it_documents_for_each_operation_a_permission_that_fits_what_it_does(path, method, perms):
    assert "superuser" not in perms, f"{method} {path}: the view names no model (set permission_model)"
    assert "undocumented" not in perms
    description = SCHEMA["paths"][path][method.lower()]["description"]
    assert "**Permission:**" in description
    if path == "/api/auth/token/current":
        assert perms == ()  # one's own token
        return
    codenames = [perm.split(".", 1)[1] for perm in perms]
    assert codenames, f"{method} {path} needs no permission"
    if method == "GET" or (method == "POST" and path in READING_POSTS):
        assert all(name.startswith("view_") for name in codenames), (method, path, perms)
    elif method in ("PUT", "PATCH"):
        assert any(name.startswith("change_") for name in codenames), (method, path, perms)
    elif method == "DELETE":
        assert any(name.startswith(("delete_", "change_")) for name in codenames), (method, path, perms)
    else:
        assert any(name.startswith(("add_", "change_")) for name in codenames), (method, path, perms)


def _expected(role, perms):
    """Whether the role may do an operation that needs `perms`, from what each role is meant to be."""
    if not perms:
        return True  # authenticated is enough
    apps = {perm.split(".", 1)[0] for perm in perms}
    if role == "nobody":
        return False
    if role == "read_only":
        return all(perm.split(".", 1)[1].startswith("view_") for perm in perms) and apps <= set(MARKETER_APPS)
    if role == "marketer":
        return apps <= set(MARKETER_APPS)
    return True  # admin


def _user(username, *groups):
    user = get_user_model().objects.create_user(username=username, email=username, is_staff=True)
    user.groups.add(*groups)
    return user


def _client(tenant, user):
    client = make_api_client(tenant, user)
    client.get("/api/customers")  # the token's first use is recorded now, not during a refusal
    return client


@pytest.fixture
def clients(tenant):
    read_only = Group.objects.create(name="Read only")
    read_only.permissions.set(
        Permission.objects.filter(codename__startswith="view_", content_type__app_label__in=MARKETER_APPS)
    )
    users = {
        "nobody": _user("nobody@tenant-a.localhost"),
        "read_only": _user("reader@tenant-a.localhost", read_only),
        "marketer": _user("marketer@tenant-a.localhost", Group.objects.get(name=MARKETER)),
        "admin": _user("second-admin@tenant-a.localhost", Group.objects.get(name=ADMIN)),
    }
    return {role: _client(tenant, user) for role, user in users.items()}


@pytest.fixture
def objects(tenant):
    """One object of each kind, so that allowed requests reach real rows."""
    customers = make_customers(2, prefix="matrix")
    segment = static_segment(customers)
    campaign = make_campaign(segment)

    order = Order.objects.create(customer=customers[0], external_id="matrix-1", number="M1", total="10.00")
    template = EmailTemplate.objects.create(
        name="Matrix", subject="Hi", html_body="<p>Hi</p>", text_body="Hi"
    )
    return {
        "customers": customers[0].pk,
        "orders": order.pk,
        "segments": segment.pk,
        "campaigns": campaign.pk,
        "templates": template.pk,
    }


def _concrete(path, objects):
    kind = path.split("/")[2]
    return re.sub(r"\{[^}]+\}", str(objects.get(kind, 1)), path)


def fingerprint():
    """Every row of the tenant's schema, and its events in the shared outbox, as one hash."""
    schema = connection.schema_name
    with connection.cursor() as cursor:
        cursor.execute("SELECT tablename FROM pg_tables WHERE schemaname = %s ORDER BY tablename", [schema])
        tables = [row[0] for row in cursor.fetchall()]
        parts = [
            f"SELECT '{table}', (SELECT md5(coalesce(string_agg(md5(t::text), '' ORDER BY md5(t::text)), '')) "
            f'FROM "{schema}"."{table}" t)'
            for table in tables
        ]
        parts.append(
            "SELECT 'outbox', (SELECT count(*)::text FROM public.events_outboxevent WHERE tenant = %s)"
        )
        cursor.execute(" UNION ALL ".join(parts), [schema])
        return dict(cursor.fetchall())


@pytest.mark.parametrize(("path", "method", "perms"), OPERATIONS, ids=[f"{m} {p}" for p, m, _ in OPERATIONS])
def test_it_gives_each_role_exactly_what_its_permissions_allow(clients, objects, path, method, perms):
    url = _concrete(path, objects)
    for role in ROLES:
        allowed = _expected(role, perms)
        before = None if allowed else fingerprint()
        response = getattr(clients[role], method.lower())(url, {}, format="json")
        if allowed:
            assert response.status_code not in (401, 403), (role, method, url, response.status_code)
        else:
            assert response.status_code == 403, (role, method, url, response.status_code)
            assert fingerprint() == before, (role, method, url)


def test_it_lets_a_user_who_may_only_view_customers_neither_erase_them_nor_create_campaigns(tenant, objects):
    viewer = _user("viewer@tenant-a.localhost")
    viewer.user_permissions.add(Permission.objects.get(codename="view_customer"))
    client = _client(tenant, viewer)
    assert client.get(f"/api/customers/{objects['customers']}").status_code == 200
    before = fingerprint()
    assert client.delete(f"/api/customers/{objects['customers']}").status_code == 403
    segment = objects["segments"]
    response = client.post(
        "/api/campaigns", {"name": "X", "subject": "X", "html_body": "<p>x</p>", "segment": segment}
    )
    assert response.status_code == 403
    assert fingerprint() == before
    assert Customer.objects.get(pk=objects["customers"]).erased_at is None


def test_it_needs_the_change_permission_for_actions(tenant, objects):
    viewer = _user("viewer@tenant-a.localhost")
    viewer.user_permissions.add(*Permission.objects.filter(codename__in=["view_campaign", "add_campaign"]))
    client = _client(tenant, viewer)
    before = fingerprint()
    for action in ("send", "pause", "resume", "cancel", "test"):
        assert client.post(f"/api/campaigns/{objects['campaigns']}/{action}", {}).status_code == 403, action
    assert fingerprint() == before
    viewer.user_permissions.add(Permission.objects.get(codename="change_campaign"))
    assert client.post(f"/api/campaigns/{objects['campaigns']}/send", {}).status_code == 202


def test_it_needs_the_change_permission_for_an_export(clients):
    assert clients["read_only"].get("/api/customers").status_code == 200
    assert clients["read_only"].get("/api/customers?format=csv").status_code == 403
    response = clients["marketer"].get("/api/customers?format=csv")
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
