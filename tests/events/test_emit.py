from datetime import UTC, datetime
from decimal import Decimal

import pytest
from django.db import connection, transaction
from django_tenants.utils import schema_context

from events import services, tasks
from events.models import OutboxEvent
from events.services import event_emit, outbox_insert_sql


def test_it_stores_the_event_in_the_callers_transaction(tenant):
    event = event_emit(type="customer.created", data={"id": 1})

    row = OutboxEvent.objects.get(pk=event.pk)
    assert (row.tenant, row.type, row.data, row.published_at, row.attempts) == (
        "tenant_a",
        "customer.created",
        {"id": 1},
        None,
        0,
    )


def test_it_emits_nothing_when_the_change_rolls_back(tenant):
    before = OutboxEvent.objects.count()

    with pytest.raises(RuntimeError), transaction.atomic():
        event_emit(type="customer.created", data={"id": 1})
        raise RuntimeError("the change failed")

    assert OutboxEvent.objects.count() == before


def test_it_refuses_an_unknown_event_type_and_stores_nothing(tenant):
    before = OutboxEvent.objects.count()

    with pytest.raises(ValueError, match="unknown event type 'customer.deleted'"):
        event_emit(type="customer.deleted", data={"id": 1})

    assert OutboxEvent.objects.count() == before


def test_it_names_the_schema_the_change_happened_in(other_tenant):
    with schema_context(other_tenant.schema_name):
        event = event_emit(type="customer.created", data={"id": 1})

    assert OutboxEvent.objects.get(pk=event.pk).tenant == "tenant_b"


def test_it_stores_data_the_way_consumers_will_read_it(tenant):
    event = event_emit(
        type="campaign.sent",
        data={"id": 3, "total": Decimal("1234.50"), "at": datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)},
    )

    assert OutboxEvent.objects.get(pk=event.pk).data == {
        "id": 3,
        "total": "1234.50",
        "at": "2026-01-02T03:04:05Z",
    }


def test_it_kicks_the_publisher_once_per_transaction_after_commit(tenant, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks() as callbacks:
        with transaction.atomic():
            for number in range(3):
                event_emit(type="customer.created", data={"id": number + 1})

    assert callbacks.count(services._kick_publisher) == 1
    assert len(callbacks) == 1


def test_it_kicks_again_after_a_rolled_back_savepoint_took_the_first_kick(
    tenant, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks() as callbacks:
        with transaction.atomic():
            with pytest.raises(RuntimeError), transaction.atomic():
                event_emit(type="customer.created", data={"id": 1})
                raise RuntimeError("the inner change failed")
            event_emit(type="customer.created", data={"id": 2})

    assert callbacks == [services._kick_publisher]


def test_the_kick_survives_an_unreachable_task_broker(tenant, settings, monkeypatch):
    def broken(*args, **kwargs):
        raise ConnectionRefusedError("task broker down")

    monkeypatch.setattr(tasks.publish_outbox, "apply_async", broken)

    services._kick_publisher()  # logs, does not raise: the row is safe in the outbox


def test_a_set_based_writer_can_kick_the_publisher_once_too(tenant, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks() as callbacks:
        with transaction.atomic():
            services.outbox_kick()
            event_emit(type="customer.created", data={"id": 1})
            services.outbox_kick()

    assert callbacks == [services._kick_publisher]


def test_many_transactions_in_a_gathering_block_kick_the_publisher_once_at_its_end(tenant, monkeypatch):
    kicks = []
    monkeypatch.setattr(tasks.publish_outbox, "apply_async", lambda **kwargs: kicks.append(kwargs))

    with services.publisher_kicks_gathered():
        for _ in range(3):  # a bulk request: each item's commit runs the kick
            services._kick_publisher()
        with services.publisher_kicks_gathered():  # nested: the outermost block kicks
            services._kick_publisher()
        assert kicks == []

    assert kicks == [{"headers": {"_schema_name": "public"}, "retry": False}]
    services._kick_publisher()  # outside a block: a kick per commit again
    assert len(kicks) == 2


def test_a_gathering_block_with_nothing_committed_kicks_nothing(tenant, monkeypatch):
    kicks = []
    monkeypatch.setattr(tasks.publish_outbox, "apply_async", lambda **kwargs: kicks.append(kwargs))

    with services.publisher_kicks_gathered():
        pass

    assert kicks == []


@pytest.mark.parametrize("microsecond", [0, 1, 999, 1000, 123456, 999999])
def test_it_writes_times_in_sql_events_as_event_emit_does(tenant, microsecond):
    moment = datetime(2026, 3, 4, 5, 6, 7, microsecond, tzinfo=UTC)
    emitted = event_emit(type="customer.created", data={"at": moment})
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {services.json_time_sql('%(at)s::timestamptz')}", {"at": moment})
        written = cursor.fetchone()[0]

    assert written == OutboxEvent.objects.get(pk=emitted.pk).data["at"]


def test_the_set_based_insert_takes_event_types_and_registered_batch_types_only():
    assert "flows.batch" in outbox_insert_sql(event_type="flows.batch", data="'{}'::jsonb", source="x")
    assert "'order.attributed'" in outbox_insert_sql(
        event_type="order.attributed", data="'{}'::jsonb", source="x"
    )
    with pytest.raises(ValueError, match="unknown event type 'flows.unknown'"):
        outbox_insert_sql(event_type="flows.unknown", data="'{}'::jsonb", source="x")
