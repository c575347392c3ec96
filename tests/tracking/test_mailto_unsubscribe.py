"""The mailto: of List-Unsubscribe: a mail client sends "unsubscribe-<token>" to MAIL_UNSUBSCRIBE_MAILTO,
the ESP posts it to anymail's inbound webhook, and the recipient is unsubscribed as by the one-click POST."""

import base64
import json

import pytest
from django.db import connection
from django.test import Client

from campaigns.tokens import make_token
from customers.models import Customer, Interaction
from tenancy.services import tenant_deactivate

from .conftest import HUMAN_AGENT

SECRET = "hooks:s3cret-webhook-password"
URL = "/webhooks/anymail/postmark/inbound/"


@pytest.fixture(autouse=True)
def anymail_settings(settings):
    settings.ANYMAIL = {"WEBHOOK_SECRET": SECRET}


def postmark_inbound(subject):
    """An inbound message as Postmark posts it (no RawEmail: anymail builds the message from fields)."""
    return {
        "FromFull": {"Email": "ann@example.com", "Name": "Ann"},
        "ToFull": [{"Email": "unsubscribe@mail.example.com", "Name": ""}],
        "CcFull": [],
        "BccFull": [],
        "Subject": subject,
        "MessageID": "a8c1040e-db1c-4e18-ac79-bc5f64c7ce2c",
        "Date": "Thu, 5 Dec 2026 09:00:00 +0000",
        "TextBody": "",
        "HtmlBody": "",
        "Headers": [],
        "Attachments": [],
    }


def _post(client, payload, secret=SECRET):
    auth = "Basic " + base64.b64encode(secret.encode()).decode()
    return client.post(
        URL, data=json.dumps(payload), content_type="application/json", HTTP_AUTHORIZATION=auth
    )


def _state(customer):
    customer.refresh_from_db()
    return customer.email_marketing, customer.unsubscribed_at is not None


def test_it_unsubscribes_the_recipient_named_in_the_subject(web, sent):
    recipient = sent.recipients[0]
    token = make_token("u", recipient.pk)

    response = _post(web, postmark_inbound(f"Re: unsubscribe-{token}"))

    assert response.status_code == 200
    assert _state(recipient.customer)[1] is True
    recipient.refresh_from_db()
    assert recipient.unsubscribed_at is not None
    assert Interaction.objects.filter(customer=recipient.customer, kind="unsubscribed").count() == 1
    others = [r.customer for r in sent.recipients[1:]]
    assert [_state(c) for c in others] == [(True, False)] * len(others)
    # The same message again changes nothing more.
    assert _post(web, postmark_inbound(f"unsubscribe-{token}")).status_code == 200
    assert Interaction.objects.filter(customer=recipient.customer, kind="unsubscribed").count() == 1


@pytest.mark.parametrize(
    "subject",
    ["please unsubscribe me", "unsubscribe-1~forged-signature", "unsubscribe-", ""],
)
def test_it_ignores_a_subject_without_a_valid_token_and_changes_nothing(web, sent, subject):
    before = list(Customer.objects.order_by("id").values_list("email_marketing", "unsubscribed_at"))
    assert _post(web, postmark_inbound(subject)).status_code == 200
    assert list(Customer.objects.order_by("id").values_list("email_marketing", "unsubscribed_at")) == before


def test_it_refuses_an_inbound_post_without_the_webhook_secret(web, sent):
    token = make_token("u", sent.recipients[0].pk)
    response = _post(web, postmark_inbound(f"unsubscribe-{token}"), secret="hooks:wrong")
    assert response.status_code == 400
    assert _state(sent.recipients[0].customer) == (True, False)


def test_a_token_of_tenant_a_posted_on_tenant_bs_host_changes_nothing(web_b, sent):
    token = make_token("u", sent.recipients[0].pk)
    assert _post(web_b, postmark_inbound(f"unsubscribe-{token}")).status_code == 200
    assert _state(sent.recipients[0].customer) == (True, False)


def test_the_public_host_finds_the_tenant_that_signed_the_token(tenant, sent, settings):
    token = make_token("u", sent.recipients[0].pk)
    public = Client(HTTP_HOST="localhost", HTTP_USER_AGENT=HUMAN_AGENT)
    try:
        response = _post(public, postmark_inbound(f"unsubscribe-{token}"))
    finally:
        connection.set_tenant(tenant)
    assert response.status_code == 200
    assert _state(sent.recipients[0].customer)[1] is True


def test_the_public_host_unsubscribes_a_recipient_of_a_deactivated_tenant(tenant, sent):
    token = make_token("u", sent.recipients[0].pk)
    public = Client(HTTP_HOST="localhost", HTTP_USER_AGENT=HUMAN_AGENT)
    try:
        connection.set_schema_to_public()
        tenant_deactivate(tenant=tenant)
        response = _post(public, postmark_inbound(f"unsubscribe-{token}"))
    finally:
        connection.set_tenant(tenant)
    assert response.status_code == 200
    assert _state(sent.recipients[0].customer)[1] is True
