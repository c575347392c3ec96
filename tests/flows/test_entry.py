"""Entering a flow performs the run's first steps in the entering transaction, with the engine's own
step code: a one-email flow's run is written completed with its message queued; a run that must wait
is written waiting at its next step, and the tenant's dispatch falls due when it does; exit rules
hold from the first step; entering many customers costs the same statements as entering a few."""

from datetime import timedelta

from django.core import mail
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from campaigns.models import CampaignRecipient
from events.models import OutboxEvent
from flows import engine, services, tasks
from flows.entry import runs_enter
from flows.models import Flow, FlowRun, FlowStepLog
from flows.outbox import BATCH_TYPE
from flows.work import DISPATCH_WORK
from tenancy.models import TenantWork
from tenancy.work import work_pending
from tests.conftest import verified_sender_domain

from .conftest import customer, make_active_flow, make_template, post_event, tick


def _flow(api, steps, **extra):
    verified_sender_domain("shop.example")
    return make_active_flow(
        api,
        {
            "name": "Welcome",
            "trigger": {"type": "event", "name": "signed.up"},
            "steps": steps,
            "frequency_cap_hours": 0,
            "from_email": "news@shop.example",
            **extra,
        },
    )


def _events_after(first):
    rows = OutboxEvent.objects.filter(type=BATCH_TYPE, id__gt=first).order_by("id")
    return [(event["type"], event["data"]["customer_id"]) for row in rows for event in row.envelopes()]


def _last_outbox_id():
    return OutboxEvent.objects.order_by("-id").values_list("id", flat=True).first() or 0


def test_it_completes_a_one_email_flows_run_as_the_customer_enters_with_its_message_queued(tenant, api):
    template = make_template()
    _flow(api, [{"id": "mail", "type": "email", "template": template.pk}])
    anna = customer("anna@example.com")
    TenantWork.objects.filter(kind=DISPATCH_WORK).delete()
    first = _last_outbox_id()

    assert post_event(api, "e-1", anna, name="signed.up", total="12.50").status_code == 202

    run = FlowRun.objects.get(customer=anna)
    assert (run.status, run.step_id, run.due_at, run.finished_at is not None) == ("completed", "", None, True)
    log = FlowStepLog.objects.get(run=run)
    assert (log.step_id, log.status) == ("mail", "queued")
    assert CampaignRecipient.objects.get(pk=log.recipient_id).status == "pending"
    assert _events_after(first) == [("flow.entered", anna.pk), ("flow.completed", anna.pk)]
    # Nothing left for the dispatcher; the tick is due now all the same, for the queued message
    # (it sends what a lost sender kick leaves).
    assert work_pending()[DISPATCH_WORK] <= timezone.now()
    outcome, sent = tick()
    assert (outcome.runs, sent.sent) == (0, 1)
    assert [m.to for m in mail.outbox] == [["anna@example.com"]]
    assert "12.50" in mail.outbox[0].alternatives[0][0]  # the event's properties, rendered


def test_it_writes_a_run_that_starts_with_a_delay_waiting_at_its_next_step(tenant, api):
    template = make_template()
    _flow(
        api,
        [
            {"id": "wait", "type": "delay", "hours": 1},
            {"id": "mail", "type": "email", "template": template.pk},
        ],
    )
    anna = customer("anna@example.com")
    TenantWork.objects.filter(kind=DISPATCH_WORK).delete()

    post_event(api, "e-1", anna, name="signed.up")

    run = FlowRun.objects.get(customer=anna)
    in_an_hour = timezone.now() + timedelta(hours=1)
    assert (run.status, run.step_id) == ("active", "mail")
    assert in_an_hour - timedelta(minutes=1) < run.due_at <= in_an_hour
    assert list(FlowStepLog.objects.filter(run=run).values_list("step_id", "status")) == [("wait", "done")]
    # The tenant's dispatch falls due with the run, not before: no tick for an hour.
    assert work_pending()[DISPATCH_WORK] == run.due_at
    assert engine.flows_dispatch().runs == 0


