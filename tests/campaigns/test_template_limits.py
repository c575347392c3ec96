"""Hostile templates: oversize sources are refused when saved, deep loops at parse time, and a render
that would burn a worker stops fast with the reason (a 400 at save or preview, a failed recipient
during a send), while ordinary templates render exactly as before."""

import time
from decimal import Decimal

import pytest
from django.core import mail
from django.test import Client

from campaigns import sender, services
from campaigns.models import Campaign, CampaignRecipient, EmailTemplate
from campaigns.ratelimit import RateLimiter
from campaigns.rendering import RenderLimitExceeded, order_context, render_message
from campaigns.transactional import DEFAULT_TEMPLATES
from customers.models import Customer

from .conftest import make_campaign, make_customers, static_segment

FAST = RateLimiter(rate_per_second=100000)
KB = 1024
VALID = {
    "name": "Newsletter",
    "subject": "Hi {{ customer.first_name|default:'there' }}",
    "html_body": "<p>Hello {{ customer.full_name }}</p><a href='{{ unsubscribe_url }}'>unsubscribe</a>",
    "text_body": "",
    "kind": "marketing",
}
# Two loops over the same value: harmless on a short list, a million passes on a long one.
SQUARE = (
    "<p>Hi {{ customer.first_name }}</p>\n"
    "{% for a in customer.attributes.picks %}{% for b in customer.attributes.picks %}"
    "{{ b }}{% endfor %}{% endfor %}"
)
TOO_MUCH_WORK = (
    "Line 2: the template does too much work (more than 100000 steps: each loop pass, tag, variable "
    "and filter counts one); loop over fewer items or nest fewer loops."
)


