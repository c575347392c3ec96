"""A/B tests (PRODUCT.md "A/B tests") in process: variants in the API, the reproducible even sample,
the Bayesian winner, the three ways of deciding, the remainder sent with the winner exactly once."""

import email
import email.policy
from collections import Counter
from datetime import timedelta
from decimal import Decimal

import pytest
from django.core import mail
from django.db import connection
from django.utils import timezone

from campaigns import abtests, lifecycle, sender
from campaigns.models import Campaign, CampaignRecipient
from campaigns.ratelimit import RateLimiter
from customers.models import Order, OrderAttribution
from events.models import OutboxEvent

from .conftest import make_campaign, make_customers, static_segment

FAST = RateLimiter(rate_per_second=100000)
VARIANTS = [
    {"key": "A", "subject": "Spring sale: 20% off"},
    {"key": "B", "subject": "Your spring treat inside", "from_name": "Anna from Shop"},
]
AB_TEST = {"test_percent": 20, "metric": "open_rate", "wait_seconds": 3600, "min_confidence": 0.95}


@pytest.fixture(autouse=True)
def locmem(settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    settings.MAIL_UNSUBSCRIBE_MAILTO = ""


def ab_campaign(n=100, variants=VARIANTS, ab_test=AB_TEST, **fields):
    return make_campaign(
        static_segment(make_customers(n, prefix="ab")), variants=variants, ab_test=ab_test, **fields
    )


def started(n=100, **fields):
    campaign = ab_campaign(n, **fields)
    lifecycle.campaign_send_now(campaign=campaign)
    campaign.refresh_from_db()
    return campaign


def split(campaign):
    rows = CampaignRecipient.objects.filter(campaign=campaign)
    return Counter((r.status, r.variant, r.ab_sample) for r in rows)


def send_all(campaign):
    sender.campaign_batches_send(campaign_id=campaign.pk, time_budget=60, messenger=None, limiter=FAST)


def subjects():
    parsed = [
        email.message_from_bytes(m.message().as_bytes(), policy=email.policy.default) for m in mail.outbox
    ]
    return Counter(str(m["Subject"]) for m in parsed), Counter(m["To"] for m in parsed)


# --- the API --------------------------------------------------------------------------------------


def test_it_takes_variants_and_the_test_through_the_api(api, tenant):
    segment = static_segment(make_customers(3))
    response = api.post(
        "/api/campaigns",
        {
            "name": "Spring",
            "subject": "Spring",
            "html_body": "<p>Hi</p>",
            "segment": segment.pk,
            "variants": [*VARIANTS, {"key": "C", "html_body": "<p>Other</p>"}],
            "ab_test": {"metric": "click_rate"},
        },
        format="json",
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert [v["key"] for v in body["variants"]] == ["A", "B", "C"]
    assert body["ab_test"] == {
        "test_percent": 20,
        "metric": "click_rate",
        "wait_seconds": 14400,
        "min_confidence": 0.95,
    }
    assert body["ab_winner"] == ""

    patched = api.patch(f"/api/campaigns/{body['id']}", {"variants": [], "ab_test": None}, format="json")
    assert patched.status_code == 200, patched.content
    assert (patched.json()["variants"], patched.json()["ab_test"]) == ([], None)


@pytest.mark.parametrize(
    "variants, ab_test, field",
    [
        ([{"key": "A", "subject": "x"}], AB_TEST, "variants"),
        (
            [
                *VARIANTS,
                {"key": "C", "subject": "c"},
                {"key": "D", "subject": "d"},
                {"key": "A", "subject": "e"},
            ],
            AB_TEST,
            "variants",
        ),
        ([{"key": "A", "subject": "x"}, {"key": "A", "subject": "y"}], AB_TEST, "variants[1].key"),
        ([{"key": "A", "subject": "x"}, {"key": "Z", "subject": "y"}], AB_TEST, "variants[1].key"),
        ([{"key": "A", "subject": "x"}, {"key": "B"}], AB_TEST, "variants[1]"),
        ([{"key": "A", "subject": "x"}, {"key": "B", "colour": "red"}], AB_TEST, "variants[1].colour"),
        ([{"key": "A", "subject": "x"}, {"key": "B", "subject": "{% if %}"}], AB_TEST, "variants[1].subject"),
        ([{"key": "A", "subject": "x"}, {"key": "B", "from_name": "a\nb"}], AB_TEST, "variants[1].from_name"),
        ("AB", AB_TEST, "variants"),
        (VARIANTS, None, "ab_test"),
        (VARIANTS, {**AB_TEST, "metric": "vibes"}, "ab_test.metric"),
        (VARIANTS, {**AB_TEST, "test_percent": 0}, "ab_test.test_percent"),
        (VARIANTS, {**AB_TEST, "test_percent": "20"}, "ab_test.test_percent"),
        (VARIANTS, {**AB_TEST, "wait_seconds": 5}, "ab_test.wait_seconds"),
        (VARIANTS, {**AB_TEST, "min_confidence": 1}, "ab_test.min_confidence"),
        (VARIANTS, {**AB_TEST, "min_confidence": True}, "ab_test.min_confidence"),
        (VARIANTS, {**AB_TEST, "winner": "A"}, "ab_test.winner"),
    ],
)
def test_it_refuses_a_bad_test_naming_the_field_and_creates_nothing(api, tenant, variants, ab_test, field):
    response = api.post(
        "/api/campaigns",
        {"name": "Bad", "subject": "x", "html_body": "<p>x</p>", "variants": variants, "ab_test": ab_test},
        format="json",
    )
    assert response.status_code == 400, response.content
    assert field in response.json()
    assert not Campaign.objects.filter(name="Bad").exists()


# --- the sample -----------------------------------------------------------------------------------


def test_it_sends_a_reproducible_random_sample_split_evenly(tenant):
    campaign = started(101)

    assert split(campaign) == Counter(
        {("pending", "A", True): 11, ("pending", "B", True): 10, ("held", "", False): 80}
    )
    sample = set(
        CampaignRecipient.objects.filter(campaign=campaign, ab_sample=True).values_list(
            "customer_id", "variant"
        )
    )
    # Again from scratch: the same customers in the same variants.
    CampaignRecipient.objects.filter(campaign=campaign).update(status="pending", variant="", ab_sample=False)
    abtests.ab_sample_assign(campaign=campaign)
    assert (
        set(
            CampaignRecipient.objects.filter(campaign=campaign, ab_sample=True).values_list(
                "customer_id", "variant"
            )
        )
        == sample
    )
    # Random, not the first ids.
    ids = sorted(CampaignRecipient.objects.filter(campaign=campaign).values_list("customer_id", flat=True))
    assert {c for c, _ in sample} != set(ids[:21])


def test_it_sends_the_sample_with_its_variants_and_holds_the_rest(tenant):
    campaign = started(50)
    send_all(campaign)

    by_subject, by_address = subjects()
    assert by_subject == Counter({"Spring sale: 20% off": 5, "Your spring treat inside": 5})
    assert max(by_address.values()) == 1
    campaign.refresh_from_db()
    assert campaign.status == "sending"  # not sent: 40 wait for the winner
    assert CampaignRecipient.objects.filter(campaign=campaign, status="held").count() == 40
    froms = {m.from_email for m in mail.outbox}
    assert froms == {"Shop <news@shop.example>", "Anna from Shop <news@shop.example>"}


def test_it_gives_a_variant_with_its_own_html_a_text_part_of_that_html(tenant):
    variants = [
        {"key": "A", "subject": "A"},
        {"key": "B", "subject": "B", "html_body": "<p>Only variant B says pineapple.</p>"},
    ]
    campaign = started(50, variants=variants, text_body="The campaign's own text says apple.")
    send_all(campaign)

    texts = {}
    for sent in mail.outbox:
        parsed = email.message_from_bytes(sent.message().as_bytes(), policy=email.policy.default)
        texts[str(parsed["Subject"])] = parsed.get_body(preferencelist=("plain",)).get_content()
    assert "apple" in texts["A"] and "pineapple" not in texts["A"]
    assert "pineapple" in texts["B"] and "The campaign's own text" not in texts["B"]


# --- the model ------------------------------------------------------------------------------------


def row(key, sent, opens=0, clicks=0, buyers=0, revenue="0"):
    return {
        "key": key,
        "sent": sent,
        "unique_opens": opens,
        "unique_clicks": clicks,
        "buyers": buyers,
        "orders": buyers,
        "revenue": Decimal(revenue),
    }


def test_it_finds_a_clear_winner_and_no_winner_in_a_tie():
    clear = abtests.probabilities_best(
        results=[row("A", 500, opens=150), row("B", 500, opens=100)], metric="open_rate"
    )
    assert clear["A"] > 0.99 and clear["A"] + clear["B"] == pytest.approx(1)
    tie = abtests.probabilities_best(
        results=[row("A", 500, opens=120), row("B", 500, opens=120)], metric="open_rate"
    )
    assert tie["A"] == pytest.approx(0.5, abs=0.03)
    three = abtests.probabilities_best(
        results=[row("A", 400, clicks=10), row("B", 400, clicks=30), row("C", 400, clicks=12)],
        metric="click_rate",
    )
    assert max(three, key=three.get) == "B" and three["B"] > 0.95
    # Reproducible: the same results always give the same probabilities.
    assert abtests.probabilities_best(
        results=[row("A", 50, opens=9), row("B", 50, opens=11)], metric="open_rate"
    ) == (
        abtests.probabilities_best(
            results=[row("A", 50, opens=9), row("B", 50, opens=11)], metric="open_rate"
        )
    )


def test_it_weighs_revenue_per_recipient_by_buyers_and_spend():
    richer = abtests.probabilities_best(
        results=[row("A", 1000, buyers=40, revenue="8000"), row("B", 1000, buyers=40, revenue="2000")],
        metric="revenue",
    )
    assert richer["A"] > 0.99
    more_buyers = abtests.probabilities_best(
        results=[row("A", 1000, buyers=60, revenue="6000"), row("B", 1000, buyers=20, revenue="2000")],
        metric="revenue",
    )
    assert more_buyers["A"] > 0.99
    # One big order is weak evidence against many ordinary ones.
    lucky = abtests.probabilities_best(
        results=[row("A", 1000, buyers=1, revenue="3000"), row("B", 1000, buyers=30, revenue="2900")],
        metric="revenue",
    )
    assert lucky["A"] < 0.95
    nothing = abtests.probabilities_best(results=[row("A", 100), row("B", 100)], metric="revenue")
    assert nothing["A"] == pytest.approx(0.5, abs=0.03)


# --- the decision ---------------------------------------------------------------------------------


def _opened(campaign, variant, n):
    ids = list(
        CampaignRecipient.objects.filter(campaign=campaign, variant=variant, ab_sample=True).values_list(
            "id", flat=True
        )[:n]
    )
    CampaignRecipient.objects.filter(id__in=ids).update(first_opened_at=timezone.now())


def test_it_waits_then_decides_by_confidence_and_sends_the_rest_the_winner_once(tenant):
    campaign = started(400)  # 40 per variant
    send_all(campaign)
    _opened(campaign, "B", 30)
    _opened(campaign, "A", 5)
    assert abtests.campaign_ab_decide(campaign=campaign, now=timezone.now()) is None  # the wait is not over

    later = campaign.started_at + timedelta(seconds=3600)
    assert abtests.ab_tests_decide(now=later) == [campaign.pk]

    campaign.refresh_from_db()
    assert (campaign.ab_winner, campaign.ab_decided_by, campaign.ab_decided_at) == ("B", "confidence", later)
    assert CampaignRecipient.objects.filter(campaign=campaign, status="held").count() == 0
    [event] = OutboxEvent.objects.filter(type="campaign.ab_winner")
    assert (event.data["winner"], event.data["decided_by"], event.data["released"]) == (
        "B",
        "confidence",
        320,
    )

    send_all(campaign)
    campaign.refresh_from_db()
    assert campaign.status == "sent"
    by_subject, by_address = subjects()
    assert by_subject == Counter({"Spring sale: 20% off": 40, "Your spring treat inside": 360})
    assert len(by_address) == 400 and set(by_address.values()) == {1}


def test_it_decides_by_the_best_point_estimate_at_timeout(tenant):
    campaign = started(100)  # 10 per variant: too few to be confident
    send_all(campaign)
    _opened(campaign, "A", 4)
    _opened(campaign, "B", 5)

    abtests.ab_tests_decide(now=campaign.started_at + timedelta(hours=2))

    campaign.refresh_from_db()
    assert (campaign.ab_winner, campaign.ab_decided_by) == ("B", "timeout")


def test_it_decides_by_revenue_per_recipient(tenant):
    campaign = started(200, ab_test={**AB_TEST, "metric": "revenue", "min_confidence": 0.9})
    send_all(campaign)
    for recipient in CampaignRecipient.objects.filter(campaign=campaign, variant="A", ab_sample=True)[:6]:
        order = Order.objects.create(
            external_id=f"o{recipient.pk}", customer_id=recipient.customer_id, total=Decimal("90.00")
        )
        OrderAttribution.objects.create(
            order=order,
            customer_id=recipient.customer_id,
            campaign_id=campaign.pk,
            touch="click",
            touched_at=timezone.now(),
            placed_at=timezone.now(),
            total=order.total,
        )

    abtests.ab_tests_decide(now=campaign.started_at + timedelta(hours=2))

    campaign.refresh_from_db()
    assert (campaign.ab_winner, campaign.ab_decided_by) == ("A", "confidence")


def test_it_lets_a_marketer_decide_by_hand_once(api, tenant):
    campaign = started(100)
    send_all(campaign)

    refused = api.post(f"/api/campaigns/{campaign.pk}/winner", {"key": "Q"}, format="json")
    assert refused.status_code == 400 and "key" in refused.json()
    assert api.post(f"/api/campaigns/{campaign.pk}/winner", {}, format="json").status_code == 400
    campaign.refresh_from_db()
    assert (
        campaign.ab_winner == ""
        and CampaignRecipient.objects.filter(campaign=campaign, status="held").count() == 80
    )

    response = api.post(f"/api/campaigns/{campaign.pk}/winner", {"key": "A"}, format="json")
    assert response.status_code == 200, response.content
    assert response.json()["ab_winner"] == "A"
    campaign.refresh_from_db()
    assert campaign.ab_decided_by == "manual"
    assert api.post(f"/api/campaigns/{campaign.pk}/winner", {"key": "B"}, format="json").status_code == 409
    assert abtests.ab_tests_decide(now=campaign.started_at + timedelta(days=1)) == []

    stats = api.get(f"/api/campaigns/{campaign.pk}/stats").json()
    assert (stats["winner"], stats["decided_by"]) == ("A", "manual")
    assert [(v["key"], v["recipients"], v["sent"]) for v in stats["variants"]] == [
        ("A", 10, 10),
        ("B", 10, 10),
    ]
    assert sum(v["probability_best"] for v in stats["variants"]) == pytest.approx(1)


def test_it_answers_409_for_a_campaign_without_a_test_and_404_for_another_tenants(api, api_b, tenant):
    plain = make_campaign(static_segment(make_customers(3)))
    assert api.post(f"/api/campaigns/{plain.pk}/winner", {"key": "A"}, format="json").status_code == 409
    campaign = started(20)

    assert api_b.post(f"/api/campaigns/{campaign.pk}/winner", {"key": "A"}, format="json").status_code == 404
    connection.set_tenant(tenant)
    campaign.refresh_from_db()
    assert campaign.ab_winner == ""


def test_it_cancels_the_held_recipients_with_the_campaign(tenant):
    campaign = started(50)
    lifecycle.campaign_cancel(campaign=campaign)
    assert split(campaign) == Counter(
        {("cancelled", "A", True): 5, ("cancelled", "B", True): 5, ("cancelled", "", False): 40}
    )
    with pytest.raises(abtests.ABStateError):
        abtests.campaign_ab_decide(campaign=campaign, key="A")
