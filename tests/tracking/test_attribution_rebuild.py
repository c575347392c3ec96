"""`attribution_rebuild` recomputes a tenant's attribution in SQL with the same result as attributing
each order as it arrived, on a generated history of clicks, human and machine opens and orders."""

import random
from datetime import timedelta
from decimal import Decimal

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.utils import timezone

from customers.attribution import attribution_rebuild
from customers.models import Order, OrderAttribution
from customers.serializers import OrderInputSerializer
from customers.services import order_set_status, order_upsert
from tenancy.tenant_settings import tenant_settings_update
from tracking.hits import hit_record_click, hit_record_open
from tracking.models import Hit

from .conftest import APPLE_MPP_AGENT, HUMAN_AGENT, make_sent_campaign

EMAILS = tuple(f"shopper{i}@example.com" for i in range(25))


def rows():
    return sorted(
        OrderAttribution.objects.values_list(
            "order_id",
            "customer_id",
            "campaign_id",
            "flow_id",
            "step",
            "touch",
            "touched_at",
            "total",
            "counts",
        )
    )


def expected(click_days, open_days):
    """The rule of PRODUCT.md, in plain Python over every order and hit."""
    hits = list(
        Hit.objects.filter(is_machine=False).values("id", "customer_id", "kind", "campaign_id", "occurred_at")
    )
    result = []
    for order in Order.objects.all():
        mine = [
            h for h in hits if h["customer_id"] == order.customer_id and h["occurred_at"] <= order.placed_at
        ]
        clicks = [
            h
            for h in mine
            if h["kind"] == "c" and h["occurred_at"] >= order.placed_at - timedelta(days=click_days)
        ]
        opens = [
            h
            for h in mine
            if h["kind"] == "o" and h["occurred_at"] >= order.placed_at - timedelta(days=open_days)
        ]
        pool = (clicks if click_days else []) or (opens if open_days else [])
        if not pool:
            continue
        best = max(pool, key=lambda h: (h["occurred_at"], h["id"]))
        result.append(
            (
                order.pk,
                order.customer_id,
                best["campaign_id"],
                None,
                None,
                "click" if best["kind"] == "c" else "open",
                best["occurred_at"],
                order.total,
                order.status not in ("cancelled", "refunded"),
            )
        )
    return sorted(result)


@pytest.fixture
def history(tenant):
    """4 campaigns to 25 shoppers, 400 hits over 15 days (a quarter of the opens by machines), then 120
    orders pushed as they would arrive (some twice, some cancelled later)."""
    rng = random.Random(16)
    now = timezone.now().replace(microsecond=0)
    start = now - timedelta(days=15)
    campaigns = [
        make_sent_campaign(name=f"C{i}", emails=EMAILS, sent_at=start - timedelta(days=1)) for i in range(4)
    ]
    for _ in range(400):
        sent = rng.choice(campaigns)
        who = rng.randrange(len(EMAILS))
        at = start + timedelta(seconds=rng.randrange(15 * 86400))
        if rng.random() < 0.4:
            link = rng.choice(sent.links)
            assert hit_record_click(
                tenant=tenant,
                recipient_id=sent.recipients[who].pk,
                link_id=link.pk,
                user_agent=HUMAN_AGENT,
                occurred_at=at,
            )
        else:
            agent = APPLE_MPP_AGENT if rng.random() < 0.25 else HUMAN_AGENT
            assert hit_record_open(
                tenant=tenant, recipient_id=sent.recipients[who].pk, user_agent=agent, occurred_at=at
            )
    orders = []
    for i in range(120):
        data = {
            "external_id": f"h-{i}",
            "customer_email": rng.choice(EMAILS),
            "total": f"{rng.randrange(1000, 90000) / 100:.2f}",
            "placed_at": (start + timedelta(days=2, seconds=rng.randrange(13 * 86400))).isoformat(),
            "status": "paid",
        }
        serializer = OrderInputSerializer(data=data)
        serializer.is_valid(raise_exception=True)
        order, _ = order_upsert(data=serializer.validated_data)
        orders.append(order)
        if rng.random() < 0.2:
            order_upsert(data=serializer.validated_data)  # the webshop repeats itself
    for order in rng.sample(orders, 15):
        order_set_status(order=order, status=rng.choice(["cancelled", "refunded"]))
    return orders


def test_it_rebuilds_exactly_what_live_attribution_recorded(history):
    live = rows()
    assert len(live) > 40  # a history where attribution matters
    assert {row[5] for row in live} == {"click", "open"}
    assert any(not row[8] for row in live)  # cancelled ones among them
    assert live == expected(5, 1)

    result = attribution_rebuild()

    assert rows() == live
    assert result == {"orders": 120, "attributed": len(live), "removed": 0, "changed": 0}


def test_it_rebuilds_with_new_windows_and_back(history, tenant):
    live = rows()
    tenant_settings_update(tenant=tenant, changes={"attribution_click_days": 2, "attribution_open_days": 0})

    result = attribution_rebuild()

    assert rows() == expected(2, 0)
    assert rows() != live
    assert result["removed"] > 0
    assert {row[5] for row in rows()} == {"click"}

    tenant_settings_update(tenant=tenant, changes={"attribution_click_days": 5, "attribution_open_days": 1})
    attribution_rebuild()
    assert rows() == live


def test_it_runs_as_a_management_command(history, tenant, capsys):
    live = rows()
    OrderAttribution.objects.filter(pk__in=[row[0] for row in live[:5]]).delete()
    OrderAttribution.objects.filter(pk=live[5][0]).update(total=Decimal("1.00"))
    try:
        call_command("attribution_rebuild", tenant="tenant-a")
    finally:
        connection.set_tenant(tenant)
    assert rows() == live
    assert f"120 orders, {len(live)} attributed (6 written, 0 removed)" in capsys.readouterr().out


def test_it_refuses_an_unknown_tenant(tenant):
    with pytest.raises(CommandError, match="No tenant 'nope'"):
        call_command("attribution_rebuild", tenant="nope")
    connection.set_tenant(tenant)
