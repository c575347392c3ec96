"""The selectors campaigns build audiences from, and the set-field registry higher apps fill."""

import pytest
from django.db.models import Exists, OuterRef

from customers.models import Customer, Order
from segments import rules as rule_module
from segments.models import Segment, SegmentMember
from segments.rules import RuleError, register_set_field
from segments.selectors import rules_queryset, segment_count, segment_customers

from .conftest import NOW

VIP_RULES = {"combinator": "and", "rules": [{"field": "tags", "operator": "contains", "value": "vip"}]}


def test_it_nests_inside_another_query_as_campaigns_use_it(dataset):
    segment = Segment.objects.create(name="VIPs", rules=VIP_RULES)
    audience = Customer.objects.filter(
        pk__in=segment_customers(segment=segment).values("id"), email_marketing=True
    ).exclude(
        pk__in=rules_queryset(
            rules={"combinator": "and", "rules": [{"field": "city", "operator": "=", "value": "budapest"}]}
        ).values("id")
    )
    assert dataset.keys(audience) == {"cecil"}


def test_it_lists_the_members_of_a_static_segment_but_never_an_erased_one(dataset):
    segment = Segment.objects.create(name="list", kind="static")
    for key in ("anna", "gabor", "dora"):
        SegmentMember.objects.create(segment=segment, customer_id=dataset.ids[key])
    assert dataset.keys(segment_customers(segment=segment)) == {"anna", "dora"}


def test_it_refuses_a_dynamic_segment_without_rules(tenant):
    with pytest.raises(RuleError) as caught:
        segment_customers(segment=Segment(name="x", kind="dynamic", rules=None))
    assert caught.value.messages == ["rules: a dynamic segment needs rules"]


def test_it_counts_a_segment_whose_stored_rules_no_longer_compile_as_none(api, tenant):
    segment = Segment.objects.create(
        name="old", rules={"combinator": "and", "rules": [{"field": "retired_field", "operator": "null"}]}
    )
    assert segment_count(segment=segment, refresh=True)["count"] is None
    assert api.get(f"/api/segments/{segment.pk}").json()["customer_count"] is None
    response = api.get(f"/api/segments/{segment.pk}/customers")
    assert response.status_code == 409
    assert "retired_field" in response.json()["detail"]


@pytest.fixture
def restore_fields():
    saved = dict(rule_module.FIELDS)
    yield
    rule_module.FIELDS.clear()
    rule_module.FIELDS.update(saved)


def test_it_lets_a_higher_app_register_a_set_field(dataset, restore_fields):
    def ordered_in_currency(values):
        orders = Order.objects.filter(customer=OuterRef("pk"))
        if values is not None:
            orders = orders.filter(currency__in=[value.upper() for value in values])
        return Exists(orders)

    register_set_field("order_currency", ordered_in_currency, label="Order currency")
    matched = rules_queryset(
        rules={"combinator": "and", "rules": [{"field": "order_currency", "operator": "notNull"}]}, now=NOW
    )
    assert dataset.keys(matched) == {"anna", "bela", "cecil", "erik", "fanni", "hanna", "ivan"}
    with pytest.raises(RuleError) as caught:
        rules_queryset(
            rules={"combinator": "and", "rules": [{"field": "order_currency", "operator": ">", "value": 1}]}
        )
    assert caught.value.messages == ["rules[0].operator: '>' is not valid for order_currency"]


def test_it_lets_tracking_replace_the_default_opened_campaign_field(dataset, restore_fields):
    calls = []

    def opened(values):
        calls.append(values)
        return Exists(Customer.objects.filter(pk=OuterRef("pk"), city__iexact="pécs"))

    register_set_field("opened_campaign", opened, member_type="id")
    rules = {"combinator": "and", "rules": [{"field": "opened_campaign", "operator": "in", "value": "7, 8"}]}
    assert dataset.keys(rules_queryset(rules=rules, now=NOW)) == {"ivan"}
    assert calls == [[7, 8]]
