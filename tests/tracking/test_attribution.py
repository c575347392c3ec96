"""Revenue attribution at order ingest (PRODUCT.md "Revenue attribution"): an order goes to the
customer's last human click within the click window, else the last human open within the open window;
through the API, the bulk API and the webshop bus alike, once per order."""

from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils.dateparse import parse_datetime
from django_tenants.utils import schema_context

from campaigns.proofs import campaign_test_send
from customers.management.commands.consume_webshop_events import order_created, order_updated
from customers.models import Order, OrderAttribution
from customers.serializers import OrderInputSerializer
from customers.services import order_upsert
from events.contracts import event_errors
from events.models import OutboxEvent
from tenancy.models import Tenant
from tenancy.tenant_settings import tenant_settings_update
from tracking.hits import hit_record_click, hit_record_open

from .conftest import APPLE_MPP_AGENT, HUMAN_AGENT, make_sent_campaign

PLACED = "2026-03-10T12:00:00+00:00"


@pytest.fixture
def placed():
    return parse_datetime(PLACED)


@pytest.fixture
def campaign(tenant, placed):
    """A campaign sent 10 days before the order, to ann, bob and cy."""
    return make_sent_campaign(sent_at=placed - timedelta(days=10))


def click(tenant, sent, at, *, who=0, link=0, agent=HUMAN_AGENT):
    assert hit_record_click(
        tenant=tenant,
        recipient_id=sent.recipients[who].pk,
        link_id=sent.links[link].pk,
        user_agent=agent,
        occurred_at=at,
    )


def open_(tenant, sent, at, *, who=0, agent=HUMAN_AGENT):
    assert hit_record_open(
        tenant=tenant, recipient_id=sent.recipients[who].pk, user_agent=agent, occurred_at=at
    )


def post_order(api, external_id="o-1", email="ann@example.com", total="100.00", placed_at=PLACED, **fields):
    payload = {
        "external_id": external_id,
        "customer_email": email,
        "total": total,
        "placed_at": placed_at,
        **fields,
    }
    response = api.post("/api/orders", payload, format="json")
    assert response.status_code in (200, 201), response.content
    return response.json()


def attributed_events():
    return list(OutboxEvent.objects.filter(type="order.attributed").order_by("id"))


def test_it_attributes_an_order_to_the_last_click_within_the_window(api, tenant, campaign, placed):
    click(tenant, campaign, placed - timedelta(days=4, hours=23))
    order = post_order(api)

    assert order["attribution"] == {
        "campaign": campaign.campaign.pk,
        "flow": None,
        "step": None,
        "touch": "click",
        "touched_at": (placed - timedelta(days=4, hours=23)).isoformat().replace("+00:00", "Z"),
    }
    assert api.get(f"/api/orders/{order['id']}").json()["attribution"] == order["attribution"]
    [event] = attributed_events()
    assert event.data["order_id"] == order["id"]
    assert event.data["campaign"] == campaign.campaign.pk
    assert event.data["touch"] == "click"
    assert event.data["total"] == "100.00"


def test_it_publishes_order_attributed_valid_against_its_schema(api, tenant, campaign, placed):
    click(tenant, campaign, placed - timedelta(hours=2))
    post_order(api)
    [event] = attributed_events()
    assert event_errors(event.envelope()) == []


def test_it_prefers_a_click_to_a_later_open_and_the_latest_click_to_an_earlier_one(api, tenant, placed):
    first = make_sent_campaign(name="First", sent_at=placed - timedelta(days=10))
    second = make_sent_campaign(name="Second", sent_at=placed - timedelta(days=10))
    click(tenant, first, placed - timedelta(days=3))
    click(tenant, second, placed - timedelta(days=2))
    open_(tenant, first, placed - timedelta(hours=1))

    order = post_order(api)

    assert order["attribution"]["campaign"] == second.campaign.pk
    assert order["attribution"]["touch"] == "click"


def test_it_falls_back_to_the_last_human_open_within_the_open_window(api, tenant, campaign, placed):
    click(tenant, campaign, placed - timedelta(days=6))  # outside the 5-day click window
    open_(tenant, campaign, placed - timedelta(hours=20))

    order = post_order(api)

    assert order["attribution"]["touch"] == "open"
    assert order["attribution"]["campaign"] == campaign.campaign.pk


@pytest.mark.parametrize(
    "touch",
    [
        pytest.param(
            lambda t, s, p: click(t, s, p - timedelta(days=5, seconds=1)), id="click-outside-window"
        ),
        pytest.param(lambda t, s, p: open_(t, s, p - timedelta(days=1, seconds=1)), id="open-outside-window"),
        pytest.param(
            lambda t, s, p: open_(t, s, p - timedelta(hours=1), agent=APPLE_MPP_AGENT), id="machine-open"
        ),
        pytest.param(lambda t, s, p: click(t, s, p - timedelta(hours=1), agent="curl/8.5"), id="bot-click"),
        pytest.param(lambda t, s, p: click(t, s, p + timedelta(minutes=1)), id="click-after-the-order"),
        pytest.param(lambda t, s, p: click(t, s, p - timedelta(hours=1), who=1), id="someone-elses-click"),
    ],
)
def test_it_attributes_nothing_without_a_human_touch_in_the_window(api, tenant, campaign, placed, touch):
    touch(tenant, campaign, placed)

    order = post_order(api)

    assert order["attribution"] is None
    assert not OrderAttribution.objects.exists()
    assert attributed_events() == []


