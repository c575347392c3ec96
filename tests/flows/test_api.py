"""The flows API: shapes, state changes, refusals that change nothing, tenant isolation, permissions."""

import pytest

from campaigns.models import Campaign
from flows.carriers import carrier_campaign
from flows.models import CustomEvent, Flow, FlowRun
from tests.admin.conftest import admin_client_a  # noqa: F401  (fixture)
from tests.conftest import make_api_client

from .conftest import cart_flow_body, customer, make_active_flow, make_template, post_event


def test_it_creates_a_draft_and_lists_it(tenant, api):
    body = cart_flow_body(make_template(), make_template("Second"))

    created = api.post("/api/flows", body, format="json")

    assert created.status_code == 201
    flow = created.json()
    assert (flow["status"], flow["version"], flow["reentry"], flow["trigger"]) == (
        "draft",
        1,
        "never",
        {"type": "event", "name": "cart.abandoned"},
    )
    listed = api.get("/api/flows?status=draft").json()
    assert listed["count"] == 1 and listed["results"][0]["id"] == flow["id"]


@pytest.mark.parametrize(
    "change, field, message",
    [
        (lambda b: b.update(trigger={"type": "moon"}), "trigger", "trigger.type: must be one of"),
        (lambda b: b.update(trigger={"type": "event"}), "trigger", "trigger.name"),
        (lambda b: b["steps"].append({"id": "wait", "type": "exit"}), "steps", "steps[5].id: 'wait' is used"),
        (lambda b: b["steps"][0].update(hours=-1), "steps", "steps[0].hours: must be a positive number"),
        (lambda b: b["steps"][0].update(days=1), "steps", "steps[0]: give exactly one of"),
        (lambda b: b["steps"][1].update(template=999999), "steps", "steps[1].template"),
        (lambda b: b["steps"][2].update(yes="wait"), "steps", "steps[2].yes: must jump forward"),
        (lambda b: b["steps"][2].update(no="nowhere"), "steps", "steps[2].no: 'nowhere' is not the id"),
        (lambda b: b["steps"][2].pop("timeout"), "steps", "steps[2].timeout"),
        (lambda b: b["steps"][3].update(subject="{% if %}"), "steps", "steps[3].subject"),
        (
            lambda b: b["steps"].insert(
                0,
                {
                    "id": "b",
                    "type": "branch",
                    "rules": {
                        "combinator": "and",
                        "rules": [{"field": "nope", "operator": "=", "value": "1"}],
                    },
                },
            ),
            "steps",
            "steps[0].rules",
        ),
        (lambda b: b.update(steps=[{"id": "x", "type": "fly"}]), "steps", "steps[0].type"),
        (lambda b: b.update(steps="no"), "steps", "must be a non-empty list"),
        (lambda b: b.update(reentry="sometimes"), "reentry", "must be"),
        (lambda b: b.update(reentry={"after_days": 0}), "reentry", "must be"),
        (lambda b: b.update(frequency_cap_hours=-1), "frequency_cap_hours", ""),
        (lambda b: b.update(send_window={"start_hour": 8, "end_hour": 8}), "send_window", "different hours"),
        (lambda b: b.update(exit_rules={"combinator": "xor", "rules": []}), "exit_rules", "combinator"),
        (
            lambda b: b.update(from_email="boss@not-ours.example"),
            "from_email",
            "not on a verified sender domain",
        ),
        (lambda b: b.update(name="x" * 201), "name", ""),
        (lambda b: b["steps"][3].update(subject="a\x00b"), "steps", "NUL"),
        (lambda b: b.update(trigger=["event"]), "trigger", "must be an object"),
    ],
)
def test_it_refuses_a_bad_flow_naming_the_field_and_creates_nothing(tenant, api, change, field, message):
    body = cart_flow_body(make_template(), make_template("Second"))
    change(body)

    response = api.post("/api/flows", body, format="json")

    assert response.status_code == 400, response.json()
    errors = response.json()
    assert field in errors, errors
    assert any(message in text for text in errors[field]), errors
    assert not Flow.objects.exists()


def test_state_changes_follow_the_table_and_illegal_ones_are_409(tenant, api):
    flow_id = make_active_flow(api, cart_flow_body(make_template(), make_template("Second")))

    assert api.post(f"/api/flows/{flow_id}/activate").status_code == 409
    assert api.delete(f"/api/flows/{flow_id}").status_code == 409
    assert api.post(f"/api/flows/{flow_id}/pause").json()["status"] == "paused"
    assert api.post(f"/api/flows/{flow_id}/pause").status_code == 409
    assert api.post(f"/api/flows/{flow_id}/activate").json()["status"] == "active"
    assert api.post(f"/api/flows/{flow_id}/archive").json()["status"] == "archived"
    assert api.post(f"/api/flows/{flow_id}/activate").status_code == 409
    assert api.patch(f"/api/flows/{flow_id}", {"name": "x"}, format="json").status_code == 409
    assert Flow.objects.get(pk=flow_id).name == "Abandoned cart"


def test_archiving_ends_the_runs_with_the_reason(tenant, api):
    flow_id = make_active_flow(api, cart_flow_body(make_template(), make_template("Second")))
    post_event(api, "cart-1", customer("anna@example.com"))

    api.post(f"/api/flows/{flow_id}/archive")

    assert list(FlowRun.objects.values_list("status", "exit_reason")) == [("exited", "flow archived")]


def test_a_draft_is_deleted(tenant, api):
    flow = api.post("/api/flows", {"name": "Empty"}, format="json").json()

    assert api.delete(f"/api/flows/{flow['id']}").status_code == 204
    assert not Flow.objects.exists()


