"""`/v/<token>`: the web version of a sent email, personalised for its recipient (PRODUCT.md "Email
design"): signed per tenant, no open counted, never indexed or cached, gone for erased customers."""

import re
from urllib.parse import urlsplit

from django.utils import timezone

from campaigns.design import design_compile
from campaigns.models import Campaign, CampaignLink
from campaigns.rendering import customer_context
from campaigns.sender import composer_for
from campaigns.tokens import make_token
from customers.models import Customer
from tracking.models import Hit

DESIGN = {
    "blocks": [
        {"type": "heading", "data": {"text": 'Hello {{ customer.first_name|default:"there" }}'}},
        {"type": "button", "data": {"label": "Sale", "link": "https://shop.example.com/sale"}},
        {"type": "footer", "data": {}},
    ]
}


def _design_campaign(sent):
    compiled = design_compile(DESIGN)
    Campaign.objects.filter(pk=sent.campaign.pk).update(
        design=DESIGN,
        html_body=compiled["html"],
        text_body=compiled["text"],
        from_email="news@shop.example.com",
    )
    return Campaign.objects.get(pk=sent.campaign.pk)


def _sent_message(campaign, recipient):
    customer = Customer.objects.get(pk=recipient.customer_id)
    message, _ = composer_for(campaign=campaign).compose(
        recipient_id=recipient.pk,
        email=recipient.email,
        customer_id=customer.pk,
        customer=customer_context(customer),
    )
    return message


def test_it_links_every_message_to_its_personalised_web_version_which_counts_no_open(web, sent):
    campaign = _design_campaign(sent)
    recipient = sent.recipients[0]
    message = _sent_message(campaign, recipient)
    html = message.alternatives[0][0]
    url = re.search(r'href="([^"]+/v/[^"]+)"', html).group(1)
    assert url in message.body  # the text part links to it too
    response = web.get(urlsplit(url).path)
    assert response.status_code == 200
    page = response.content.decode()
    assert "Hello Person0" in page
    assert '<meta name="robots" content="noindex, nofollow">' in page
    assert response["X-Robots-Tag"] == "noindex, nofollow"
    assert response["Cache-Control"].startswith("no-store")
    assert "script-src" not in response["Content-Security-Policy"]
    assert "default-src 'none'" in response["Content-Security-Policy"]
    assert "/t/o/" not in page  # no pixel
    assert Hit.objects.count() == 0
    # Its links are the email's: a tracked click, and the recipient's own unsubscribe link.
    click = re.search(r'href="([^"]+/t/c/[^"]+)"', page).group(1)
    assert web.get(urlsplit(click).path)["Location"] == "https://shop.example.com/sale"
    assert f"/u/{make_token('u', recipient.pk)}" in page


def test_it_shows_each_recipient_their_own_version(web, sent):
    _design_campaign(sent)
    second = sent.recipients[1]
    page = web.get(f"/v/{make_token('v', second.pk)}").content.decode()
    assert "Hello Person1" in page and "Person0" not in page


def test_it_refuses_forged_and_other_kinds_of_tokens(web, sent):
    _design_campaign(sent)
    recipient = sent.recipients[0]
    assert web.get(f"/v/{make_token('u', recipient.pk)}").status_code == 404
    assert web.get(f"/v/{make_token('v', recipient.pk)}x").status_code == 404
    assert web.get("/v/test").status_code == 404
    assert web.get(f"/v/{make_token('v', 999999)}").status_code == 404
    assert web.post(f"/v/{make_token('v', recipient.pk)}").status_code == 405


def test_it_is_not_valid_on_another_tenants_host(web_b, sent):
    _design_campaign(sent)
    assert web_b.get(f"/v/{make_token('v', sent.recipients[0].pk)}").status_code == 404


def test_it_shows_nothing_of_an_erased_customer(web, sent):
    _design_campaign(sent)
    recipient = sent.recipients[0]
    Customer.objects.filter(pk=recipient.customer_id).update(erased_at=timezone.now())
    response = web.get(f"/v/{make_token('v', recipient.pk)}")
    assert response.status_code == 404
    assert "Person0" not in response.content.decode()


def test_it_serves_a_raw_html_campaign_with_its_footer(web, sent):
    Campaign.objects.filter(pk=sent.campaign.pk).update(
        html_body="<html><body><p>Raw {{ customer.first_name }}</p></body></html>"
    )
    CampaignLink.objects.filter(campaign=sent.campaign).delete()
    page = web.get(f"/v/{make_token('v', sent.recipients[0].pk)}").content.decode()
    assert "Raw Person0" in page and "Unsubscribe" in page
