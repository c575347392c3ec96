"""A deactivated tenant sends no order emails: a send task already queued skips its email with the
reason, and the sweeper enqueues nothing of that tenant."""

from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone
from django_tenants.utils import schema_context

from campaigns import transactional
from events.models import TransactionalEmail
from tenancy.services import tenant_activate, tenant_deactivate

from .test_order_emails import order_body


@pytest.fixture
def queued(api, smtp_sink, django_capture_on_commit_callbacks, monkeypatch):
    """An order recorded while the tenant was active; its confirmation's task is waiting in the queue."""
    waiting = []
    monkeypatch.setattr(
        transactional.send_transactional_email,
        "apply_async",
        lambda *args, **kwargs: waiting.append(kwargs["kwargs"]["email_id"]),
    )
    with django_capture_on_commit_callbacks(execute=True):
        assert api.post("/api/orders", order_body(), format="json").status_code == 201
    assert len(waiting) == 1
    return waiting


def test_a_queued_order_email_of_a_deactivated_tenant_is_skipped_and_not_sent(tenant, queued, smtp_sink):
    tenant_deactivate(tenant=tenant)

    assert transactional.send_transactional_email(email_id=queued[0]) == "skipped"

    assert smtp_sink.emails() == []
    row = TransactionalEmail.objects.get(pk=queued[0])
    assert (row.status, row.reason, row.sent_at, row.lease_until) == (
        "skipped",
        "Not sent: the account is deactivated.",
        None,
        None,
    )
    # Reactivated later, the skipped email stays skipped: a confirmation does not arrive days late.
    tenant_activate(tenant=tenant)
    assert transactional.send_transactional_email(email_id=queued[0]) == "busy"
    assert smtp_sink.emails() == []


def test_the_sweeper_enqueues_nothing_of_a_deactivated_tenant(tenant, other_tenant, queued, monkeypatch):
    old = timezone.now() - timedelta(minutes=10)
    mine = queued[0]
    TransactionalEmail.objects.filter(pk=mine).update(created_at=old)
    with schema_context(other_tenant.schema_name):
        other = TransactionalEmail.objects.create(
            tenant=other_tenant.schema_name, order_id=1, kind="order_confirmation", created_at=old
        )
    tenant_deactivate(tenant=tenant)
    queued.clear()

    connection.set_schema_to_public()  # beat runs it in public
    enqueued = transactional.transactional_emails_requeue()
    connection.set_tenant(tenant)

    assert other.pk in queued and mine not in queued  # only the serving tenant's
    assert enqueued == len(queued)
    assert TransactionalEmail.objects.get(pk=mine).status == "pending"  # waits, unsent
