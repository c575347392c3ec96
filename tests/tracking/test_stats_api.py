"""Stats equal what was done, exactly, for a scripted sequence of sends, deliveries and hits."""

from datetime import UTC, datetime, timedelta

import pytest
from django.urls import resolve
from django.utils import timezone

from campaigns.models import Campaign, CampaignRecipient
from customers.models import Interaction
from events.models import OutboxEvent
from tracking.delivery import BOUNCED, COMPLAINED, DELIVERED, delivery_event_apply
from tracking.hits import hit_record_click, hit_record_open
from tracking.preferences import recipient_unsubscribe
from tracking.rollup import hits_rollup

from .conftest import APPLE_MPP_AGENT, HUMAN_AGENT, click_path, make_sent_campaign

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def at(hours=0, minutes=0, seconds=0):
    return T0 + timedelta(hours=hours, minutes=minutes, seconds=seconds)


@pytest.fixture
def scripted(tenant):
    emails = [f"r{i}@example.com" for i in range(8)]
    sent = make_sent_campaign(name="Scripted", emails=emails, sent_at=T0)
    r = sent.recipients
    L0, L1 = sent.links
    CampaignRecipient.objects.filter(pk=r[3].pk).update(
        status="failed", sent_at=None, error="550 no such user"
    )
    CampaignRecipient.objects.filter(pk=r[6].pk).update(status="pending", sent_at=None)
    for index in (0, 1, 5, 7):
        delivery_event_apply(outcome=DELIVERED, message_id=r[index].message_id, occurred_at=at(seconds=2))
    delivery_event_apply(outcome=BOUNCED, message_id=r[4].message_id, detail="550 5.1.1 unknown")
    delivery_event_apply(outcome=COMPLAINED, message_id=r[5].message_id)

    def open_(i, when, agent=HUMAN_AGENT):
        assert hit_record_open(
            tenant=tenant, recipient_id=r[i].pk, user_agent=agent, ip="203.0.113.5", occurred_at=when
        )

    def click(i, link, when):
        assert hit_record_click(
            tenant=tenant, recipient_id=r[i].pk, link_id=link.pk, user_agent=HUMAN_AGENT, occurred_at=when
        )

    open_(0, at(seconds=5))  # within 10 s of sending: a prefetch
    open_(0, at(minutes=20))
    open_(0, at(minutes=40))
    hits_rollup()  # part of the story is rolled up before the rest happens
    click(0, L0, at(hours=1, minutes=5))
    click(0, L0, at(hours=1, minutes=6))
    click(1, L1, at(hours=1, minutes=10))  # no open before: the click counts as r1's open
    open_(1, at(hours=1, minutes=15))
    open_(2, at(hours=2, minutes=30), agent=APPLE_MPP_AGENT)
    open_(0, at(hours=4, minutes=10))
    open_(7, at(hours=4, minutes=20))
    recipient_unsubscribe(recipient=r[2])
    hits_rollup(batch_size=2)
    return sent


EXPECTED = {
    "status": "sent",
    "recipients": 8,
    "pending": 1,
    "sent": 6,
    "delivered": 4,
    "failed": 1,
    "bounced": 1,
    "complained": 1,
    "cancelled": 0,
    "skipped": 0,
    "opens": 6,
    "unique_opens": 3,
    "machine_opens": 2,
    "clicks": 3,
    "unique_clicks": 2,
    "unsubscribes": 1,
    "hits_not_stored": 0,
    "open_rate": 0.75,
    "click_rate": 0.5,
    "click_to_open_rate": 2 / 3,
    "links": [
        {"url": "https://shop.example.com/sale", "clicks": 2, "unique_clicks": 1},
        {"url": "https://shop.example.com/new?utm=x&a=1", "clicks": 1, "unique_clicks": 1},
    ],
    "timeline": [
        {"hour": "2026-03-02T09:00:00Z", "opens": 2, "clicks": 0},
        {"hour": "2026-03-02T10:00:00Z", "opens": 2, "clicks": 3},
        {"hour": "2026-03-02T11:00:00Z", "opens": 0, "clicks": 0},
        {"hour": "2026-03-02T12:00:00Z", "opens": 0, "clicks": 0},
        {"hour": "2026-03-02T13:00:00Z", "opens": 2, "clicks": 0},
    ],
    "orders": 0,
    "revenue": "0.00",
    "conversion_rate": 0.0,
    "revenue_per_recipient": "0.00",
    "variants": [],
    "winner": None,
    "decided_at": None,
    "decided_by": None,
    "history": [],
}


def test_it_reports_exactly_what_happened(api, scripted):
    response = api.get(f"/api/campaigns/{scripted.campaign.pk}/stats")
    assert response.status_code == 200
    assert response.json() == EXPECTED


def test_it_reports_the_same_after_another_roll_up(api, scripted):
    assert hits_rollup().hits == 0
    assert api.get(f"/api/campaigns/{scripted.campaign.pk}/stats").json() == EXPECTED


def test_it_sets_first_open_and_click_times_from_human_hits(scripted):
    r = [CampaignRecipient.objects.get(pk=x.pk) for x in scripted.recipients]
    assert [x.first_opened_at for x in r] == [
        at(minutes=20),
        at(hours=1, minutes=10),
        None,
        None,
        None,
        None,
        None,
        at(hours=4, minutes=20),
    ]
    assert [x.first_clicked_at for x in r] == [
        at(hours=1, minutes=5),
        at(hours=1, minutes=10),
        None,
        None,
        None,
        None,
        None,
        None,
    ]
    assert [x.status for x in r] == [
        "delivered",
        "delivered",
        "sent",
        "failed",
        "bounced",
        "complained",
        "pending",
        "delivered",
    ]


