"""Every published event type has a committed JSON Schema, and the real services emit payloads valid
against it, as RabbitMQ delivers them."""

import json
from datetime import timedelta

import pytest
from django.utils import timezone
from jsonschema import Draft202012Validator

from campaigns.abtests import campaign_ab_decide
from campaigns.lifecycle import campaign_cancel, campaign_finish_if_done
from campaigns.models import Campaign, CampaignLink, CampaignRecipient, EmailTemplate
from events.contracts import SCHEMA_DIR, event_errors, event_schema, webshop_envelope_errors
from events.models import OutboxEvent
from events.services import EVENT_TYPES, outbox_publish
from flows.engine import flows_dispatch
from tracking.hits import hit_record_click, hit_record_open
from tracking.preferences import recipient_unsubscribe
from tracking.rollup import hits_rollup

HUMAN = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36"


def _flow_events(api, customer_id):
    """flow.entered, flow.completed (an exit step) and flow.exited (archived) through the flows API."""
    template = EmailTemplate.objects.create(name="Flow", subject="Hi", html_body="<p>Hi</p>")
    steps = [{"id": "tag", "type": "tag", "add": ["flowed"]}, {"id": "end", "type": "exit"}]
    done = api.post(
        "/api/flows",
        {"name": "Done", "trigger": {"type": "event", "name": "ping"}, "steps": steps},
        format="json",
    )
    waiting = api.post(
        "/api/flows",
        {
            "name": "Waits",
            "trigger": {"type": "event", "name": "ping"},
            "steps": [
                {"id": "d", "type": "delay", "days": 1},
                {"id": "m", "type": "email", "template": template.pk},
            ],
        },
        format="json",
    )
    for flow in (done.json(), waiting.json()):
        assert api.post(f"/api/flows/{flow['id']}/activate").status_code == 200
    assert (
        api.post(
            "/api/events", {"id": "ping-1", "name": "ping", "customer": customer_id}, format="json"
        ).status_code
        == 202
    )
    flows_dispatch()
    assert api.post(f"/api/flows/{waiting.json()['id']}/archive").status_code == 200


def make_every_event(tenant, api):
    """Drive each event type through the product's own code paths; returns the events written, as the
    publisher sends them (a batch row stands for many)."""
    first = OutboxEvent.objects.order_by("-id").values_list("id", flat=True).first() or 0
    created = api.post(
        "/api/customers",
        {
            "email": "Ann@Example.com",
            "first_name": "Ann",
            "tags": ["vip"],
            "email_marketing": True,
            "addresses": [{"kind": "billing", "line1": "Fő utca 1", "city": "Győr", "country": "HU"}],
        },
        format="json",
    )
    assert created.status_code == 201, created.content
    customer_id = created.json()["id"]
    assert api.patch(f"/api/customers/{customer_id}", {"city": "Szeged"}, format="json").status_code == 200
    assert (
        api.post(
            "/api/orders", {"external_id": "c-1", "customer": customer_id, "total": "10.00"}, format="json"
        ).status_code
        == 201
    )

    campaign = Campaign.objects.create(name="Autumn", subject="Hi", status="sending")
    link = CampaignLink.objects.create(campaign=campaign, url="https://shop.example.com/sale")
    recipient = CampaignRecipient.objects.create(
        campaign=campaign,
        customer_id=customer_id,
        email="ann@example.com",
        status="sent",
        sent_at=timezone.now() - timedelta(hours=1),
    )
    assert hit_record_open(tenant=tenant, recipient_id=recipient.pk, user_agent=HUMAN)
    assert hit_record_click(tenant=tenant, recipient_id=recipient.pk, link_id=link.pk, user_agent=HUMAN)
    hits_rollup()
    assert (  # attributed to the click just before it
        api.post(
            "/api/orders", {"external_id": "c-2", "customer": customer_id, "total": "20.00"}, format="json"
        ).status_code
        == 201
    )
    assert recipient_unsubscribe(recipient=recipient)
    assert campaign_finish_if_done(campaign_id=campaign.pk)
    campaign_cancel(campaign=Campaign.objects.create(name="Winter", subject="Hi"))
    tested = Campaign.objects.create(
        name="Subject test",
        subject="Hi",
        status="sending",
        started_at=timezone.now(),
        variants=[{"key": "A", "subject": "Hello"}, {"key": "B", "subject": "Sale"}],
        ab_test={"test_percent": 20, "metric": "open_rate", "wait_seconds": 3600, "min_confidence": 0.95},
    )
    campaign_ab_decide(campaign=tested, key="B")
    _flow_events(api, customer_id)
    erased = api.post("/api/customers", {"email": "gone@example.com"}, format="json").json()["id"]
    assert api.delete(f"/api/customers/{erased}").status_code in (200, 204)
    return [
        event for row in OutboxEvent.objects.filter(id__gt=first).order_by("id") for event in row.envelopes()
    ]


