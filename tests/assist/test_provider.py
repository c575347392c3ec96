"""The OpenAI-compatible provider against a local server started by the test (tests/assist/fake_llm.py):
real HTTP, canned completions, slow and failing modes. Fallback within the time-out, validation of
every answer, the tenant's switch, and no customer's email, name or phone in any request body."""

import json
import logging
import time

import pytest

from assist import services
from assist.providers import OpenAICompatibleProvider
from campaigns.models import Campaign
from tenancy.models import Tenant
from tenancy.tenant_settings import tenant_settings_update
from tests.assist.conftest import PEOPLE, sent_campaign

pytestmark = pytest.mark.django_db

RULES = {"combinator": "and", "not": False, "rules": [{"field": "city", "operator": "=", "value": "Szeged"}]}


def _segment_reply(body):
    return {"rules": RULES, "explanation": "Customers in Szeged.", "unparsed": []}


def test_it_answers_from_the_provider_with_a_json_schema_request(api, llm):
    llm.reply = _segment_reply

    body = api.post("/api/ai/segment", {"text": "people living in Szeged"}, format="json").json()

    assert body == {
        "rules": RULES,
        "explanation": "Customers in Szeged.",
        "unparsed": [],
        "source": "provider",
    }
    headers, request = llm.received[0]
    assert headers["Authorization"] == "Bearer test-key"
    assert request["model"] == "test-model"
    assert request["response_format"]["type"] == "json_schema"
    assert request["response_format"]["json_schema"]["schema"] == services.SEGMENT_SCHEMA
    system = request["messages"][0]["content"]
    assert "total_spent (number)" in system and "inLastDays" in system


def test_it_falls_back_offline_within_the_time_out_when_the_provider_is_slow(api, llm, caplog):
    llm.mode = "slow"  # the server would answer after 30 s; the time-out is 2 s
    started = time.monotonic()

    with caplog.at_level(logging.WARNING, logger="assist.services"):
        body = api.post("/api/ai/segment", {"text": "customers in Budapest"}, format="json").json()

    elapsed = time.monotonic() - started
    assert body["source"] == "offline"
    assert body["rules"]["rules"] == [{"field": "city", "operator": "=", "value": "Budapest"}]
    assert elapsed < 15, elapsed  # far below the server's 30 s: the answer did not wait for it
    assert "tenant_a" in caplog.text and "no answer within 2 s" in caplog.text


@pytest.mark.parametrize("mode", ["fail", "garbage"])
def test_it_falls_back_offline_when_the_provider_fails(api, llm, mode, caplog):
    llm.mode = mode

    with caplog.at_level(logging.WARNING, logger="assist.services"):
        body = api.post("/api/ai/segment", {"text": "customers in Budapest"}, format="json").json()

    assert body["source"] == "offline"
    assert "AI provider failed for tenant tenant_a (segment)" in caplog.text


def test_it_refuses_provider_rules_that_do_not_validate(api, llm):
    llm.reply = lambda body: {
        "rules": {
            "combinator": "and",
            "not": False,
            "rules": [{"field": "shoe_size", "operator": ">", "value": "42"}],
        },
        "explanation": "Big feet.",
        "unparsed": [],
    }

    body = api.post("/api/ai/segment", {"text": "customers in Budapest"}, format="json").json()

    assert body["source"] == "offline"
    assert body["rules"]["rules"] == [{"field": "city", "operator": "=", "value": "Budapest"}]


def test_it_asks_again_with_json_object_when_the_endpoint_refuses_json_schema(api, llm):
    llm.mode = "refuse_schema"
    llm.reply = _segment_reply
    OpenAICompatibleProvider._schema_refused.discard(llm.base_url)

    body = api.post("/api/ai/segment", {"text": "people living in Szeged"}, format="json").json()

    assert body["source"] == "provider"
    assert [request["response_format"]["type"] for _, request in llm.received] == [
        "json_schema",
        "json_object",
    ]
    OpenAICompatibleProvider._schema_refused.discard(llm.base_url)


