import pytest
from django.db import connection

from customers import services
from customers.serializers import CustomerInputSerializer, OrderInputSerializer
from events.models import OutboxEvent


def make_customer(**fields):
    serializer = CustomerInputSerializer(data=fields)
    serializer.is_valid(raise_exception=True)
    return services.customer_create(data=serializer.complete())


def make_order(**fields):
    serializer = OrderInputSerializer(data=fields)
    serializer.is_valid(raise_exception=True)
    return services.order_upsert(data=serializer.validated_data)[0]


def events(type=None):
    """This tenant's outbox events, oldest first, as (type, data)."""
    rows = OutboxEvent.objects.filter(tenant=connection.schema_name).order_by("id")
    if type:
        rows = rows.filter(type=type)
    return [(event.type, event.data) for event in rows]


@pytest.fixture
def customer_factory(tenant):
    return make_customer


@pytest.fixture
def order_factory(tenant):
    return make_order