def test_there_is_one_valid_schema_per_event_type():
    files = sorted(path.name for path in SCHEMA_DIR.glob("*.json"))

    assert files == sorted([f"{t}.json" for t in EVENT_TYPES] + ["webshop.envelope.json"])
    for path in SCHEMA_DIR.glob("*.json"):
        schema = json.loads(path.read_text())
        Draft202012Validator.check_schema(schema)
        assert schema["$id"].endswith(f"/{path.name}")
    with pytest.raises(KeyError):
        event_schema("webshop.envelope")


def test_every_event_the_services_emit_is_valid_against_its_schema(tenant, api):
    events = make_every_event(tenant, api)

    assert {event["type"] for event in events} == EVENT_TYPES
    for event in events:
        assert event_errors(event) == [], event
    erased = [e for e in events if e["type"] == "customer.updated" and e["data"].get("email") is None]
    assert len(erased) == 1 and erased[0]["data"]["first_name"] == ""


def test_a_consumer_of_crm_events_receives_each_type_valid_against_its_schema(tenant, api, events_queue):
    events = make_every_event(tenant, api)

    outbox_publish()

    wanted = {event["id"] for event in events}
    received = [m for m in events_queue.drain(wanted_ids=wanted) if m.properties.get("message_id") in wanted]
    bodies = {json.loads(m.body)["id"]: (m, json.loads(m.body)) for m in received}
    assert set(bodies) == wanted
    for message, body in bodies.values():
        assert event_errors(body) == [], body
        assert message.delivery_info["routing_key"] == body["type"]
    assert {body["type"] for _, body in bodies.values()} == EVENT_TYPES


@pytest.mark.parametrize(
    "change, error",
    [
        (lambda e: e.pop("occurred_at"), "(root): 'occurred_at' is a required property"),
        (lambda e: e.update(tenant="Tenant A"), "tenant: 'Tenant A' does not match '^[a-z][a-z0-9_]{0,62}$'"),
        (
            lambda e: e.update(extra=1),
            "(root): Additional properties are not allowed ('extra' was unexpected)",
        ),
        (lambda e: e["data"].pop("url"), "data: 'url' is a required property"),
        (lambda e: e["data"].update(campaign_id="7"), "data.campaign_id: '7' is not of type 'integer'"),
        (
            lambda e: e["data"].update(url="javascript:alert(1)"),
            "data.url: 'javascript:alert(1)' does not match '^https?://'",
        ),
    ],
)
def test_the_schemas_refuse_what_the_contract_does_not_allow(change, error):
    envelope = {
        "id": "0b6f5a0e-8f4e-4c36-9d55-6a8f9a3f2d11",
        "type": "email.clicked",
        "tenant": "tenant_a",
        "occurred_at": "2026-11-22T10:00:00Z",
        "data": {
            "campaign_id": 7,
            "customer_id": 3,
            "email": "ann@example.com",
            "url": "https://x.example/a",
        },
    }
    assert event_errors(envelope) == []

    change(envelope)

    assert error in event_errors(envelope)


def test_an_unknown_type_has_no_schema():
    assert event_errors({"type": "customer.deleted"}) == ["type: unknown event type 'customer.deleted'"]


def test_the_inbound_envelope_names_what_is_missing():
    assert webshop_envelope_errors({"id": "1", "type": "order.created", "tenant": "a", "data": {}}) == []
    assert webshop_envelope_errors({"id": "1", "type": "order.deleted", "data": []}) == [
        "(root): 'tenant' is a required property",
        "data: [] is not of type 'object'",
        "type: 'order.deleted' is not one of ['customer.upserted', 'order.created', 'order.updated']",
    ]