def test_a_tenant_can_switch_the_provider_off(api, llm, tenant):
    tenant_settings_update(tenant=tenant, changes={"ai_provider_enabled": False})
    llm.reply = _segment_reply

    body = api.post("/api/ai/segment", {"text": "customers in Budapest"}, format="json").json()

    assert body["source"] == "offline"
    assert llm.received == []
    assert Tenant.objects.get(pk=tenant.pk).ai_provider_enabled is False


def test_it_refuses_a_rewritten_summary_whose_numbers_differ_and_keeps_the_stats_numbers(api, llm):
    campaign = sent_campaign()
    llm.reply = lambda body: {"summary": "Spring sale reached 2,000 people and 45.0% opened it. Great work!"}

    body = api.post(f"/api/campaigns/{campaign.pk}/summary").json()
    stats = api.get(f"/api/campaigns/{campaign.pk}/stats").json()

    assert body["source"] == "offline"
    assert "2,000" not in body["summary"] and "45.0%" not in body["summary"]
    assert f"{100 * stats['open_rate']:.1f}%" in body["summary"]
    assert Campaign.objects.get(pk=campaign.pk).summary_source == "offline"


def test_it_keeps_a_rewritten_summary_whose_numbers_are_the_facts(api, llm):
    campaign = sent_campaign()

    def rewrite(body):
        facts = json.loads(body["messages"][1]["content"])["facts"]
        return {
            "summary": f"Your Spring sale went to {facts['sent']:,} people; {100 * facts['open_rate']:.1f}% opened it, "
            "well worth repeating at 14:00 UTC."
        }

    llm.reply = rewrite

    body = api.post(f"/api/campaigns/{campaign.pk}/summary").json()

    assert body["source"] == "provider"
    assert body["summary"].startswith("Your Spring sale went to 200 people; 30.0% opened it")
    assert Campaign.objects.get(pk=campaign.pk).summary == body["summary"]


def test_it_filters_provider_subjects_by_length_and_spam_rules(api, llm):
    campaign = sent_campaign()
    llm.reply = lambda body: {
        "subjects": [
            "ACT NOW!!! 100% FREE tea",
            "x" * 79,
            "Spring teas are here: 20% off Sencha",
            "Re: your order",
        ]
    }

    body = api.post("/api/ai/subjects", {"campaign": campaign.pk, "count": 3}, format="json").json()

    assert body["source"] == "provider"
    assert body["subjects"] == ["Spring teas are here: 20% off Sencha"]
    assert len(body["rejected"]) == 3


def test_it_sends_no_customer_email_name_or_phone_to_the_provider(api, llm):
    llm.reply = lambda body: (
        {"rules": {"combinator": "and", "not": False, "rules": [{"field": "email", "operator": "=", "value": "EMAIL_1"}]},
         "explanation": "One address.", "unparsed": []}
        if body["response_format"].get("json_schema", {}).get("name") == "segment_rules"
        else {"summary": "Fine."} if "summary" in body["messages"][0]["content"] else {"subjects": ["Spring teas: 20% off"]}
    )  # fmt: skip
    campaign = sent_campaign()
    earlier = sent_campaign(name="Earlier", sent_at=campaign.sent_at.replace(year=2025))

    segment = api.post(
        "/api/ai/segment",
        {"text": "customers with the address zsofia.kertesz@example.com or +36 30 555 0101"},
        format="json",
    ).json()
    api.post(f"/api/campaigns/{campaign.pk}/summary")
    api.post(f"/api/campaigns/{earlier.pk}/summary")
    api.post("/api/ai/subjects", {"campaign": campaign.pk}, format="json")

    bodies = llm.bodies()
    assert len(bodies) == 4
    for email, first, last, phone in PEOPLE:
        for secret in (email, first, last, phone, phone.replace(" ", "")):
            assert not any(secret in body for body in bodies), secret
    # The address typed into the sentence went out as a placeholder and came back in the rules.
    assert segment["source"] == "provider"
    assert segment["rules"]["rules"][0]["value"] == "zsofia.kertesz@example.com"
