"""Test copies of an A/B campaign's variants (PRODUCT.md "A/B tests", the test endpoint): one variant
or all at once, from the API and the admin, each with its own subject, content and sender, through a
real SMTP server; a variant the campaign does not have is a 400 naming `variant`, and nothing goes out."""

import pytest
from django.test import Client

from campaigns.models import CampaignRecipient
from tests import processes

from .conftest import make_campaign, make_customers, static_segment

VARIANTS = [
    {"key": "A", "subject": "Spring sale: 20% off"},
    {"key": "B", "subject": "Your spring treat", "html_body": "<p>Variant B body</p>", "from_name": "Anna"},
]
AB_TEST = {"test_percent": 20, "metric": "open_rate", "wait_seconds": 3600, "min_confidence": 0.95}


@pytest.fixture
def smtp_sink(settings):
    with processes.smtp_sink() as sink:
        settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
        settings.EMAIL_HOST = "127.0.0.1"
        settings.EMAIL_PORT = sink.port
        settings.EMAIL_USE_TLS = settings.EMAIL_USE_SSL = False
        settings.EMAIL_HOST_USER = settings.EMAIL_HOST_PASSWORD = ""
        settings.DKIM_SELECTOR = ""
        settings.MAIL_UNSUBSCRIBE_MAILTO = ""
        yield sink


@pytest.fixture
def ab_campaign(tenant):
    return make_campaign(
        static_segment(make_customers(3, prefix="vt")),
        html_body="<p>Campaign body {{ customer.first_name }}</p>",
        variants=VARIANTS,
        ab_test=AB_TEST,
    )


def html_of(message):
    return message.get_body(("html",)).get_content()


def test_it_sends_a_test_copy_of_one_variant_with_its_subject_content_and_sender(api, ab_campaign, smtp_sink):
    response = api.post(
        f"/api/campaigns/{ab_campaign.pk}/test", {"emails": ["me@example.com"], "variant": "B"}, format="json"
    )

    assert response.status_code == 200
    assert response.json() == [{"email": "me@example.com", "variant": "B", "sent": True, "error": ""}]
    [message] = smtp_sink.emails()
    assert message["Subject"] == "[Test B] Your spring treat"
    assert message["From"] == "Anna <news@shop.example>"
    assert message["X-CRM-Variant"] == "B" and message["X-CRM-Test"] == "yes"
    assert "Variant B body" in html_of(message) and "Campaign body" not in html_of(message)
    assert not CampaignRecipient.objects.filter(campaign=ab_campaign).exists()


def test_it_sends_variant_a_with_the_campaigns_content_where_the_variant_leaves_it_out(
    api, ab_campaign, smtp_sink
):
    api.post(
        f"/api/campaigns/{ab_campaign.pk}/test", {"emails": ["me@example.com"], "variant": "A"}, format="json"
    )

    [message] = smtp_sink.emails()
    assert message["Subject"] == "[Test A] Spring sale: 20% off"
    assert message["From"] == "Shop <news@shop.example>"
    assert "Campaign body" in html_of(message)


def test_it_sends_every_variant_to_every_address_at_once(api, ab_campaign, smtp_sink):
    response = api.post(
        f"/api/campaigns/{ab_campaign.pk}/test",
        {"emails": ["me@example.com", "boss@example.com"], "variant": "all"},
        format="json",
    )

    assert response.status_code == 200
    assert sorted((r["email"], r["variant"], r["sent"]) for r in response.json()) == [
        ("boss@example.com", "A", True),
        ("boss@example.com", "B", True),
        ("me@example.com", "A", True),
        ("me@example.com", "B", True),
    ]
    assert sorted((m["To"], m["Subject"]) for m in smtp_sink.emails()) == [
        ("boss@example.com", "[Test A] Spring sale: 20% off"),
        ("boss@example.com", "[Test B] Your spring treat"),
        ("me@example.com", "[Test A] Spring sale: 20% off"),
        ("me@example.com", "[Test B] Your spring treat"),
    ]


@pytest.mark.parametrize("variant", ["C", "b", "everything"])
def test_it_refuses_a_variant_the_campaign_does_not_have(api, ab_campaign, smtp_sink, variant):
    response = api.post(
        f"/api/campaigns/{ab_campaign.pk}/test",
        {"emails": ["me@example.com"], "variant": variant},
        format="json",
    )

    assert response.status_code == 400
    assert response.json() == {"variant": ['One of this campaign\'s variants (A, B) or "all".']}
    assert smtp_sink.emails() == []


def test_it_refuses_a_variant_of_a_campaign_without_a_test_and_sends_its_own_content_without_one(
    api, tenant, smtp_sink
):
    campaign = make_campaign(static_segment(make_customers(1, prefix="nt")))
    refused = api.post(
        f"/api/campaigns/{campaign.pk}/test", {"emails": ["me@example.com"], "variant": "A"}, format="json"
    )
    assert refused.status_code == 400
    assert refused.json() == {"variant": ["This campaign has no A/B test."]}
    assert smtp_sink.emails() == []

    sent = api.post(f"/api/campaigns/{campaign.pk}/test", {"emails": ["me@example.com"]}, format="json")
    assert sent.json() == [{"email": "me@example.com", "variant": None, "sent": True, "error": ""}]
    [message] = smtp_sink.emails()
    assert message["Subject"].startswith("[Test] ") and message["X-CRM-Variant"] is None


def test_it_sends_a_variants_test_copy_from_the_admin(tenant, marketer, ab_campaign, smtp_sink):
    browser = Client(HTTP_HOST=tenant.get_primary_domain().domain)
    browser.force_login(marketer)
    page = browser.get(f"/admin/campaigns/campaign/{ab_campaign.pk}/change/").content.decode()
    assert 'id="campaign-test-variant"' in page
    assert '<option value="all">' in page and '<option value="B">' in page

    response = browser.post(
        f"/admin/campaigns/campaign/{ab_campaign.pk}/test/", {"emails": "me@example.com", "variant": "B"}
    )

    assert response.status_code == 302
    [message] = smtp_sink.emails()
    assert message["Subject"] == "[Test B] Your spring treat"
    shown = [str(m) for m in response.wsgi_request._messages]
    assert shown == ["Test copy of variant B sent to me@example.com."]
    refused = browser.post(
        f"/admin/campaigns/campaign/{ab_campaign.pk}/test/", {"emails": "me@example.com", "variant": "Z"}
    )
    # (the page lists every message not shown yet: the first one is still among them)
    assert [str(m) for m in refused.wsgi_request._messages][-1] == (
        'One of this campaign\'s variants (A, B) or "all".'
    )
    assert len(smtp_sink.emails()) == 1
