"""The links the sender puts into a real message (pixel, click, List-Unsubscribe) lead to these views."""

import re
from urllib.parse import urlsplit

from campaigns.models import Campaign, CampaignRecipient
from campaigns.rendering import customer_context
from campaigns.sender import composer_for
from customers.models import Customer
from tracking.delivery import _recipient_for
from tracking.models import Hit


def _message(sent):
    Campaign.objects.filter(pk=sent.campaign.pk).update(
        html_body='<html><body><p>Hi</p><a href="https://shop.example.com/sale">Sale</a></body></html>',
        text_body="Hi",
        from_email="news@shop.example.com",
    )
    campaign = Campaign.objects.get(pk=sent.campaign.pk)
    recipient = sent.recipients[0]
    customer = Customer.objects.get(pk=recipient.customer_id)
    message, mid = composer_for(campaign=campaign).compose(
        recipient_id=recipient.pk,
        email=recipient.email,
        customer_id=customer.pk,
        customer=customer_context(customer),
    )
    CampaignRecipient.objects.filter(pk=recipient.pk).update(message_id=mid)
    return message, recipient


def _path(url):
    parts = urlsplit(url)
    assert parts.hostname == "tenant-a.localhost"  # the tenant's own host resolves the tenant
    return parts.path


def test_the_senders_pixel_click_and_unsubscribe_links_work(web, sent):
    message, recipient = _message(sent)
    html = message.alternatives[0][0]
    pixel = re.search(r'<img src="([^"]+/t/o/[^"]+)"', html).group(1)
    click = re.search(r'href="([^"]+/t/c/[^"]+)"', html).group(1)
    unsubscribe = re.search(r"<(https?://[^>]+/u/[^>]+)>", message.extra_headers["List-Unsubscribe"]).group(1)

    assert web.get(_path(pixel))["Content-Type"] == "image/gif"
    response = web.get(_path(click))
    assert (response.status_code, response["Location"]) == (302, "https://shop.example.com/sale")
    assert list(Hit.objects.order_by("id").values_list("kind", "recipient_id")) == [
        ("o", recipient.pk),
        ("c", recipient.pk),
    ]
    response = web.post(
        _path(unsubscribe),
        data="List-Unsubscribe=One-Click",
        content_type="application/x-www-form-urlencoded",
    )
    assert response.status_code == 200
    assert Customer.objects.get(pk=recipient.customer_id).unsubscribed_at is not None


def test_the_senders_message_id_names_the_recipient_for_webhooks(sent):
    message, recipient = _message(sent)
    assert _recipient_for(message_id=message.extra_headers["Message-ID"]).pk == recipient.pk
    assert message.metadata["recipient"] == recipient.pk