def test_it_attributes_nothing_to_a_test_send(api, tenant, placed, mailoutbox):
    sent = make_sent_campaign(name="Tested", emails=(), sent_at=placed - timedelta(days=1))
    sent.campaign.html_body = '<p>Hi <a href="https://shop.example.com/sale">sale</a></p>'
    sent.campaign.save()
    result = campaign_test_send(campaign=sent.campaign, emails=["ann@example.com"])
    assert result and len(mailoutbox) == 1
    # A test copy has no recipient row, so its links and pixel are not tracking links at all.
    assert "/t/c/" not in mailoutbox[0].body and "/t/o/" not in str(mailoutbox[0].alternatives)

    assert post_order(api)["attribution"] is None


def test_it_attributes_a_repeated_order_once(api, tenant, campaign, placed):
    click(tenant, campaign, placed - timedelta(hours=3))
    first = post_order(api)
    click(tenant, campaign, placed - timedelta(hours=1), who=0, link=1)
    again = post_order(api, status="paid")

    assert again["id"] == first["id"]
    assert again["attribution"] == first["attribution"]
    assert OrderAttribution.objects.count() == 1
    assert len(attributed_events()) == 1


def test_it_takes_a_cancelled_or_refunded_order_out_of_the_revenue(api, tenant, campaign, placed):
    click(tenant, campaign, placed - timedelta(hours=3))
    order = post_order(api, total="250.00")
    stats = f"/api/campaigns/{campaign.campaign.pk}/stats"
    assert api.get(stats).json()["revenue"] == "250.00"

    assert api.patch(f"/api/orders/{order['id']}", {"status": "cancelled"}, format="json").status_code == 200

    after = api.get(stats).json()
    assert (after["orders"], after["revenue"], after["conversion_rate"]) == (0, "0.00", 0.0)
    # Still credited to the campaign (the answer to "where did it come from"), just not counted.
    assert api.get(f"/api/orders/{order['id']}").json()["attribution"]["campaign"] == campaign.campaign.pk

    post_order(api, total="250.00", status="paid")  # the webshop un-cancels it
    assert api.get(stats).json()["revenue"] == "250.00"
    post_order(api, total="250.00", status="refunded")
    assert api.get(stats).json()["revenue"] == "0.00"


def test_it_reports_orders_revenue_and_conversion_in_the_campaign_stats(api, tenant, campaign, placed):
    click(tenant, campaign, placed - timedelta(days=1), who=0)
    open_(tenant, campaign, placed - timedelta(hours=1), who=1)
    post_order(api, external_id="a-1", total="100.00")
    post_order(api, external_id="a-2", total="50.00", placed_at="2026-03-10T13:00:00+00:00")
    post_order(api, external_id="b-1", email="bob@example.com", total="30.00")
    post_order(api, external_id="c-1", email="cy@example.com", total="999.00")  # no touch

    stats = api.get(f"/api/campaigns/{campaign.campaign.pk}/stats").json()

    # 3 recipients sent (no delivery data): 2 of them bought, for 180.00 in all.
    assert (stats["orders"], stats["revenue"], stats["revenue_per_recipient"]) == (3, "180.00", "60.00")
    assert stats["conversion_rate"] == pytest.approx(2 / 3)


def test_it_attributes_orders_of_the_bulk_api(api, tenant, campaign, placed):
    click(tenant, campaign, placed - timedelta(hours=3), who=1)
    items = [
        {"external_id": "b-1", "customer_email": "bob@example.com", "total": "10.00", "placed_at": PLACED},
        {"external_id": "b-2", "customer_email": "cy@example.com", "total": "20.00", "placed_at": PLACED},
        {"external_id": "b-3", "customer_email": "bob@example.com", "total": "x", "placed_at": PLACED},
    ]
    response = api.post("/api/orders/bulk", items, format="json")
    assert response.status_code == 200, response.content
    assert [r["status"] for r in response.json()["results"]] == ["created", "created", "error"]

    assert list(OrderAttribution.objects.values_list("order__external_id", "campaign_id", "touch")) == [
        ("b-1", campaign.campaign.pk, "click")
    ]


