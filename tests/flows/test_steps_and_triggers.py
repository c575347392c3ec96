"""Steps (branch, tag, send window) and triggers (order placed, customer created, segment entered,
dates), and a deactivated tenant's flows sending nothing."""

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from django.core import mail
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from customers.models import Customer
from flows import engine, triggers
from flows.definitions import window_opens
from flows.models import FlowRun, FlowStepLog
from segments.models import Segment
from tenancy.models import Tenant

from .conftest import customer, make_active_flow, make_template, post_event, tick, time_passes


def _flow(api, steps, trigger=None, **extra):
    return make_active_flow(
        api,
        {
            "name": "F",
            "trigger": trigger or {"type": "event", "name": "go"},
            "steps": steps,
            "frequency_cap_hours": 0,
            **extra,
        },
    )


def test_a_branch_follows_the_customers_rules_and_tags_are_set(tenant, api):
    template = make_template()
    vip_rules = {"combinator": "and", "rules": [{"field": "city", "operator": "=", "value": "Győr"}]}
    _flow(
        api,
        [
            {"id": "b", "type": "branch", "rules": vip_rules, "yes": "vip", "no": "plain"},
            {"id": "plain", "type": "tag", "add": ["plain"]},
            {"id": "out", "type": "exit"},
            {"id": "vip", "type": "tag", "add": ["VIP-flow"], "remove": ["plain"]},
            {"id": "mail", "type": "email", "template": template.pk},
        ],
    )
    local, other = customer("gy@example.com", city="GYŐR"), customer("bp@example.com", city="Budapest")
    post_event(api, "1", local, name="go")
    post_event(api, "2", other, name="go")

    tick()

    assert list(local.tags.values_list("name", flat=True)) == ["VIP-flow"]
    assert list(other.tags.values_list("name", flat=True)) == ["plain"]
    assert [m.to for m in mail.outbox] == [["gy@example.com"]]
    assert set(FlowStepLog.objects.filter(run__customer=local).values_list("step_id", "status")) == {
        ("b", "yes"),
        ("vip", "done"),
        ("mail", "queued"),
    }
    assert FlowRun.objects.get(customer=other).exit_reason == "exit step"


def test_exit_rules_end_a_run_before_its_next_step(tenant, api):
    template = make_template()
    rules = {"combinator": "and", "rules": [{"field": "tags", "operator": "contains", "value": "bought"}]}
    flow_id = _flow(
        api,
        [{"id": "d", "type": "delay", "hours": 1}, {"id": "m", "type": "email", "template": template.pk}],
        exit_rules=rules,
    )
    anna = customer("anna@example.com")
    post_event(api, "1", anna, name="go")
    tick()
    api.patch(f"/api/customers/{anna.pk}", {"tags": ["bought"]}, format="json")

    time_passes(flow_id)
    tick()

    run = FlowRun.objects.get(customer=anna)
    assert (run.status, run.exit_reason) == ("exited", "exit rules matched")
    assert mail.outbox == []


def test_an_email_due_outside_the_send_window_waits_for_it_to_open():
    window = {"start_hour": 8, "end_hour": 21}
    zone = ZoneInfo("Europe/Budapest")

    assert window_opens(window, "Europe/Budapest", datetime(2026, 1, 5, 12, 0, tzinfo=zone)) is None
    late = window_opens(window, "Europe/Budapest", datetime(2026, 1, 5, 22, 30, tzinfo=zone))
    assert late == datetime(2026, 1, 6, 8, 0, tzinfo=zone)
    early = window_opens(window, "Europe/Budapest", datetime(2026, 1, 5, 6, 0, tzinfo=zone))
    assert early == datetime(2026, 1, 5, 8, 0, tzinfo=zone)
    overnight = {"start_hour": 22, "end_hour": 6}
    assert window_opens(overnight, "UTC", datetime(2026, 1, 5, 23, 0, tzinfo=ZoneInfo("UTC"))) is None


