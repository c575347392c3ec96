"""A second source of touches (what flows plug in: their step emails' clicks and opens) takes part in
live attribution and in the rebuild alike, through customers.attribution.touch_source_register."""

from datetime import timedelta

import pytest
from django.db import connection
from django.utils.dateparse import parse_datetime

from customers import attribution
from customers.attribution import attribution_rebuild, touch_source_register
from customers.models import OrderAttribution
from flows.models import Flow, FlowRun, FlowStepLog
from flows.selectors import flow_stats

from .conftest import make_sent_campaign
from .test_attribution import PLACED, click, post_order

FLOW_TOUCHES_SQL = """
SELECT t.customer_id, t.occurred_at, t.kind, NULL::bigint, t.flow_id, t.step, t.id
FROM flow_touches_for_test t
WHERE NOT t.is_machine
"""


@pytest.fixture
def flow_source(tenant, monkeypatch):
    """A stand-in for a flow app's hits: its own table, its (customer, time) index, its source."""
    with connection.cursor() as cursor:
        cursor.execute(
            """
            CREATE TABLE flow_touches_for_test (
                id bigserial PRIMARY KEY, customer_id bigint NOT NULL, occurred_at timestamptz NOT NULL,
                kind text NOT NULL, flow_id bigint NOT NULL, step text NOT NULL, is_machine boolean NOT NULL
            );
            CREATE INDEX flow_touches_for_test_touch ON flow_touches_for_test (customer_id, occurred_at)
                WHERE NOT is_machine;
            """
        )
    monkeypatch.setattr(attribution, "TOUCH_SOURCES", dict(attribution.TOUCH_SOURCES))
    touch_source_register(name="flows", sql=FLOW_TOUCHES_SQL)

    def touch(customer_id, at, kind="click", flow_id=7, step="s2", machine=False):
        with connection.cursor() as cursor:
            cursor.execute(
                "INSERT INTO flow_touches_for_test (customer_id, occurred_at, kind, flow_id, step, is_machine) "
                "VALUES (%s, %s, %s, %s, %s, %s)",
                [customer_id, at, kind, flow_id, step, machine],
            )

    return touch


@pytest.fixture
def placed():
    return parse_datetime(PLACED)


def test_it_attributes_a_flow_step_click_to_the_flow_and_step(api, tenant, flow_source, placed):
    sent = make_sent_campaign(sent_at=placed - timedelta(days=10))
    click(tenant, sent, placed - timedelta(days=2))  # an older campaign click
    flow_source(sent.recipients[0].customer_id, placed - timedelta(hours=5))

    order = post_order(api)

    assert order["attribution"]["campaign"] is None
    assert (order["attribution"]["flow"], order["attribution"]["step"]) == (7, "s2")
    assert order["attribution"]["touch"] == "click"


def test_it_prefers_a_later_campaign_click_and_ignores_machine_flow_touches(api, tenant, flow_source, placed):
    sent = make_sent_campaign(sent_at=placed - timedelta(days=10))
    customer = sent.recipients[0].customer_id
    flow_source(customer, placed - timedelta(hours=5))
    click(tenant, sent, placed - timedelta(hours=2))
    flow_source(customer, placed - timedelta(hours=1), machine=True)

    order = post_order(api)

    assert (order["attribution"]["campaign"], order["attribution"]["flow"]) == (sent.campaign.pk, None)


def test_it_rebuilds_both_sources_as_live_attributed_them(api, tenant, flow_source, placed):
    sent = make_sent_campaign(sent_at=placed - timedelta(days=10))
    for who, recipient in enumerate(sent.recipients):
        flow_source(recipient.customer_id, placed - timedelta(hours=who + 1), step=f"s{who}")
    click(tenant, sent, placed - timedelta(minutes=30), who=1)
    for who, email in enumerate(["ann@example.com", "bob@example.com", "cy@example.com"]):
        post_order(api, external_id=f"o-{who}", email=email)
    live = sorted(OrderAttribution.objects.values_list("order_id", "campaign_id", "flow_id", "step", "touch"))
    assert [row[1:] for row in live] == [
        (None, 7, "s0", "click"),
        (sent.campaign.pk, None, None, "click"),
        (None, 7, "s2", "click"),
    ]

    assert attribution_rebuild()["changed"] == 0
    assert (
        sorted(OrderAttribution.objects.values_list("order_id", "campaign_id", "flow_id", "step", "touch"))
        == live
    )


def test_it_attributes_a_flow_step_emails_click_to_its_flow_and_step(api, tenant, placed):
    carrier = make_sent_campaign(name="Flow carrier", sent_at=placed - timedelta(days=1))
    recipient = carrier.recipients[0]
    flow = Flow.objects.create(name="Welcome")
    run = FlowRun.objects.create(flow=flow, customer_id=recipient.customer_id, entry_key="k")
    FlowStepLog.objects.create(
        run=run, flow=flow, step_id="welcome-1", step_type="email", status="done", recipient=recipient
    )
    click(tenant, carrier, placed - timedelta(hours=3))  # a click in the flow step's email
    order = post_order(api)

    assert order["attribution"] == {
        **order["attribution"],
        "campaign": None,
        "flow": flow.pk,
        "step": "welcome-1",
        "touch": "click",
    }
    assert attribution_rebuild()["changed"] == 0


def test_it_shows_a_flow_steps_orders_and_revenue_in_the_flow_stats(api, tenant, placed):
    carrier = make_sent_campaign(name="Flow carrier", sent_at=placed - timedelta(days=1))
    flow = Flow.objects.create(name="Welcome", steps=[{"id": "welcome-1", "type": "email", "template": 1}])
    run = FlowRun.objects.create(flow=flow, customer_id=carrier.recipients[0].customer_id, entry_key="k")
    FlowStepLog.objects.create(
        run=run,
        flow=flow,
        step_id="welcome-1",
        step_type="email",
        status="done",
        recipient=carrier.recipients[0],
    )
    click(tenant, carrier, placed - timedelta(hours=3))
    post_order(api, total="80.00")

    [step] = flow_stats(flow=flow)["steps"]
    assert (step["orders"], str(step["revenue"])) == (1, "80.00")