def test_it_attributes_a_bulk_in_one_statement_with_one_event_per_credited_order(
    api, tenant, campaign, placed
):
    click(tenant, campaign, placed - timedelta(hours=3), who=0)
    open_(tenant, campaign, placed - timedelta(hours=2), who=1)
    items = [
        {"external_id": f"b-{n}", "customer_email": email, "total": "10.00", "placed_at": PLACED}
        for n, email in enumerate(["ann@example.com", "bob@example.com", "cy@example.com", "ann@example.com"])
    ]
    with CaptureQueriesContext(connection) as queries:
        response = api.post("/api/orders/bulk", items, format="json")
    assert response.status_code == 200, response.content

    inserts = [
        q["sql"] for q in queries.captured_queries if "INSERT INTO customers_order_attribution" in q["sql"]
    ]
    assert len(inserts) == 1
    credited = dict(OrderAttribution.objects.values_list("order__external_id", "touch"))
    assert credited == {"b-0": "click", "b-1": "open", "b-3": "click"}
    events = attributed_events()
    assert sorted(event.data["external_id"] for event in events) == ["b-0", "b-1", "b-3"]
    assert all(event_errors(event.envelope()) == [] for event in events)
    assert {event.data["placed_at"] for event in events} == {"2026-03-10T12:00:00Z"}


def test_it_attributes_a_redelivered_order_whose_first_push_stopped_before_attribution(
    api, tenant, campaign, placed
):
    click(tenant, campaign, placed - timedelta(hours=3))
    # A bulk request whose process died after recording its orders and before attributing them.
    serializer = OrderInputSerializer(
        data={
            "external_id": "o-1",
            "customer_email": "ann@example.com",
            "total": "100.00",
            "placed_at": PLACED,
        }
    )
    serializer.is_valid(raise_exception=True)
    order_upsert(data=serializer.validated_data, attribute=False)
    assert not OrderAttribution.objects.exists()

    response = api.post(
        "/api/orders/bulk",
        [{"external_id": "o-1", "customer_email": "ann@example.com", "total": "100.00", "placed_at": PLACED}],
        format="json",
    )  # the webshop's retry
    assert response.json()["results"][0]["status"] == "updated"
    assert OrderAttribution.objects.get().touch == "click"
    post_order(api)  # and again: nothing more
    assert OrderAttribution.objects.count() == 1
    assert len(attributed_events()) == 1


def test_it_attributes_orders_from_the_webshop_bus(tenant, campaign, placed):
    open_(tenant, campaign, placed - timedelta(hours=3), who=2)
    order_created(
        {"external_id": "w-1", "customer_email": "cy@example.com", "total": "30.00", "placed_at": PLACED}
    )
    order_updated({"external_id": "w-1", "status": "refunded"})

    attribution = OrderAttribution.objects.get(order__external_id="w-1")
    assert (attribution.campaign_id, attribution.touch, attribution.counts) == (
        campaign.campaign.pk,
        "open",
        False,
    )


def test_it_follows_the_tenants_windows(api, tenant, campaign, placed):
    tenant_settings_update(tenant=tenant, changes={"attribution_click_days": 7, "attribution_open_days": 0})
    click(tenant, campaign, placed - timedelta(days=6))
    open_(tenant, campaign, placed - timedelta(hours=1), who=1)

    assert post_order(api)["attribution"]["touch"] == "click"
    assert post_order(api, external_id="o-2", email="bob@example.com")["attribution"] is None


@pytest.mark.parametrize(
    "field, value",
    [
        ("attribution_click_days", -1),
        ("attribution_click_days", 91),
        ("attribution_open_days", "a week"),
        ("attribution_open_days", None),
    ],
)
def test_it_refuses_a_bad_window_naming_the_field_and_changes_nothing(tenant, field, value):
    before = Tenant.objects.values("attribution_click_days", "attribution_open_days").get(pk=tenant.pk)
    with pytest.raises(ValidationError) as refused:
        tenant_settings_update(tenant=tenant, changes={field: value})
    assert field in refused.value.message_dict
    assert (
        Tenant.objects.values("attribution_click_days", "attribution_open_days").get(pk=tenant.pk) == before
    )


def test_it_never_attributes_across_tenants(api_b, tenant, other_tenant, campaign, placed):
    click(tenant, campaign, placed - timedelta(hours=1))
    order = post_order(api_b)  # the same address is a different customer in tenant B
    connection.set_tenant(tenant)  # the tenant middleware left the connection on B's schema
    assert order["attribution"] is None
    with schema_context(other_tenant.schema_name):
        assert not OrderAttribution.objects.exists()
    assert not Order.objects.filter(external_id="o-1").exists()  # and nothing landed in tenant A


def test_it_shows_revenue_beside_opens_and_clicks_on_the_stats_page(api, tenant, campaign, placed, marketer):
    click(tenant, campaign, placed - timedelta(hours=2))
    post_order(api, total="1234.50")
    client = Client(HTTP_HOST=tenant.get_primary_domain().domain)
    client.force_login(marketer)

    html = client.get(reverse("admin:tracking_campaign_stats", args=[campaign.campaign.pk])).content.decode()

    assert "Revenue" in html and "1,235 HUF" in html  # the tenant's currency, with separators
    assert "orders: 1 · 412 HUF per recipient" in html
    assert "Conversion rate" in html and "33.3%" in html