def test_it_emits_one_event_per_unique_open_and_per_first_click_of_a_link(scripted):
    events = OutboxEvent.objects.filter(type__startswith="email.").order_by("id")
    got = [(e.type, e.data.get("email"), e.data.get("url"), e.data["campaign_id"]) for e in events]
    campaign_id = scripted.campaign.pk
    assert got == [
        ("email.opened", "r0@example.com", None, campaign_id),
        ("email.clicked", "r0@example.com", "https://shop.example.com/sale", campaign_id),
        ("email.opened", "r1@example.com", None, campaign_id),
        ("email.clicked", "r1@example.com", "https://shop.example.com/new?utm=x&a=1", campaign_id),
        ("email.opened", "r7@example.com", None, campaign_id),
    ]
    first = events[0]
    assert first.data == {
        "campaign_id": campaign_id,
        "customer_id": scripted.recipients[0].customer_id,
        "email": "r0@example.com",
    }
    assert first.occurred_at == at(minutes=20)


def test_it_logs_opens_and_clicks_in_the_customers_activity(scripted):
    rows = Interaction.objects.filter(kind__in=["email_opened", "email_clicked"]).order_by("occurred_at")
    assert [(i.customer.email, i.kind, i.occurred_at) for i in rows] == [
        ("r0@example.com", "email_opened", at(minutes=20)),
        ("r0@example.com", "email_clicked", at(hours=1, minutes=5)),
        ("r1@example.com", "email_opened", at(hours=1, minutes=10)),
        ("r1@example.com", "email_clicked", at(hours=1, minutes=10)),
        ("r7@example.com", "email_opened", at(hours=4, minutes=20)),
    ]
    assert rows[1].data["url"] == "https://shop.example.com/sale"
    assert rows[1].body == "Clicked https://shop.example.com/sale in “Scripted”"


def test_it_rates_over_sent_while_no_delivery_data_came(api, tenant):
    sent = make_sent_campaign(
        name="No ESP", emails=("a@example.com", "b@example.com", "c@example.com", "d@example.com")
    )
    hit_record_open(tenant=tenant, recipient_id=sent.recipients[0].pk, user_agent=HUMAN_AGENT)
    hits_rollup()
    stats = api.get(f"/api/campaigns/{sent.campaign.pk}/stats").json()
    assert (stats["sent"], stats["delivered"], stats["open_rate"], stats["click_rate"]) == (4, 0, 0.25, 0.0)


def test_it_reports_zeros_for_a_campaign_without_activity(api, tenant):
    campaign = Campaign.objects.create(name="Draft")
    stats = api.get(f"/api/campaigns/{campaign.pk}/stats").json()
    assert stats == {
        "status": "draft",
        "recipients": 0,
        "pending": 0,
        "sent": 0,
        "delivered": 0,
        "failed": 0,
        "bounced": 0,
        "complained": 0,
        "cancelled": 0,
        "skipped": 0,
        "opens": 0,
        "unique_opens": 0,
        "machine_opens": 0,
        "clicks": 0,
        "unique_clicks": 0,
        "unsubscribes": 0,
        "hits_not_stored": 0,
        "open_rate": 0.0,
        "click_rate": 0.0,
        "click_to_open_rate": 0.0,
        "links": [],
        "timeline": [],
        "orders": 0,
        "revenue": "0.00",
        "conversion_rate": 0.0,
        "revenue_per_recipient": "0.00",
        "variants": [],
        "winner": None,
        "decided_at": None,
        "decided_by": None,
        "history": [],
    }


def test_it_answers_404_for_a_missing_campaign_or_one_of_another_tenant(api, api_b, scripted):
    assert api.get("/api/campaigns/999999/stats").status_code == 404
    assert api_b.get(f"/api/campaigns/{scripted.campaign.pk}/stats").status_code == 404


def test_it_requires_authentication(anon_api, scripted):
    assert anon_api.get(f"/api/campaigns/{scripted.campaign.pk}/stats").status_code == 401


def test_it_documents_the_endpoint_and_its_errors_in_the_schema(anon_api):
    schema = anon_api.get("/api/schema/?format=json").json()
    operation = schema["paths"]["/api/campaigns/{id}/stats"]["get"]
    assert {"200", "401", "404"} <= set(operation["responses"])
    ref = operation["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
    properties = schema["components"]["schemas"][ref.rsplit("/", 1)[-1]]["properties"]
    assert list(properties) == list(EXPECTED)


def test_it_resolves_its_url_next_to_the_campaigns_router():
    match = resolve("/api/campaigns/12/stats")
    assert match.func.view_class.__name__ == "CampaignStatsView"
    assert match.kwargs == {"pk": 12}


def test_it_counts_a_click_as_an_open_when_the_pixel_never_loaded(web, sent, api):
    web.get(click_path(sent.recipients[0], sent.links[0]))
    hits_rollup()
    stats = api.get(f"/api/campaigns/{sent.campaign.pk}/stats").json()
    assert (stats["opens"], stats["unique_opens"], stats["clicks"], stats["unique_clicks"]) == (1, 1, 1, 1)
    assert stats["click_to_open_rate"] == 1.0
    sent.recipients[0].refresh_from_db()
    assert sent.recipients[0].first_opened_at == sent.recipients[0].first_clicked_at is not None
    assert timezone.now() - sent.recipients[0].first_opened_at < timedelta(minutes=1)
