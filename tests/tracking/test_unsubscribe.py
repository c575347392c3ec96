import pytest
from django.test import Client
from django_tenants.utils import schema_context

from campaigns.lifecycle import audience_freeze
from campaigns.models import Campaign, CampaignRecipient
from customers.models import Customer, Interaction
from events.models import OutboxEvent
from segments.models import Segment
from tracking.models import CampaignStats

from .conftest import unsubscribe_path


def _customer(recipient):
    return Customer.objects.get(pk=recipient.customer_id)


def _nothing_changed(recipient):
    customer = _customer(recipient)
    recipient.refresh_from_db()
    return (
        customer.email_marketing is True
        and customer.unsubscribed_at is None
        and recipient.unsubscribed_at is None
        and not Interaction.objects.filter(kind="unsubscribed").exists()
        and not OutboxEvent.objects.filter(type="customer.unsubscribed").exists()
        and not CampaignStats.objects.filter(unsubscribes__gt=0).exists()
    )


def test_it_shows_a_page_with_a_button_and_a_get_changes_nothing(web, sent, tenant):
    recipient = sent.recipients[0]
    response = web.get(unsubscribe_path(recipient))
    assert response.status_code == 200
    html = response.content.decode()
    assert tenant.name in html
    assert '<form method="post"' in html and 'type="submit"' in html
    assert "a•••@example.com" in html and "ann@example.com" not in html
    assert "<script" not in html
    assert response["Cache-Control"].startswith("no-store")
    assert response["Referrer-Policy"] == "same-origin"
    assert "default-src 'none'" in response["Content-Security-Policy"]
    web.head(unsubscribe_path(recipient))
    assert _nothing_changed(recipient)


def test_it_unsubscribes_on_post_and_confirms_with_a_way_back(web, sent, tenant):
    recipient = sent.recipients[0]
    response = web.post(unsubscribe_path(recipient), {"action": "unsubscribe"})
    assert response.status_code == 200
    html = response.content.decode()
    assert "You are unsubscribed" in html and 'value="resubscribe"' in html and 'href="/p/' in html
    customer = _customer(recipient)
    recipient.refresh_from_db()
    assert customer.email_marketing is False
    assert customer.unsubscribed_at is not None
    assert recipient.unsubscribed_at == customer.unsubscribed_at
    interaction = Interaction.objects.get(kind="unsubscribed")
    assert (interaction.customer_id, interaction.data) == (
        customer.pk,
        {"source": "link", "campaign_id": sent.campaign.pk, "recipient_id": recipient.pk},
    )
    event = OutboxEvent.objects.get(type="customer.unsubscribed")
    assert (event.tenant, event.data["id"], event.data["email"], event.data["email_marketing"]) == (
        tenant.schema_name,
        customer.pk,
        "ann@example.com",
        False,
    )
    assert event.data["unsubscribed_at"] is not None
    assert CampaignStats.objects.get(pk=sent.campaign.pk).unsubscribes == 1


def test_it_accepts_an_rfc8058_one_click_post_without_cookies_or_csrf_token(sent, tenant):
    client = Client(HTTP_HOST="tenant-a.localhost", enforce_csrf_checks=True)
    recipient = sent.recipients[1]
    response = client.post(
        unsubscribe_path(recipient),
        data="List-Unsubscribe=One-Click",
        content_type="application/x-www-form-urlencoded",
    )
    assert response.status_code == 200
    assert response.content == b"Unsubscribed.\n"
    assert _customer(recipient).unsubscribed_at is not None
    assert Interaction.objects.get(kind="unsubscribed").data["source"] == "one-click"


def test_it_unsubscribes_once_however_often_it_is_posted(web, sent):
    recipient = sent.recipients[0]
    for _ in range(3):
        assert web.post(unsubscribe_path(recipient), {"action": "unsubscribe"}).status_code == 200
    assert Interaction.objects.filter(kind="unsubscribed").count() == 1
    assert OutboxEvent.objects.filter(type="customer.unsubscribed").count() == 1
    assert CampaignStats.objects.get(pk=sent.campaign.pk).unsubscribes == 1


def test_it_shows_the_confirmation_again_on_a_later_get(web, sent):
    recipient = sent.recipients[0]
    web.post(unsubscribe_path(recipient))
    response = web.get(unsubscribe_path(recipient))
    assert b"You are unsubscribed" in response.content


def test_it_resubscribes_from_the_confirmation(web, sent):
    recipient = sent.recipients[0]
    web.post(unsubscribe_path(recipient))
    response = web.post(unsubscribe_path(recipient), {"action": "resubscribe"})
    assert response.status_code == 200 and b"Welcome back" in response.content
    customer = _customer(recipient)
    assert (customer.email_marketing, customer.unsubscribed_at) == (True, None)
    updated = OutboxEvent.objects.get(type="customer.updated")
    assert sorted(updated.data["changed"]) == ["email_marketing", "unsubscribed_at"]


@pytest.mark.parametrize("path", ["/u/not-a-token", "/u/" + "A" * 300])
def test_it_answers_an_invalid_token_with_a_404_page_and_changes_nothing(web, sent, path):
    assert web.get(path).status_code == 404
    assert web.post(path, {"action": "unsubscribe"}).status_code == 404
    assert _nothing_changed(sent.recipients[0])


def test_it_refuses_an_unknown_action_and_changes_nothing(web, sent):
    recipient = sent.recipients[0]
    response = web.post(unsubscribe_path(recipient), {"action": "<b>delete-everything</b>"})
    assert response.status_code == 400
    assert b"delete-everything" not in response.content
    assert _nothing_changed(recipient)


def test_it_refuses_other_methods_and_changes_nothing(web, sent):
    recipient = sent.recipients[0]
    assert web.put(unsubscribe_path(recipient)).status_code == 405
    assert web.delete(unsubscribe_path(recipient)).status_code == 405
    assert _nothing_changed(recipient)


def test_it_does_nothing_for_a_token_of_tenant_a_on_tenant_b(web_b, sent, other_tenant):
    recipient = sent.recipients[0]
    assert web_b.get(unsubscribe_path(recipient)).status_code == 404
    assert web_b.post(unsubscribe_path(recipient), {"action": "unsubscribe"}).status_code == 404
    assert _nothing_changed(recipient)
    with schema_context(other_tenant.schema_name):
        assert not Interaction.objects.filter(kind="unsubscribed").exists()


def test_it_leaves_the_address_out_of_the_next_campaign(web, sent):
    web.post(unsubscribe_path(sent.recipients[0]))
    segment = Segment.objects.create(
        name="Everyone",
        rules={
            "combinator": "and",
            "rules": [{"field": "email", "operator": "endsWith", "value": "@example.com"}],
        },
    )
    following = Campaign.objects.create(name="Winter sale", segment=segment, status="sending")
    assert audience_freeze(campaign=following) == 2
    assert sorted(CampaignRecipient.objects.filter(campaign=following).values_list("email", flat=True)) == [
        "bob@example.com",
        "cy@example.com",
    ]