def test_the_engine_holds_the_email_until_the_window_opens(tenant, api):
    template = make_template()
    now_local = timezone.now().astimezone(ZoneInfo(tenant.time_zone or "UTC"))
    closed = {"start_hour": (now_local.hour + 2) % 24, "end_hour": (now_local.hour + 3) % 24 or 24}
    _flow(api, [{"id": "m", "type": "email", "template": template.pk}], send_window=closed)
    post_event(api, "1", customer("anna@example.com"), name="go")

    tick()

    run = FlowRun.objects.get()
    assert (run.step_id, mail.outbox) == ("m", [])
    assert run.due_at > timezone.now() + timedelta(minutes=50)


def test_an_order_enters_order_placed_flows_with_the_order_in_the_email(
    tenant, api, django_capture_on_commit_callbacks
):
    template = make_template(
        "Thanks", "Thanks for order {{ order.number }}", "<p>{{ order.total }} {{ order.currency }}</p>"
    )
    flow_id = _flow(
        api,
        [{"id": "m", "type": "email", "template": template.pk}],
        trigger={"type": "order_placed", "min_total": "50"},
    )
    anna = customer("anna@example.com")
    with django_capture_on_commit_callbacks(execute=True):
        for number, total in (("1", "20.00"), ("2", "80.00")):
            api.post(
                "/api/orders",
                {
                    "external_id": f"o{number}",
                    "customer": anna.pk,
                    "number": number,
                    "total": total,
                    "currency": "EUR",
                },
                format="json",
            )

    tick()

    assert FlowRun.objects.filter(flow_id=flow_id).count() == 1
    flow_mail = [m for m in mail.outbox if m.subject.startswith("Thanks")]
    assert [m.subject for m in flow_mail] == ["Thanks for order 2"]
    assert "80.00 EUR" in flow_mail[0].alternatives[0][0]


def test_customers_created_after_activation_enter_through_the_sweep(tenant, api):
    template = make_template()
    before = customer("old@example.com")
    Customer.objects.filter(pk=before.pk).update(created_at=timezone.now() - timedelta(days=1))
    flow_id = _flow(
        api, [{"id": "m", "type": "email", "template": template.pk}], trigger={"type": "customer_created"}
    )
    new = customer("new@example.com")

    triggers.flow_triggers_sweep()
    triggers.flow_triggers_sweep()  # idempotent

    assert list(FlowRun.objects.filter(flow_id=flow_id).values_list("customer_id", flat=True)) == [new.pk]


def test_customers_who_start_matching_a_segment_enter_and_those_matching_at_activation_do_not(tenant, api):
    template = make_template()
    segment = Segment.objects.create(
        name="Szeged",
        kind="dynamic",
        rules={"combinator": "and", "rules": [{"field": "city", "operator": "=", "value": "Szeged"}]},
    )
    already = customer("already@example.com", city="Szeged")
    flow_id = _flow(
        api,
        [{"id": "m", "type": "email", "template": template.pk}],
        trigger={"type": "segment_entered", "segment": segment.pk},
    )
    triggers.flow_triggers_sweep()
    moved = customer("moved@example.com", city="Pécs")
    Customer.objects.filter(pk=moved.pk).update(city="Szeged")

    triggers.flow_triggers_sweep()

    entered = FlowRun.objects.filter(flow_id=flow_id).exclude(entry_key="baseline")
    assert list(entered.values_list("customer_id", flat=True)) == [moved.pk]
    assert FlowRun.objects.get(flow_id=flow_id, customer=already).status == "exited"


def test_birthdays_enter_once_a_year(tenant, api):
    template = make_template()
    today = timezone.now().date()
    flow_id = _flow(
        api,
        [{"id": "m", "type": "email", "template": template.pk}],
        trigger={"type": "date", "attribute": "attributes.birthday"},
        reentry="always",
    )
    born = customer("born@example.com", attributes={"birthday": today.replace(year=1990).isoformat()})
    customer("other@example.com", attributes={"birthday": "not a date"})

    triggers.flow_triggers_sweep()
    triggers.flow_triggers_sweep()

    assert list(FlowRun.objects.filter(flow_id=flow_id).values_list("customer_id", "entry_key")) == [
        (born.pk, f"date:{today.year}")
    ]


