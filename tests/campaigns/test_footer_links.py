"""The footer's links are the ones the message has (PRODUCT.md "Email design", "Transactional email"):
a campaign's message links its unsubscribe page and web version; an order email, which is no
marketing, links the preference centre (where order emails are turned off) and never an empty href,
from the block editor's footer or a raw template. Order emails go through the real SMTP sink."""

import json
import re
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from campaigns import email_templates, transactional
from campaigns.design import design_compile
from campaigns.rendering import render_message
from customers.models import Customer, Order, OrderItem
from events.models import TransactionalEmail
from tests import processes

FOOTER_DESIGN = {
    "blocks": [
        {"type": "text", "data": {"text": 'Thanks for order {{ customer.first_name|default:"friend" }}'}},
        {"type": "footer", "data": {"text": "Tea Shop"}},
    ]
}


@pytest.fixture
def smtp_sink(settings):
    with processes.smtp_sink() as sink:
        settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
        settings.EMAIL_HOST = "127.0.0.1"
        settings.EMAIL_PORT = sink.port
        settings.EMAIL_USE_TLS = settings.EMAIL_USE_SSL = False
        settings.EMAIL_HOST_USER = settings.EMAIL_HOST_PASSWORD = ""
        settings.DKIM_SELECTOR = ""
        yield sink


def send_order_email(customer):
    order = Order.objects.create(
        customer=customer,
        external_id="w-77",
        number="77",
        total="9.90",
        currency="EUR",
        status="paid",
        placed_at=timezone.now() - timedelta(minutes=1),
    )
    OrderItem.objects.create(order=order, sku="TEA-1", name="Green tea", quantity=1, unit_price="9.90")
    email_id = transactional.transactional_email_request(order_id=order.pk, key=transactional.CONFIRMATION)
    assert transactional.transactional_email_send(email_id=email_id) == ("sent", None)
    assert TransactionalEmail.objects.get(pk=email_id).status == "sent"


def parts(message):
    html = message.get_body(("html",)).get_content()
    text = message.get_body(("plain",)).get_content()
    return html, text


def test_it_links_an_order_emails_block_footer_to_the_preference_centre_only(tenant, smtp_sink):
    template = transactional.transactional_template(key=transactional.CONFIRMATION)
    email_templates.template_update(template=template, design=FOOTER_DESIGN)
    customer = Customer.objects.create(email="ann@example.com", first_name="Ann")

    send_order_email(customer)

    [message] = smtp_sink.emails()
    html, text = parts(message)
    assert "Thanks for order Ann" in html
    hrefs = re.findall(r'href="([^"]*)"', html)
    assert "" not in hrefs and all(href.strip() for href in hrefs)
    [preferences] = [href for href in hrefs if "/p/" in href]
    assert preferences.startswith(("http://", "https://"))
    assert ">Email preferences</a>" in html
    assert "Unsubscribe" not in html and "View in your browser" not in html
    assert preferences in text and "Unsubscribe" not in text and "()" not in text


def test_it_drops_an_empty_link_a_raw_order_template_has(tenant, smtp_sink):
    template = transactional.transactional_template(key=transactional.CONFIRMATION)
    template.html_body = (
        '<p>Order {{ order.number }}</p><p><a href="{{ unsubscribe_url }}">Unsubscribe</a> '
        "<a href='{{ web_version_url }}'>Web</a> <a href=\"{{ preferences_url }}\">Preferences</a></p>"
    )
    template.save()
    customer = Customer.objects.create(email="bob@example.com", first_name="Bob")

    send_order_email(customer)

    [message] = smtp_sink.emails()
    html, _ = parts(message)
    assert "Order 77" in html
    assert re.findall(r"""href=["']\s*["']""", html) == []
    assert "<p>Unsubscribe Web <a href=" in html and ">Preferences</a>" in html


def test_it_keeps_unsubscribe_and_web_version_in_a_campaigns_block_footer(tenant):
    compiled = design_compile(FOOTER_DESIGN)
    rendered = render_message(
        subject="Hi",
        html=compiled["html"],
        text=compiled["text"],
        context={
            "customer": {"first_name": "Cy"},
            "unsubscribe_url": "https://t.example/u/x",
            "preferences_url": "https://t.example/p/y",
            "web_version_url": "https://t.example/v/z",
        },
    )
    assert re.search(r'<a href="https://t.example/u/x"[^>]*>Unsubscribe</a>', rendered.html)
    assert re.search(r'<a href="https://t.example/v/z"[^>]*>View in your browser</a>', rendered.html)
    assert "Email preferences" not in rendered.html
    assert "https://t.example/u/x" in rendered.text and "https://t.example/v/z" in rendered.text
    assert "Email preferences" not in rendered.text


def test_it_never_writes_an_empty_href_from_a_block_footer_without_links(tenant):
    compiled = design_compile(FOOTER_DESIGN)
    rendered = render_message(subject="Hi", html=compiled["html"], text=compiled["text"], context={})
    assert re.findall(r'href="\s*"', rendered.html) == []
    assert "Tea Shop" in rendered.html


def test_it_previews_an_order_email_as_it_goes_out(api, tenant):
    template = transactional.transactional_template(key=transactional.CONFIRMATION)
    email_templates.template_update(template=template, design=FOOTER_DESIGN)
    customer = Customer.objects.create(email="dee@example.com", first_name="Dee")

    sample = api.post(f"/api/templates/{template.pk}/preview", {}, format="json").json()
    own = api.post(f"/api/templates/{template.pk}/preview", {"customer": customer.pk}, format="json").json()

    for rendered in (sample, own):
        assert ">Email preferences</a>" in rendered["html"]
        assert "Unsubscribe" not in rendered["html"] and "View in your browser" not in rendered["html"]
        assert re.findall(r'href="\s*"', rendered["html"]) == []
    assert "Thanks for order Dee" in own["html"] and "/p/" in own["text"]


def test_it_previews_an_order_email_in_the_block_editor_with_the_preference_centre(tenant, marketer):
    browser = Client(HTTP_HOST=tenant.get_primary_domain().domain)
    browser.force_login(marketer)

    def preview(kind):
        return browser.post(
            "/admin/campaigns/emailtemplate/design-preview/",
            {"design": json.dumps(FOOTER_DESIGN), "subject": "Order", "kind": kind},
        ).json()

    order_email, campaign = preview("transactional"), preview("marketing")

    assert ">Email preferences</a>" in order_email["html"] and "Unsubscribe" not in order_email["html"]
    assert "Unsubscribe</a>" in campaign["html"] and "Email preferences" not in campaign["html"]
