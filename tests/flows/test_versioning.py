"""Editing an active flow makes a new version: waiting runs continue at the step with the same id,
runs at a removed step leave with the reason."""

from django.core import mail

from events.contracts import event_errors
from events.models import OutboxEvent
from flows.models import FlowRun, FlowVersion
from flows.outbox import BATCH_TYPE

from .conftest import customer, make_active_flow, make_template, post_event, tick, time_passes


def _welcome(template, **extra):
    return {
        "name": "Welcome",
        "trigger": {"type": "event", "name": "signed.up"},
        "steps": [
            {"id": "first", "type": "delay", "hours": 1},
            {"id": "hello", "type": "email", "template": template.pk},
            {"id": "pause", "type": "delay", "days": 2},
            {"id": "tips", "type": "email", "template": template.pk},
        ],
        "frequency_cap_hours": 0,
        **extra,
    }


def test_it_makes_a_new_version_and_runs_continue_by_step_id_or_exit(tenant, api):
    template = make_template("Welcome", "Welcome {{ customer.first_name }}", "<p>Hi</p>")
    flow_id = make_active_flow(api, _welcome(template))
    early, late = customer("early@example.com"), customer("late@example.com")
    post_event(api, "e-1", early, name="signed.up")
    tick()  # early waits before "hello"
    post_event(api, "e-2", late, name="signed.up")
    tick()
    time_passes(flow_id)
    tick()  # both got "hello" and wait before "tips"
    FlowRun.objects.filter(customer=early).update(step_id="hello")  # early is made to wait at "hello"
    assert len(mail.outbox) == 2

    steps = [
        {"id": "pause", "type": "delay", "days": 1},
        {"id": "tips", "type": "email", "template": template.pk, "subject": "Tips v2"},
    ]
    response = api.patch(f"/api/flows/{flow_id}", {"steps": steps}, format="json")
    assert response.status_code == 200, response.json()
    assert response.json()["version"] == 2
    assert list(FlowVersion.objects.filter(flow_id=flow_id).values_list("version", flat=True)) == [2, 1]

    time_passes(flow_id)
    tick()

    gone = FlowRun.objects.get(customer=early)
    assert (gone.status, gone.exit_reason) == ("exited", "step removed")
    kept = FlowRun.objects.get(customer=late)
    assert (kept.status, kept.version) == ("completed", 2)
    assert [m.subject for m in mail.outbox[2:]] == ["Tips v2"]
    events = [event for row in OutboxEvent.objects.filter(type=BATCH_TYPE) for event in row.envelopes()]
    (exited,) = [e for e in events if e["type"] == "flow.exited" and e["data"]["run_id"] == gone.pk]
    assert exited["data"]["reason"] == "step removed" and exited["data"]["step"] == "hello"
    for event in events:
        assert event_errors(event) == [], event


def test_an_edit_of_a_draft_makes_no_version(tenant, api):
    template = make_template()
    flow = api.post("/api/flows", _welcome(template), format="json").json()

    response = api.patch(f"/api/flows/{flow['id']}", {"name": "Welcome series"}, format="json")

    assert (response.status_code, response.json()["version"]) == (200, 1)
    assert not FlowVersion.objects.filter(flow_id=flow["id"]).exists()


def test_activation_never_reaches_back_in_time(tenant, api):
    template = make_template()
    flow = api.post("/api/flows", _welcome(template), format="json").json()
    anna = customer("anna@example.com")
    post_event(api, "before", anna, name="signed.up")

    api.post(f"/api/flows/{flow['id']}/activate")
    tick()

    assert not FlowRun.objects.filter(flow_id=flow["id"]).exists()