def test_a_deactivated_tenant_sends_no_flow_email(tenant, api):
    template = make_template()
    _flow(api, [{"id": "m", "type": "email", "template": template.pk}])
    post_event(api, "1", customer("anna@example.com"), name="go")
    engine.flows_dispatch()
    Tenant.objects.filter(pk=tenant.pk).update(is_active=False)

    tick()

    assert mail.outbox == []
    Tenant.objects.filter(pk=tenant.pk).update(is_active=True)
    tick()
    assert len(mail.outbox) == 1


def test_it_branches_on_conditions_combined_with_any_and_a_nested_all(tenant, api):
    rules = {
        "combinator": "or",
        "rules": [
            {"field": "city", "operator": "=", "value": "Szeged"},
            {
                "combinator": "and",
                "rules": [
                    {"field": "total_spent", "operator": ">=", "value": "100"},
                    {"field": "order_count", "operator": ">=", "value": 2},
                ],
            },
        ],
    }
    _flow(
        api,
        [
            {"id": "b", "type": "branch", "rules": rules, "yes": "vip"},
            {"id": "plain", "type": "tag", "add": ["plain"]},
            {"id": "out", "type": "exit"},
            {"id": "vip", "type": "tag", "add": ["vip"]},
        ],
    )
    szeged = customer("szeged@example.com", city="Szeged")
    big = customer("big@example.com", city="Pécs", total_spent="150.00", order_count=3)
    one_order = customer("one@example.com", city="Pécs", total_spent="150.00", order_count=1)
    for index, who in enumerate((szeged, big, one_order)):
        post_event(api, str(index), who, name="go")

    tick()

    assert {who.email: list(who.tags.values_list("name", flat=True)) for who in (szeged, big, one_order)} == {
        "szeged@example.com": ["vip"],
        "big@example.com": ["vip"],
        "one@example.com": ["plain"],
    }


def test_it_refuses_a_bad_condition_deep_in_a_branch_naming_its_path(tenant, api):
    rules = {
        "combinator": "or",
        "rules": [
            {"field": "city", "operator": "=", "value": "Szeged"},
            {
                "combinator": "and",
                "rules": [{"field": "order_count", "operator": "beginsWith", "value": "2"}],
            },
        ],
    }
    response = api.post(
        "/api/flows",
        {"name": "Bad", "steps": [{"id": "b", "type": "branch", "rules": rules}]},
        format="json",
    )

    assert response.status_code == 400
    assert any(
        message.startswith("steps[0].rules: rules[1].rules[0].operator")
        for message in response.json()["steps"]
    ), response.json()


def test_it_wakes_only_runs_waiting_for_the_event_and_writes_nothing_for_events_no_flow_awaits(tenant, api):
    _flow(
        api,
        [
            {"id": "w", "type": "wait_for", "event": "paid", "timeout": {"hours": 24}, "yes": "t", "no": "t"},
            {"id": "t", "type": "tag", "add": ["paid"]},
        ],
    )
    anna = customer("anna@example.com")
    post_event(api, "1", anna, name="go")
    tick()  # Anna waits for "paid" a day
    waiting = FlowRun.objects.get(customer=anna)
    assert waiting.waiting_since is not None and waiting.due_at > timezone.now() + timedelta(hours=23)

    with CaptureQueriesContext(connection) as queries:
        post_event(api, "2", anna, name="browsed")  # no flow waits for it: no UPDATE of any run
    assert not [q for q in queries.captured_queries if "UPDATE" in q["sql"] and "flow_runs" in q["sql"]]
    assert FlowRun.objects.get(pk=waiting.pk).due_at == waiting.due_at

    post_event(api, "3", anna, name="paid")
    assert FlowRun.objects.get(pk=waiting.pk).due_at <= timezone.now()
    tick()
    assert list(anna.tags.values_list("name", flat=True)) == ["paid"]
