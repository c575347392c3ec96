"""Campaign intent stored whenever subject or content change, shown and filtered in API and admin."""

import pytest
from django.test import Client

from assist.intent import INTENTS
from campaigns import editing, email_templates
from campaigns.models import Campaign, EmailTemplate

pytestmark = pytest.mark.django_db


def test_it_sets_the_intent_when_a_campaign_is_created_and_when_its_content_changes(api):
    created = api.post(
        "/api/campaigns",
        {
            "name": "June",
            "subject": "Summer sale: 30% off everything",
            "html_body": "<p>Use code SUMMER30.</p>",
        },
        format="json",
    ).json()
    assert created["intent"] == "promotion"
    assert 0.3 <= created["intent_confidence"] <= 1.0

    changed = api.patch(
        f"/api/campaigns/{created['id']}",
        {"subject": "You left something in your cart", "html_body": "<p>Complete your checkout now.</p>"},
        format="json",
    ).json()

    assert changed["intent"] == "cart_recovery"


def test_it_keeps_the_intent_when_only_other_fields_change(api):
    campaign = editing.campaign_create(
        name="A", subject="Join our tea tasting evening", html_body="<p>RSVP.</p>"
    )
    Campaign.objects.filter(pk=campaign.pk).update(intent="survey", intent_confidence=0.5)

    api.patch(f"/api/campaigns/{campaign.pk}", {"name": "Renamed"}, format="json")

    assert Campaign.objects.filter(pk=campaign.pk).values_list("intent", "intent_confidence")[0] == (
        "survey",
        0.5,
    )


def test_it_reclassifies_draft_campaigns_when_their_template_changes(tenant):
    template = email_templates.template_create(
        name="T", subject="Our monthly news", html_body="<p>Stories and recipes.</p>"
    )
    campaign = editing.campaign_create(name="Uses T", template=template)
    assert Campaign.objects.get(pk=campaign.pk).intent == "newsletter"

    email_templates.template_update(
        template=template, subject="How did we do? Take our survey", html_body="<p>Rate us.</p>"
    )

    assert Campaign.objects.get(pk=campaign.pk).intent == "survey"


def test_it_filters_the_campaign_list_by_intent(api):
    editing.campaign_create(name="Sale", subject="Flash sale: 40% off", html_body="<p>Today only.</p>")
    editing.campaign_create(name="Poll", subject="Tell us what you think", html_body="<p>A short survey.</p>")

    names = [c["name"] for c in api.get("/api/campaigns?intent=survey").json()["results"]]

    assert names == ["Poll"]
    assert api.get("/api/campaigns?intent=nonsense").status_code == 400


def test_the_admin_list_shows_and_filters_the_intent(admin_user, tenant):
    editing.campaign_create(name="Sale", subject="Flash sale: 40% off", html_body="<p>Today only.</p>")
    editing.campaign_create(name="Poll", subject="Tell us what you think", html_body="<p>A short survey.</p>")
    client = Client(HTTP_HOST="tenant-a.localhost")
    client.force_login(admin_user)

    page = client.get("/admin/campaigns/campaign/?intent__exact=promotion").content.decode()

    assert 'data-intent="promotion"' in page
    assert ">Sale<" in page and ">Poll<" not in page


def test_the_classifier_knows_exactly_the_campaign_intents():
    assert list(INTENTS) == [value for value, _ in Campaign.INTENT_CHOICES]
    assert EmailTemplate  # the template path is covered above
