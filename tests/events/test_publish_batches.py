"""A batch row of the outbox (a CSV import's chunk) goes out to RabbitMQ as one confirmed, persistent
message per event, in order, and is marked published once all of them are confirmed."""

import json

from customers.importer import import_customers_csv
from customers.models import Customer
from customers.outbox import BATCH_TYPE as CUSTOMERS_BATCH
from events.models import OutboxEvent
from events.services import outbox_publish
from flows.outbox import BATCH_TYPE as FLOWS_BATCH


def test_it_publishes_one_message_per_event_of_a_batch_row(tmp_path, tenant, events_queue):
    path = tmp_path / "customers.csv"
    path.write_text(
        "email,city\n" + "".join(f"c{n}@example.com,Pécs\n" for n in range(1200)), encoding="utf-8"
    )
    import_customers_csv(path_or_file=path)
    rows = list(OutboxEvent.objects.filter(tenant="tenant_a", published_at__isnull=True).order_by("id"))
    expected = [e for row in rows for e in row.envelopes()]
    assert len(rows) == 2 and len(expected) == 1200

    result = outbox_publish()

    messages = events_queue.drain(wanted_ids=[e["id"] for e in expected], timeout=20)
    wanted = {e["id"] for e in expected}
    received = [m for m in messages if m.properties.get("message_id") in wanted]
    assert [json.loads(m.body) for m in received] == expected
    ids = list(Customer.objects.order_by("id").values_list("id", flat=True))
    assert [json.loads(m.body)["data"]["id"] for m in received] == ids
    assert {m.delivery_info["routing_key"] for m in received} == {"customer.created"}
    assert {m.properties["delivery_mode"] for m in received} == {2}
    assert {m.headers["tenant"] for m in received} == {"tenant_a"}
    assert (
        result.error == ""
        and not OutboxEvent.objects.filter(pk__in=[r.pk for r in rows], published_at=None).exists()
    )


def test_it_renders_nothing_for_a_batch_row_of_a_tenant_whose_schema_is_gone(tenant):
    for kind, data in (
        (CUSTOMERS_BATCH, {"ids": [1], "updated": {}}),
        (
            FLOWS_BATCH,
            {"flow_id": 1, "flow_name": "F", "version": 1, "runs": [["flow.entered", 1, 1, "", ""]]},
        ),
    ):
        row = OutboxEvent.objects.create(tenant="deleted_tenant", type=kind, data=data)
        assert row.envelopes() == []
