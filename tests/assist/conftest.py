"""AI assistance tests: a local OpenAI-compatible server, and sent campaigns with known stats."""

from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone
from rest_framework.throttling import ScopedRateThrottle

from campaigns.models import Campaign, CampaignLink, CampaignRecipient
from customers.models import Customer
from tests.assist.fake_llm import FakeLLM
from tracking.models import CampaignStats, HourlyStats, LinkStats


@pytest.fixture(scope="session")
def llm_server():
    server = FakeLLM().start()
    yield server
    server.stop()


@pytest.fixture
def llm(llm_server, settings):
    """The provider configured to the local server, which starts each test answering normally."""
    llm_server.received.clear()
    llm_server.mode = "ok"
    llm_server.release.clear()
    llm_server.reply = lambda body: {}
    settings.AI_PROVIDER = "openai"
    settings.AI_BASE_URL = llm_server.base_url
    settings.AI_API_KEY = "test-key"
    settings.AI_MODEL = "test-model"
    settings.AI_TIMEOUT_SECONDS = 2.0
    yield llm_server
    llm_server.release.set()


PEOPLE = [
    ("zsofia.kertesz@example.com", "Zsófia", "Kertész", "+36 30 555 0101"),
    ("bence.nagy@example.com", "Bence", "Nagy", "+36 30 555 0102"),
    ("laszlo.varga@example.com", "László", "Varga", "+36 30 555 0103"),
]


def sent_campaign(
    *,
    name="Spring sale",
    subject="Spring teas: 20% off",
    recipients=200,
    delivered=190,
    unique_opens=57,
    unique_clicks=12,
    unsubscribes=2,
    complained=1,
    bounced=3,
    sent_at=None,
    people=PEOPLE,
):
    """A sent campaign with recipients in known states and the counters the roll-up would keep."""
    campaign = Campaign.objects.create(
        name=name,
        subject=subject,
        html_body="<h1>Spring teas</h1><p>20% off all <strong>Sencha Supreme</strong>.</p>",
        status="sent",
        sent_at=sent_at or timezone.now(),
    )
    customers = [
        Customer.objects.get_or_create(
            email=email, defaults={"first_name": first, "last_name": last, "phone": phone}
        )[0]
        for email, first, last, phone in people
    ]
    extra = Customer.objects.bulk_create(
        [Customer(email=f"{campaign.pk}-r{i}@example.org") for i in range(recipients - len(customers))]
    )
    everyone = customers + extra
    states = ["delivered"] * (delivered - complained) + ["complained"] * complained + ["bounced"] * bounced
    states += ["sent"] * (recipients - len(states))
    CampaignRecipient.objects.bulk_create(
        [
            CampaignRecipient(campaign=campaign, customer=customer, email=customer.email, status=state)
            for customer, state in zip(everyone, states, strict=True)
        ]
    )
    CampaignStats.objects.create(
        campaign=campaign,
        opens=unique_opens + 10,
        unique_opens=unique_opens,
        machine_opens=5,
        clicks=unique_clicks + 3,
        unique_clicks=unique_clicks,
        unsubscribes=unsubscribes,
    )
    top = CampaignLink.objects.create(campaign=campaign, url="https://shop.example/spring")
    other = CampaignLink.objects.create(campaign=campaign, url="https://shop.example/sencha")
    LinkStats.objects.create(
        link=top, campaign=campaign, clicks=unique_clicks, unique_clicks=unique_clicks - 4
    )
    LinkStats.objects.create(link=other, campaign=campaign, clicks=3, unique_clicks=3)
    hour = datetime(2026, 12, 1, 14, tzinfo=UTC)
    HourlyStats.objects.create(campaign=campaign, hour=hour - timedelta(hours=1), opens=5, clicks=1)
    HourlyStats.objects.create(campaign=campaign, hour=hour, opens=30, clicks=6)
    return campaign


@pytest.fixture(autouse=True)
def ai_budget(monkeypatch):
    """A roomy AI_RATE for every test (the budget lives in the cache, across tests); the throttle
    itself is tested with a small one."""
    monkeypatch.setitem(ScopedRateThrottle.THROTTLE_RATES, "ai", "100000/min")
    return monkeypatch
