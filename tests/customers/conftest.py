import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django_tenants.utils import schema_context
from rest_framework.authtoken.models import Token

from customers import services
from customers.serializers import CustomerInputSerializer, OrderInputSerializer
from events.models import OutboxEvent
from tenancy.roles import MARKETER, user_role_assign
from tests.conftest import throwaway_tenant_create, throwaway_tenant_drop


def make_customer(**fields):
    serializer = CustomerInputSerializer(data=fields)
    serializer.is_valid(raise_exception=True)
    return services.customer_create(data=serializer.complete())


def make_order(**fields):
    serializer = OrderInputSerializer(data=fields)
    serializer.is_valid(raise_exception=True)
    return services.order_upsert(data=serializer.validated_data)[0]


def events(type=None):
    """This tenant's outbox events, oldest first, as (type, data), batch rows expanded as published."""
    rows = OutboxEvent.objects.filter(tenant=connection.schema_name).order_by("id")
    found = [(e["type"], e["data"]) for row in rows for e in row.envelopes()]
    return [event for event in found if type is None or event[0] == type]


@pytest.fixture
def customer_factory(tenant):
    return make_customer


@pytest.fixture
def order_factory(tenant):
    return make_order


@pytest.fixture
def fresh_tenant(django_db_blocker):
    """A new tenant with committed data (for other connections: threads, a worker), dropped after.
    Yields (host, schema, API token)."""
    with django_db_blocker.unblock():
        created = throwaway_tenant_create("cust-conc", admin_password=None)
        schema = created.tenant.schema_name
        with schema_context(schema):
            user = get_user_model().objects.create_user(username="api@example.com", password="x-password-1")
            user_role_assign(user=user, role=MARKETER)  # the API honours roles: the webshop's user has one
            token = Token.objects.create(user=user).key
        try:
            yield created.domain.domain, schema, token
        finally:
            throwaway_tenant_drop(created.tenant)
