"""GDPR erase removes the customer's personal data everywhere it was copied."""

import json
from datetime import timedelta

from django.utils import timezone

from campaigns.models import Campaign, CampaignRecipient
from customers.models import Customer, Interaction
from events.models import OutboxEvent
from tracking.models import Hit


def test_it_removes_pii_from_recipients_hits_interactions_and_outbox(api, tenant):
    created = api.post(
        "/api/customers",
        {
            "email": "secret.person@example.com",
            "first_name": "Qwertzu",
            "last_name": "Zyxwvut",
            "phone": "+3612345",
            "email_marketing": True,
        },
        format="json",
    )
    assert created.status_code == 201
    customer = Customer.objects.get(pk=created.json()["id"])
    api.post(
        f"/api/customers/{customer.pk}/activity",
        {"kind": "note", "body": "Qwertzu Zyxwvut called"},
        format="json",
    )
    campaign = Campaign.objects.create(name="Spring", subject="Hi", status="sent")
    recipient = CampaignRecipient.objects.create(
        campaign=campaign,
        customer=customer,
        email=customer.email,
        status="sent",
        sent_at=timezone.now() - timedelta(hours=1),
    )
    Hit.objects.create(
        kind="o", recipient=recipient, campaign=campaign, ip="203.0.113.9", user_agent="Secret Browser 1.0"
    )

    assert api.delete(f"/api/customers/{customer.pk}").status_code == 204

    def leaks(text):
        return any(
            pii in text
            for pii in (
                "secret.person@example.com",
                "Qwertzu",
                "Zyxwvut",
                "+3612345",
                "203.0.113.9",
                "Secret Browser",
            )
        )

    recipient.refresh_from_db()
    assert recipient.email.endswith("@erased.invalid")
    hit = Hit.objects.get(recipient=recipient)
    assert (hit.ip, hit.user_agent) == (None, "")
    interactions = [i.body + json.dumps(i.data) for i in Interaction.objects.filter(customer=customer)]
    assert [text for text in interactions if leaks(text)] == []
    payloads = [json.dumps(e.data) for e in OutboxEvent.objects.filter(tenant=tenant.schema_name)]
    assert payloads and [p for p in payloads if leaks(p)] == []


def test_it_erases_nothing_of_another_customer(api, tenant):
    keep = Customer.objects.create(email="keep@example.com", first_name="Keep")
    gone = Customer.objects.create(email="gone@example.com", first_name="Gone")
    campaign = Campaign.objects.create(name="Spring", subject="Hi", status="sent")
    kept_recipient = CampaignRecipient.objects.create(
        campaign=campaign, customer=keep, email=keep.email, status="sent"
    )
    Hit.objects.create(
        kind="o", recipient=kept_recipient, campaign=campaign, ip="198.51.100.1", user_agent="Keep UA"
    )
    assert api.delete(f"/api/customers/{gone.pk}").status_code == 204
    kept_recipient.refresh_from_db()
    assert kept_recipient.email == "keep@example.com"
    assert Hit.objects.get(recipient=kept_recipient).ip == "198.51.100.1"
    assert Customer.objects.get(pk=keep.pk).first_name == "Keep"