def test_a_draft_without_steps_cannot_be_activated(tenant, api):
    flow = api.post("/api/flows", {"name": "Empty"}, format="json").json()

    response = api.post(f"/api/flows/{flow['id']}/activate")

    assert response.status_code == 400 and "steps" in response.json()
    assert Flow.objects.get().status == "draft"


@pytest.mark.parametrize(
    "body, field",
    [
        ({"name": "cart.abandoned", "customer": 1}, "id"),
        ({"id": "x", "customer": 1}, "name"),
        ({"id": "x", "name": "bad name!", "customer": 1}, "name"),
        ({"id": "x", "name": "a"}, "customer"),
        ({"id": "x", "name": "a", "customer": 1, "customer_email": "a@example.com"}, "customer"),
        ({"id": "x", "name": "a", "customer": 999999}, "customer"),
        ({"id": "x", "name": "a", "customer_email": "nobody@example.com"}, "customer_email"),
        ({"id": "x", "name": "a", "customer": 1, "properties": ["no"]}, "properties"),
        ({"id": "x", "name": "a", "customer": 1, "properties": {"k": "a\x00"}}, "properties"),
        ({"id": "x", "name": "a", "customer": 1, "occurred_at": "yesterday"}, "occurred_at"),
        ({"id": "x" * 201, "name": "a", "customer": 1}, "id"),
    ],
)
def test_a_bad_event_is_a_400_naming_the_field_and_stores_nothing(tenant, api, body, field):
    anna = customer("anna@example.com")
    if body.get("customer") == 1:
        body["customer"] = anna.pk

    response = api.post("/api/events", body, format="json")

    assert response.status_code == 400, response.json()
    assert field in response.json()
    assert not CustomEvent.objects.exists()


def test_an_event_by_email_is_stored(tenant, api):
    anna = customer("anna@example.com")

    response = api.post(
        "/api/events",
        {"id": "v-1", "name": "product.viewed", "customer_email": "ANNA@example.com"},
        format="json",
    )

    assert response.status_code == 202
    assert CustomEvent.objects.get().customer == anna


def test_another_tenants_flows_runs_and_customers_are_not_there(tenant, api, api_b):
    flow_id = make_active_flow(api, cart_flow_body(make_template(), make_template("Second")))
    anna = customer("anna@example.com")

    for path in (f"/api/flows/{flow_id}", f"/api/flows/{flow_id}/stats", f"/api/flows/{flow_id}/runs"):
        assert api_b.get(path).status_code == 404
    assert api_b.post(f"/api/flows/{flow_id}/pause").status_code == 404
    assert (
        api_b.post(
            "/api/events", {"id": "x", "name": "cart.abandoned", "customer": anna.pk}, format="json"
        ).status_code
        == 400
    )
    assert api_b.get("/api/flows").json()["count"] == 0
    assert api.get(f"/api/flows/{flow_id}").json()["status"] == "active"


def test_it_needs_authentication_and_the_models_permissions(tenant, anon_api, api, marketer):
    assert anon_api.get("/api/flows").status_code == 401
    assert anon_api.post("/api/events", {}, format="json").status_code == 401
    assert make_api_client(tenant, marketer).get("/api/flows").status_code == 200


def test_the_schema_documents_the_flow_endpoints(tenant, api):
    schema = api.get("/api/schema/?format=json").json()

    for path in (
        "/api/flows",
        "/api/flows/{id}",
        "/api/flows/{id}/activate",
        "/api/flows/{id}/stats",
        "/api/flows/{id}/runs",
        "/api/events",
    ):
        assert path in schema["paths"], path
    assert "202" in schema["paths"]["/api/events"]["post"]["responses"]
    assert "409" in schema["paths"]["/api/flows/{id}/activate"]["post"]["responses"]


def test_erasing_a_customer_drops_what_the_webshop_told_about_them(tenant, api):
    make_active_flow(api, cart_flow_body(make_template(), make_template("Second")))
    anna = customer("anna@example.com")
    post_event(api, "cart-1", anna, cart_url="https://shop.example/cart/anna", name_on_card="Anna K")

    assert api.delete(f"/api/customers/{anna.pk}").status_code in (200, 204)

    assert CustomEvent.objects.get().properties == {}
    assert FlowRun.objects.get().context == {}


def test_a_nul_in_a_flow_name_is_a_400(tenant, api):
    flow = api.post("/api/flows", {"name": "ok"}, format="json").json()

    response = api.patch(f"/api/flows/{flow['id']}", {"name": "a\x00b"}, format="json")

    assert response.status_code == 400 and "name" in response.json()
    assert Flow.objects.get().name == "ok"


def test_a_steps_carrier_campaign_is_not_among_the_marketers_campaigns(tenant, api, admin_client_a):  # noqa: F811
    body = cart_flow_body(make_template(), make_template("Second"))
    flow = Flow.objects.get(pk=make_active_flow(api, body))
    email_step = next(step["id"] for step in flow.steps if step["type"] == "email")
    carrier = carrier_campaign(flow=flow, key=(flow.pk, flow.version, email_step, 1))
    own = Campaign.objects.create(name="Autumn sale", subject="Autumn", status="sent")

    listed = [c["id"] for c in api.get("/api/campaigns").json()["results"]]
    changelist = admin_client_a.get("/admin/campaigns/campaign/").content.decode()

    assert Campaign.objects.filter(pk=carrier).exists()
    assert listed == [own.pk]
    assert api.get(f"/api/campaigns/{carrier}").status_code == 404
    assert "Autumn sale" in changelist and "Flow: " not in changelist
