"""flow.entered / flow.completed / flow.exited go to the outbox as batch rows (one per flow and
statement, BATCH_EVENTS runs at most) and out to RabbitMQ as one message per run, in run order, each
valid against its schema; a customer erased before the row went out gets no event."""

import json

from django.utils import timezone

from customers.models import Customer
from events.contracts import event_errors
from events.models import OutboxEvent
from events.services import outbox_publish
from flows import outbox as flow_outbox
from flows import services
from flows.engine import flows_dispatch
from flows.outbox import BATCH_TYPE


def _flow(steps):
    flow = services.flow_create(
        name="Ping", trigger={"type": "event", "name": "ping"}, steps=steps, reentry="always"
    )
    return services.flow_activate(flow=flow)


def _ping(customers, tag="ping"):
    now = timezone.now()
    services.events_record(
        events=[
            {"event_id": f"{tag}-{c.pk}", "name": "ping", "customer_id": c.pk, "occurred_at": now}
            for c in customers
        ]
    )


def _customers(count):
    return [
        Customer.objects.create(email=f"p{n}@example.com", first_name=f"P{n}", email_marketing=True)
        for n in range(count)
    ]


def _batch_rows(after=0):
    return list(OutboxEvent.objects.filter(type=BATCH_TYPE, id__gt=after).order_by("id"))


def test_it_publishes_one_message_per_run_from_one_row_per_statement(tenant, events_queue):
    flow = _flow([{"id": "t", "type": "tag", "add": ["pinged"]}, {"id": "end", "type": "exit"}])
    people = _customers(3)
    first = OutboxEvent.objects.order_by("-id").values_list("id", flat=True).first() or 0

    _ping(people)
    assert flows_dispatch().runs == 0  # their steps were performed as they entered

    rows = _batch_rows(first)
    assert len(rows) == 1  # the entry's statement: six events, each run's entry before its end
    expected = [event for row in rows for event in row.envelopes()]
    assert [e["type"] for e in expected] == ["flow.entered", "flow.completed"] * 3
    assert [e["data"]["email"] for e in expected] == [c.email for c in people for _ in range(2)]
    assert len({e["id"] for e in expected}) == 6  # a run's two events of one row, two ids
    assert {e["data"]["flow_id"] for e in expected} == {flow.pk}
    assert all(event_errors(e) == [] for e in expected), expected
    # Rendered again (a retry after the broker failed), every event keeps its id.
    assert [e["id"] for row in rows for e in row.envelopes()] == [e["id"] for e in expected]

    result = outbox_publish()

    wanted = {e["id"] for e in expected}
    messages = events_queue.drain(wanted_ids=wanted, timeout=20)
    received = [json.loads(m.body) for m in messages if m.properties.get("message_id") in wanted]
    assert received == expected
    assert result.error == "" and not OutboxEvent.objects.filter(
        pk__in=[r.pk for r in rows], published_at=None
    )


def test_it_reports_why_a_run_exited(tenant):
    flow = _flow([{"id": "wait", "type": "delay", "days": 1}])
    (person,) = _customers(1)
    _ping([person])
    first = OutboxEvent.objects.order_by("-id").values_list("id", flat=True).first() or 0

    services.flow_archive(flow=flow)

    (event,) = [event for row in _batch_rows(first) for event in row.envelopes()]
    assert event["type"] == "flow.exited"
    assert (event["data"]["reason"], event["data"]["customer_id"]) == ("flow archived", person.pk)
    assert event_errors(event) == []


def test_it_splits_a_statement_of_many_runs_into_rows_in_run_order(tenant, monkeypatch):
    monkeypatch.setattr(flow_outbox, "BATCH_EVENTS", 2)
    _flow([{"id": "wait", "type": "delay", "days": 1}])
    people = _customers(5)

    _ping(people)

    rows = _batch_rows()
    assert [len(row.data["runs"]) for row in rows] == [2, 2, 1]
    assert [e["data"]["customer_id"] for row in rows for e in row.envelopes()] == [c.pk for c in people]


def test_it_publishes_nothing_about_a_customer_erased_before_the_row_went_out(tenant, api):
    _flow([{"id": "wait", "type": "delay", "days": 1}])
    kept, gone = _customers(2)
    _ping([kept, gone])

    assert api.delete(f"/api/customers/{gone.pk}").status_code in (200, 204)

    (row,) = _batch_rows()
    events = row.envelopes()
    assert [e["data"]["customer_id"] for e in events] == [kept.pk]
    assert "p1@example.com" not in json.dumps(row.data)
