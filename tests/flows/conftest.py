"""Helpers for flow tests: templates, flows through the API, time travel for waiting runs."""

import pytest
from django.db import connection

from campaigns.models import EmailTemplate
from campaigns.ratelimit import RateLimiter
from customers.models import Customer
from flows import engine, sender, triggers
from flows.models import FlowRun
from segments.models import Segment
from tests.conftest import verified_sender_domain

FAST = RateLimiter(rate_per_second=100000)

CART_HTML = (
    "<html><body><p>Hi {{ customer.first_name }}, your cart of {{ event.properties.total }} waits:</p>"
    '<p><a href="{{ event.properties.cart_url }}">Back to your cart</a> '
    '<a href="https://shop.example/sale">Sale</a></p></body></html>'
)


@pytest.fixture(autouse=True)
def locmem(settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    settings.MAIL_UNSUBSCRIBE_MAILTO = ""


def make_template(
    name="Cart reminder", subject="You left something, {{ customer.first_name }}", html=CART_HTML
):
    return EmailTemplate.objects.create(name=name, subject=subject, html_body=html, kind="marketing")


def cart_flow_body(first, second, *, delay=None, timeout=None, **extra):
    """PRODUCT.md's abandoned cart: event -> delay -> email -> wait_for order -> second email."""
    verified_sender_domain("shop.example")
    return {
        "name": "Abandoned cart",
        "trigger": {"type": "event", "name": "cart.abandoned"},
        "steps": [
            {"id": "wait", "type": "delay", **(delay or {"hours": 1})},
            {"id": "remind", "type": "email", "template": first.pk},
            {
                "id": "order",
                "type": "wait_for",
                "event": "order_placed",
                "timeout": timeout or {"hours": 24},
                "yes": "bought",
            },
            {
                "id": "again",
                "type": "email",
                "template": second.pk,
                "subject": "Last call, {{ customer.first_name }}",
            },
            {"id": "bought", "type": "exit"},
        ],
        "frequency_cap_hours": 0,
        "from_email": "news@shop.example",
        "from_name": "Shop",
        **extra,
    }


def make_active_flow(api, body):
    response = api.post("/api/flows", body, format="json")
    assert response.status_code == 201, response.json()
    flow_id = response.json()["id"]
    response = api.post(f"/api/flows/{flow_id}/activate")
    assert response.status_code == 200, response.json()
    return flow_id


def customer(email, consent=True, **fields):
    return Customer.objects.create(
        email=email, first_name=email.split("@")[0].title(), email_marketing=consent, **fields
    )


def post_event(api, event_id, who, name="cart.abandoned", **properties):
    return api.post(
        "/api/events",
        {"id": event_id, "name": name, "customer": who.pk, "properties": properties},
        format="json",
    )


def time_passes(flow_id=None, seconds=0):
    """Every active run is due now; waits started `seconds` earlier (their timeout may have passed)."""
    runs = FlowRun.objects.filter(status="active")
    if flow_id:
        runs = runs.filter(flow_id=flow_id)
    with connection.cursor() as cursor:
        ids = list(runs.values_list("id", flat=True))
        cursor.execute(
            "UPDATE flow_runs SET due_at = clock_timestamp() - interval '1 second', "
            "waiting_since = waiting_since - make_interval(secs => %s) WHERE id = ANY(%s)",
            [seconds, ids],
        )


def tick():
    """What the beat's tick does for one tenant: advance due runs, then send what they queued."""
    outcome = engine.flows_dispatch()
    sent = sender.flow_messages_send(time_budget=30)
    return outcome, sent


def make_segment_flow(api, rules=None, name="Segment", *, segment=None):
    """An active segment_entered flow (one tag step) on a dynamic segment of `rules`, or on `segment`,
    past its first sweep (which notes who matched at activation): from here on, customers who come to
    match enter."""
    if segment is None:
        segment = Segment.objects.create(
            name=name, kind="dynamic", rules={"combinator": "and", "rules": rules}
        )
    flow_id = make_active_flow(
        api,
        {
            "name": name,
            "trigger": {"type": "segment_entered", "segment": segment.pk},
            "steps": [{"id": "t", "type": "tag", "add": ["entered"]}],
            "frequency_cap_hours": 0,
        },
    )
    triggers.flow_triggers_sweep()
    return flow_id


def entered_customers(flow_id):
    """Ids of the customers who entered the flow (not those noted as matching at activation)."""
    runs = FlowRun.objects.filter(flow_id=flow_id).exclude(entry_key="baseline")
    return sorted(runs.values_list("customer_id", flat=True))