@pytest.fixture(autouse=True)
def locmem(settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    settings.MAIL_UNSUBSCRIBE_MAILTO = ""


@pytest.fixture
def browser(tenant, marketer):
    client = Client(HTTP_HOST=tenant.get_primary_domain().domain)
    client.force_login(marketer)
    return client


def _timed(call):
    started = time.monotonic()
    result = call()
    return result, time.monotonic() - started


def test_it_refuses_oversize_bodies_naming_the_field_with_nothing_saved(api, tenant):
    before = EmailTemplate.objects.count()

    html = api.post("/api/templates", {**VALID, "html_body": "x" * (512 * KB + 1)}, format="json")
    text = api.post("/api/templates", {**VALID, "text_body": "é" * (128 * KB + 1)}, format="json")

    assert html.status_code == 400
    assert html.json() == {"html_body": ["is too large: 512 KB, at most 512 KB."]}
    assert text.status_code == 400
    assert text.json() == {"text_body": ["is too large: 256 KB, at most 256 KB."]}  # bytes, not characters
    assert EmailTemplate.objects.count() == before


def test_it_accepts_bodies_at_the_limit(api, tenant):
    response = api.post(
        "/api/templates",
        {**VALID, "html_body": "x" * (512 * KB), "text_body": "y" * (256 * KB)},
        format="json",
    )

    assert response.status_code == 201
    assert len(EmailTemplate.objects.get(pk=response.json()["id"]).html_body) == 512 * KB


def test_it_refuses_an_oversize_update_and_keeps_the_template(api, tenant):
    template = EmailTemplate.objects.create(name="T", subject="S", html_body="<p>old</p>")

    response = api.put(
        f"/api/templates/{template.pk}", {**VALID, "html_body": "x" * (600 * KB)}, format="json"
    )

    assert response.status_code == 400
    assert response.json() == {"html_body": ["is too large: 600 KB, at most 512 KB."]}
    template.refresh_from_db()
    assert (template.name, template.html_body) == ("T", "<p>old</p>")


def test_it_refuses_an_oversize_inline_campaign_body_and_subject(api, tenant):
    before = Campaign.objects.count()

    body = api.post("/api/campaigns", {"name": "Big", "html_body": "x" * (513 * KB)}, format="json")
    subject = api.post("/api/campaigns", {"name": "Long", "subject": "s" * 999}, format="json")

    assert body.status_code == 400
    assert body.json() == {"html_body": ["is too large: 513 KB, at most 512 KB."]}
    assert subject.status_code == 400
    assert list(subject.json()) == ["subject"]
    assert Campaign.objects.count() == before


def test_it_refuses_an_oversize_body_in_the_admin_form(browser, tenant):
    response = browser.post(
        "/admin/campaigns/emailtemplate/add/",
        {
            "name": "Huge",
            "kind": "marketing",
            "key": "",
            "subject": "S",
            "html_body": "x" * (700 * KB),
            "text_body": "",
        },
    )

    assert response.status_code == 200
    assert "is too large: 700 KB, at most 512 KB." in response.content.decode()
    assert not EmailTemplate.objects.filter(name="Huge").exists()


def test_it_refuses_loops_nested_deeper_than_three_naming_the_line(api, tenant):
    before = EmailTemplate.objects.count()
    source = (
        "<p>x</p>\n{% for a in customer.attributes.a %}{% for b in a %}{% for c in b %}\n"
        "{% for d in c %}{{ d }}{% endfor %}{% endfor %}{% endfor %}{% endfor %}"
    )

    response = api.post("/api/templates", {**VALID, "html_body": source}, format="json")

    assert response.status_code == 400
    assert response.json() == {
        "html_body": ["Line 3: {% for %} loops are nested more than 3 deep; nest fewer loops."]
    }
    assert EmailTemplate.objects.count() == before


def test_it_refuses_a_loop_bomb_made_of_literals_at_save_and_quickly(api, tenant):
    before = EmailTemplate.objects.count()
    letters = "x" * 5000
    source = (
        f"<p>x</p>\n{{% for a in '{letters}' %}}{{% for b in '{letters}' %}}.{{% endfor %}}{{% endfor %}}"
    )

    response, seconds = _timed(
        lambda: api.post("/api/templates", {**VALID, "html_body": source}, format="json")
    )

    assert response.status_code == 400
    assert response.json() == {"html_body": [TOO_MUCH_WORK]}
    assert seconds < 2
    assert EmailTemplate.objects.count() == before


@pytest.mark.parametrize(
    "source, error",
    [
        (
            "{{ customer.first_name|ljust:'999999999' }}",
            "Line 1: the filter 'ljust' was given a width or precision above 2097152.",
        ),
        (
            "{{ 1|stringformat:'900000000d' }}",
            "Line 1: the filter 'stringformat' was given a width or precision above 2097152.",
        ),
        (
            "{% with a='0123456789abcdef' %}"
            + "{% with a=a|add:a %}" * 40
            + "{{ a }}"
            + "{% endwith %}" * 41,
            "Line 1: the filter 'add' would make a value longer than 2097152 characters.",
        ),
    ],
)
def test_it_refuses_filters_that_would_build_huge_values(api, tenant, source, error):
    before = EmailTemplate.objects.count()

    response, seconds = _timed(
        lambda: api.post("/api/templates", {**VALID, "html_body": source}, format="json")
    )

    assert response.status_code == 400
    assert response.json() == {"html_body": [error]}
    assert seconds < 2
    assert EmailTemplate.objects.count() == before


def test_it_stops_a_data_driven_loop_bomb_at_preview_with_a_400_and_quickly(api, tenant):
    template = EmailTemplate.objects.create(name="Picks", subject="Hi", html_body=SQUARE)
    small = Customer.objects.create(email="small@example.com", first_name="Sam", attributes={"picks": [1, 2]})
    big = Customer.objects.create(
        email="big@example.com", first_name="Bo", attributes={"picks": list(range(3000))}
    )

    ok = api.post(f"/api/templates/{template.pk}/preview", {"customer": small.pk}, format="json")
    refused, seconds = _timed(
        lambda: api.post(f"/api/templates/{template.pk}/preview", {"customer": big.pk}, format="json")
    )

    assert ok.status_code == 200
    assert ok.json()["html"] == "<p>Hi Sam</p>\n1212"
    assert refused.status_code == 400
    assert refused.json() == {"html_body": [TOO_MUCH_WORK]}
    assert seconds < 2


def test_it_caps_the_rendered_size_of_a_message(settings):
    settings.TEMPLATE_RENDER_MAX_CHARS = 1000
    context = {"customer": {"attributes": {"items": ["x" * 100] * 20}}}

    with pytest.raises(RenderLimitExceeded) as refused:
        render_message(
            subject="s",
            html="{% for item in customer.attributes.items %}<p>{{ item }}</p>{% endfor %}",
            context=context,
        )

    assert str(refused.value) == (
        "html_body: Line 1: the rendered text would be longer than 1000 characters."
    )


def test_it_renders_ordinary_templates_exactly_as_before():
    html = (
        "<p>Hi {{ customer.first_name|default:'there' }},</p>"
        "{% for item in order.items %}<li>{{ forloop.counter }}. {{ item.name }} x{{ item.quantity }}"
        "{% if not forloop.last %},{% endif %}</li>{% empty %}<li>none</li>{% endfor %}"
        "<p>{{ order.total }} {{ order.currency }}</p>"
    )

    class Item:
        def __init__(self, sku, name, quantity, unit_price):
            self.sku, self.name, self.quantity, self.unit_price = sku, name, quantity, unit_price

    class Order:
        number, total, currency, status, placed_at = "A-1", Decimal("30.00"), "EUR", "paid", None

    items = [Item("T", "Tea", 2, 5), Item("M", "Mug <big>", 1, 20)]
    rendered = render_message(
        subject="Order {{ order.number }}",
        html=html,
        context={"customer": {"first_name": ""}, "order": order_context(Order(), items=items)},
    )

    assert rendered.subject == "Order A-1"
    assert rendered.html == (
        "<p>Hi there,</p><li>1. Tea x2,</li><li>2. Mug &lt;big&gt; x1</li><p>30.00 EUR</p>"
    )


def test_it_keeps_the_shipped_transactional_defaults_valid(api, tenant):
    for key, template in DEFAULT_TEMPLATES.items():
        response = api.post(
            "/api/templates",
            {
                "name": f"Copy of {key}",
                "kind": "marketing",
                "subject": template["subject"],
                "html_body": template.get("html_body", ""),
                "text_body": template.get("text_body", ""),
            },
            format="json",
        )
        assert response.status_code == 201, (key, response.content)


def test_it_fails_only_the_recipient_whose_data_blows_the_budget_during_a_send(tenant):
    customers = make_customers(2, attributes={"picks": [1, 2]})
    bomb = make_customers(1, prefix="bomb", attributes={"picks": list(range(3000))})[0]
    campaign = make_campaign(static_segment(customers + [bomb]), html_body=SQUARE)
    services.campaign_send_now(campaign=campaign)

    outcome, seconds = _timed(lambda: sender.run(campaign_id=campaign.pk, limiter=FAST))

    assert seconds < 10
    assert (outcome.sent, outcome.failed, outcome.finished) == (2, 1, True)
    rows = {r.email: (r.status, r.error) for r in CampaignRecipient.objects.filter(campaign=campaign)}
    assert rows == {
        "c0@example.com": ("sent", ""),
        "c1@example.com": ("sent", ""),
        "bomb0@example.com": ("failed", f"could not render: RenderLimitExceeded: html_body: {TOO_MUCH_WORK}"),
    }
    assert sorted(m.to[0] for m in mail.outbox) == ["c0@example.com", "c1@example.com"]
    assert Campaign.objects.get(pk=campaign.pk).status == "sent"
