"""Segments' `opened_campaign` / `clicked_campaign` read what the roll-up recorded (humans only)."""

from customers.models import Customer
from segments.selectors import rules_queryset
from tracking.hits import hit_record_click, hit_record_open
from tracking.rollup import hits_rollup

from .conftest import APPLE_MPP_AGENT, HUMAN_AGENT


def _emails(rules):
    return sorted(rules_queryset(rules=rules).values_list("email", flat=True))


def _rule(field, operator, value=None):
    return {"combinator": "and", "rules": [{"field": field, "operator": operator, "value": value}]}


def test_it_matches_openers_and_clickers_of_a_campaign(tenant, sent):
    r = sent.recipients
    hit_record_open(tenant=tenant, recipient_id=r[0].pk, user_agent=HUMAN_AGENT)
    hit_record_click(tenant=tenant, recipient_id=r[1].pk, link_id=sent.links[0].pk, user_agent=HUMAN_AGENT)
    hit_record_open(tenant=tenant, recipient_id=r[2].pk, user_agent=APPLE_MPP_AGENT)
    Customer.objects.create(email="never@example.com", email_marketing=True)
    hits_rollup()
    campaign = str(sent.campaign.pk)
    assert _emails(_rule("opened_campaign", "contains", campaign)) == ["ann@example.com", "bob@example.com"]
    assert _emails(_rule("clicked_campaign", "contains", campaign)) == ["bob@example.com"]
    assert _emails(_rule("opened_campaign", "doesNotContain", campaign)) == [
        "cy@example.com",
        "never@example.com",
    ]
    assert _emails(_rule("clicked_campaign", "null")) == [
        "ann@example.com",
        "cy@example.com",
        "never@example.com",
    ]
