"""`POST /api/ai/segment` offline: rules that validate, unparsed words, refusals, permissions."""

import pytest
from django.contrib.auth import get_user_model
from django.core.cache import cache
from django.db import connection
from rest_framework.throttling import ScopedRateThrottle

from customers.models import Tag
from segments.models import Segment
from segments.rules import parse_rules
from tests.conftest import make_api_client

pytestmark = pytest.mark.django_db
URL = "/api/ai/segment"


def test_it_turns_a_sentence_into_rules_that_validate(api):
    response = api.post(
        URL,
        {"text": "customers in Budapest who spent over 50000 and ordered in the last 90 days"},
        format="json",
    )

    assert response.status_code == 200
    body = response.json()
    assert body["rules"] == {
        "combinator": "and",
        "not": False,
        "rules": [
            {"field": "city", "operator": "=", "value": "Budapest"},
            {"field": "total_spent", "operator": ">", "value": "50000"},
            {"field": "last_order_at", "operator": "inLastDays", "value": 90},
        ],
    }
    assert body["unparsed"] == []
    assert body["source"] == "offline"
    assert "Budapest" in body["explanation"]
    parse_rules(body["rules"])
    assert api.post("/api/segments/preview", {"rules": body["rules"]}, format="json").status_code == 200


def test_it_knows_the_tenants_tags_and_campaign_names_but_not_another_tenants(api, api_b, tenant):
    Tag.objects.create(name="vip")

    mine = api.post(URL, {"text": "vip customers in Szeged"}, format="json").json()
    theirs = api_b.post(URL, {"text": "vip customers in Szeged"}, format="json").json()
    connection.set_tenant(tenant)

    assert mine["rules"]["rules"] == [
        {"field": "tags", "operator": "contains", "value": "vip"},
        {"field": "city", "operator": "=", "value": "Szeged"},
    ]
    assert theirs["rules"]["rules"] == [{"field": "city", "operator": "=", "value": "Szeged"}]
    assert theirs["unparsed"] == ["vip"]


def test_it_reports_the_words_it_did_not_use(api):
    body = api.post(URL, {"text": "customers in Budapest who love jazz"}, format="json").json()

    assert body["unparsed"] == ["love", "jazz"]


@pytest.mark.parametrize(
    ("payload", "field"),
    [({}, "text"), ({"text": ""}, "text"), ({"text": "   "}, "text"), ({"text": "x" * 1001}, "text"),
     ({"text": "purple elephants dancing"}, "text"), ({"text": ["in Budapest"]}, "text")],
)  # fmt: skip
def test_it_refuses_text_without_a_condition_naming_the_field_and_changes_nothing(api, payload, field):
    segments_before = Segment.objects.count()

    response = api.post(URL, payload, format="json")

    assert response.status_code == 400
    assert field in response.json()
    assert Segment.objects.count() == segments_before


def test_it_needs_the_permission_to_view_segments(tenant):
    user = get_user_model().objects.create_user(
        "nobody@tenant-a.localhost", password="pw-nobody-123", is_staff=True
    )

    assert (
        make_api_client(tenant, user).post(URL, {"text": "customers in Budapest"}, format="json").status_code
        == 403
    )
    assert (
        make_api_client(tenant).post(URL, {"text": "customers in Budapest"}, format="json").status_code == 401
    )


def test_a_marketer_may_use_it(tenant, marketer):
    assert (
        make_api_client(tenant, marketer)
        .post(URL, {"text": "customers in Budapest"}, format="json")
        .status_code
        == 200
    )


def test_it_throttles_each_user_and_answers_429_beyond_the_budget(api, admin_user, ai_budget):
    ai_budget.setitem(ScopedRateThrottle.THROTTLE_RATES, "ai", "2/min")
    cache.delete(f"throttle_ai_{admin_user.pk}")

    answers = [api.post(URL, {"text": "customers in Budapest"}, format="json").status_code for _ in range(3)]

    assert answers == [200, 200, 429]
    cache.delete(f"throttle_ai_{admin_user.pk}")
