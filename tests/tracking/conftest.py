"""A sent campaign in tenant A: three recipients, two links, and helpers to hit its tracking links."""

from dataclasses import dataclass
from datetime import timedelta

import pytest
from django.db import connection
from django.test import Client
from django.utils import timezone

from campaigns.models import Campaign, CampaignLink, CampaignRecipient
from campaigns.tokens import make_token
from customers.models import Customer
from tracking.views import PIXEL_GIF

HUMAN_AGENT = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36"
APPLE_MPP_AGENT = "Mozilla/5.0"


@dataclass
class SentCampaign:
    campaign: Campaign
    recipients: list
    links: list


def make_sent_campaign(
    *,
    name="Autumn sale",
    emails=("ann@example.com", "bob@example.com", "cy@example.com"),
    urls=("https://shop.example.com/sale", "https://shop.example.com/new?utm=x&a=1"),
    sent_at=None,
):
    sent_at = sent_at or timezone.now() - timedelta(hours=1)
    campaign = Campaign.objects.create(name=name, subject="Hello", status="sent", sent_at=sent_at)
    links = [CampaignLink.objects.create(campaign=campaign, url=url) for url in urls]
    recipients = []
    for index, email in enumerate(emails):
        customer = Customer.objects.filter(email=email).first() or Customer.objects.create(
            email=email, first_name=f"Person{index}", email_marketing=True
        )
        recipients.append(
            CampaignRecipient.objects.create(
                campaign=campaign,
                customer=customer,
                email=email,
                status="sent",
                sent_at=sent_at,
                message_id=f"<c{campaign.pk}r{index}@mail.tenant-a.localhost>",
            )
        )
    return SentCampaign(campaign, recipients, links)


@pytest.fixture
def sent(tenant):
    return make_sent_campaign()


@pytest.fixture
def web(tenant):
    """A browser-like client on tenant A's host."""
    return Client(HTTP_HOST=tenant.get_primary_domain().domain, HTTP_USER_AGENT=HUMAN_AGENT)


class _OtherHostClient(Client):
    """A client on tenant B's host that puts the test's connection back on tenant A afterwards (the
    tenant middleware leaves the connection on the host's schema)."""

    def __init__(self, *, home, **defaults):
        super().__init__(**defaults)
        self.home = home

    def request(self, **request):
        try:
            return super().request(**request)
        finally:
            connection.set_tenant(self.home)


@pytest.fixture
def web_b(tenant, other_tenant):
    return _OtherHostClient(
        home=tenant, HTTP_HOST=other_tenant.get_primary_domain().domain, HTTP_USER_AGENT=HUMAN_AGENT
    )


def open_path(recipient):
    return f"/t/o/{make_token('o', recipient.pk)}"


def click_path(recipient, link):
    return f"/t/c/{make_token('c', recipient.pk, link.pk)}"


def unsubscribe_path(recipient):
    return f"/u/{make_token('u', recipient.pk)}"


def preferences_path(customer):
    return f"/p/{make_token('p', customer.pk)}"


def is_pixel(response):
    """The open pixel's answer: the 1x1 GIF, never cached."""
    return (
        response.status_code == 200
        and response["Content-Type"] == "image/gif"
        and response.content == PIXEL_GIF
        and "no-store" in response["Cache-Control"]
    )