def test_it_exits_a_customer_who_matches_the_exit_rules_as_she_enters(tenant, api):
    template = make_template()
    bought = {"combinator": "and", "rules": [{"field": "tags", "operator": "contains", "value": "bought"}]}
    _flow(api, [{"id": "mail", "type": "email", "template": template.pk}], exit_rules=bought)
    anna, bob = customer("anna@example.com"), customer("bob@example.com")
    api.patch(f"/api/customers/{anna.pk}", {"tags": ["bought"]}, format="json")
    first = _last_outbox_id()

    post_event(api, "e-1", anna, name="signed.up")
    post_event(api, "e-2", bob, name="signed.up")

    run = FlowRun.objects.get(customer=anna)
    assert (run.status, run.exit_reason) == ("exited", "exit rules matched")
    assert not FlowStepLog.objects.filter(run=run).exists()
    assert FlowRun.objects.get(customer=bob).status == "completed"
    rows = OutboxEvent.objects.filter(type=BATCH_TYPE, id__gt=first).order_by("id")
    events = [event for row in rows for event in row.envelopes()]
    assert [(e["type"], e["data"]["customer_id"]) for e in events] == [
        ("flow.entered", anna.pk),
        ("flow.exited", anna.pk),
        ("flow.entered", bob.pk),
        ("flow.completed", bob.pk),
    ]
    assert (events[1]["data"]["reason"], events[1]["data"]["step"]) == ("exit rules matched", "mail")


def test_it_enters_many_customers_with_the_statements_of_a_few(tenant):
    template = make_template()
    verified_sender_domain("shop.example")
    flow = services.flow_activate(
        flow=services.flow_create(
            name="Bulk",
            trigger={"type": "event", "name": "bulk"},
            steps=[
                {"id": "tag", "type": "tag", "add": ["entered"]},
                {"id": "mail", "type": "email", "template": template.pk},
            ],
            reentry="always",
            frequency_cap_hours=0,
            from_email="news@shop.example",
        )
    )
    people = [customer(f"c{n}@example.com") for n in range(60)]

    def enter(group, key):
        flow_now = Flow.objects.get(pk=flow.pk)
        with CaptureQueriesContext(connection) as queries:
            entered = runs_enter(flow=flow_now, entries=[(c.pk, f"{key}-{c.pk}", {}) for c in group])
        return len(entered), len(queries)

    enter(people[:1], "a")  # the first makes the step's carrier campaign and the tag
    few = enter(people[1:3], "a")
    many = enter(people[3:], "a")

    assert (few[0], many[0]) == (2, 57)
    assert many[1] == few[1]
    assert CampaignRecipient.objects.filter(campaign__flow_carrier__flow=flow, status="pending").count() == 60
    assert set(FlowRun.objects.filter(flow=flow).values_list("status", flat=True)) == {"completed"}


def test_it_enters_a_customer_once_when_one_request_names_her_twice(tenant, api):
    template = make_template()
    flow_id = _flow(api, [{"id": "mail", "type": "email", "template": template.pk}], reentry="always")
    anna = customer("anna@example.com")
    flow = Flow.objects.get(pk=flow_id)

    entered = runs_enter(
        flow=flow, entries=[(anna.pk, "event:e-1", {"first": True}), (anna.pk, "event:e-2", {"first": False})]
    )

    (run,) = FlowRun.objects.filter(pk__in=entered)
    assert (run.entry_key, run.context, run.entry_number) == ("event:e-1", {"first": True}, 1)
    # Walking it again (re-entry `always`) is her second round, with a message of its own.
    assert len(runs_enter(flow=flow, entries=[(anna.pk, "event:e-3", {})])) == 1
    assert sorted(FlowRun.objects.filter(customer=anna).values_list("entry_number", flat=True)) == [1, 2]
    assert CampaignRecipient.objects.filter(customer=anna, status="pending").count() == 2


def test_it_queues_the_senders_once_while_an_earlier_kicks_senders_wait(tenant, monkeypatch, settings):
    """Every entering request and dispatcher batch kicks the senders after its commit; while the tasks
    of an earlier kick have not started (they will see the new messages when they do), a kick queues
    nothing more."""
    settings.FLOW_SEND_CONCURRENCY = 2
    queued = []
    monkeypatch.setattr(tasks.send_flow_messages, "apply_async", lambda **options: queued.append(options))
    engine.sender_kick_taken()  # no kick of an earlier test waits

    engine.senders_enqueue(tenant.schema_name)
    engine.senders_enqueue(tenant.schema_name)
    assert [options["headers"] for options in queued] == [{"_schema_name": tenant.schema_name}] * 2
    # Another tenant's pending kick is its own: this one's does not hold it back.
    engine.senders_enqueue("another_shop")
    assert [options["headers"] for options in queued[2:]] == [{"_schema_name": "another_shop"}] * 2
    del queued[2:]

    engine.sender_kick_taken()  # the first of them starts
    engine.senders_enqueue(tenant.schema_name)
    assert len(queued) == 4
