"""The event pipeline in the admin: operators see the outbox on the public host; a tenant's staff see
only their own order emails."""

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.test import Client
from django.utils import timezone

from events.models import OutboxEvent, TransactionalEmail
from tests.conftest import PASSWORD


@pytest.fixture
def operator(tenant):
    connection.set_schema_to_public()
    user = get_user_model().objects.create_superuser("operator", "op@example.com", "operator-pass-1")
    client = Client(HTTP_HOST="localhost")
    client.force_login(user)
    yield client
    connection.set_tenant(tenant)


def test_an_operator_sees_the_outbox_and_can_clear_a_backoff(operator):
    waiting = OutboxEvent.objects.create(
        tenant="tenant_a",
        type="customer.created",
        data={"id": 5},
        attempts=3,
        last_error="OperationalError: [Errno 111] Connection refused",
        next_attempt_at=timezone.now() + timezone.timedelta(seconds=60),
    )

    listing = operator.get("/admin/events/outboxevent/?state=backing_off")
    response = operator.post(
        "/admin/events/outboxevent/", {"action": "retry_now", "_selected_action": [waiting.pk]}
    )

    assert listing.status_code == 200
    assert b"customer.created" in listing.content and b"Connection refused" in listing.content
    assert response.status_code == 302
    waiting.refresh_from_db()
    assert waiting.next_attempt_at is None and waiting.attempts == 3


def test_the_outbox_is_invisible_on_a_tenant_host(tenant, admin_user):
    client = Client(HTTP_HOST="tenant-a.localhost")
    client.force_login(admin_user)

    assert client.get("/admin/events/outboxevent/").status_code == 403
    assert client.get("/admin/events/inboxmessage/").status_code == 403


def test_a_tenants_staff_see_only_their_own_order_emails(tenant, marketer):
    mine = TransactionalEmail.objects.create(
        tenant="tenant_a",
        order_id=101,
        kind="order_confirmation",
        status="skipped",
        reason="Order confirmation for order A-101 not sent: the customer turned transactional email off.",
    )
    TransactionalEmail.objects.create(
        tenant="tenant_b",
        order_id=202,
        kind="order_confirmation",
        status="sent",
        reason="Order confirmation for order B-202 sent to someone@example.com.",
    )
    client = Client(HTTP_HOST="tenant-a.localhost")
    assert client.login(username="marketer@tenant-a.localhost", password=PASSWORD)

    listing = client.get("/admin/events/transactionalemail/")

    assert listing.status_code == 200
    assert b"A-101" in listing.content and b"B-202" not in listing.content
    assert client.get(f"/admin/events/transactionalemail/{mine.pk}/change/").status_code == 200
    other = TransactionalEmail.objects.get(tenant="tenant_b")
    assert (
        client.get(f"/admin/events/transactionalemail/{other.pk}/change/").status_code == 302
    )  # "does not exist"
    assert client.post(f"/admin/events/transactionalemail/{mine.pk}/delete/").status_code == 403
    assert TransactionalEmail.objects.filter(pk=mine.pk).exists()
