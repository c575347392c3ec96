"""ESP delivery webhooks, posted the way the ESPs post them, through anymail's real webhook views."""

import base64
import hashlib
import hmac
import json
import time

import pytest

from campaigns.messages import message_id
from campaigns.models import Campaign, CampaignRecipient, Suppression
from campaigns.selectors import audience_queryset
from customers.models import Interaction
from segments.models import Segment
from tracking.delivery import _recipient_for
from tracking.webhooks import check_webhook_secret

SECRET = "hooks:s3cret-webhook-password"
POSTMARK_URL = "/webhooks/anymail/postmark/tracking/"


@pytest.fixture(autouse=True)
def anymail_settings(settings):
    settings.ANYMAIL = {"WEBHOOK_SECRET": SECRET, "MAILGUN_WEBHOOK_SIGNING_KEY": "key-mailgun-signing"}


def _auth(secret=SECRET):
    return "Basic " + base64.b64encode(secret.encode()).decode()


def _post(web, payload, url=POSTMARK_URL, secret=SECRET):
    return web.post(
        url, data=json.dumps(payload), content_type="application/json", HTTP_AUTHORIZATION=_auth(secret)
    )


def _metadata(recipient):
    return {"schema": "tenant_a", "campaign": str(recipient.campaign_id), "recipient": str(recipient.pk)}


def postmark_delivery(recipient):
    return {
        "RecordType": "Delivery",
        "ServerID": 23,
        "MessageStream": "outbound",
        "MessageID": "883953f4-6105-42a2-a16a-77a8eac79483",
        "Recipient": recipient.email,
        "Tag": "campaign",
        "DeliveredAt": "2026-03-02T09:00:02Z",
        "Details": "smtp;250 2.0.0 OK",
        "Metadata": _metadata(recipient),
    }


def postmark_bounce(recipient, kind="HardBounce", metadata=True):
    payload = {
        "RecordType": "Bounce",
        "ID": 4323372036854775807,
        "Type": kind,
        "TypeCode": 1 if kind == "HardBounce" else 4096,
        "Name": "Hard bounce" if kind == "HardBounce" else "Soft bounce",
        "Tag": "campaign",
        "MessageID": "883953f4-6105-42a2-a16a-77a8eac79483",
        "ServerID": 23,
        "MessageStream": "outbound",
        "Description": "The server was unable to deliver your message (ex: unknown user, mailbox not found).",
        "Details": "smtp;550 5.1.1 The email account that you tried to reach does not exist.",
        "Email": recipient.email.upper(),
        "From": "news@tenant-a.localhost",
        "BouncedAt": "2026-03-02T09:01:00Z",
        "DumpAvailable": False,
        "Inactive": kind == "HardBounce",
        "CanActivate": True,
        "Subject": "Hello",
    }
    if metadata:
        payload["Metadata"] = _metadata(recipient)
    return payload


def postmark_complaint(recipient):
    payload = postmark_bounce(recipient)
    payload.update(
        {"RecordType": "SpamComplaint", "Type": "SpamComplaint", "TypeCode": 512, "Name": "Spam complaint"}
    )
    return payload


def _state(recipient):
    recipient.refresh_from_db()
    return recipient.status, recipient.delivered_at is not None


def test_it_marks_a_recipient_delivered(web, sent):
    recipient = sent.recipients[0]
    response = _post(web, postmark_delivery(recipient))
    assert response.status_code == 200
    recipient.refresh_from_db()
    assert recipient.status == "delivered"
    assert recipient.delivered_at.isoformat() == "2026-03-02T09:00:02+00:00"
    assert Suppression.objects.count() == 0


def test_it_suppresses_a_hard_bounce_and_excludes_it_from_the_next_send(web, sent):
    recipient = sent.recipients[0]
    assert _post(web, postmark_bounce(recipient)).status_code == 200
    recipient.refresh_from_db()
    assert recipient.status == "bounced"
    assert recipient.error.startswith("bounced: ")
    assert list(Suppression.objects.values_list("email", "reason")) == [("ann@example.com", "hard_bounce")]
    assert Interaction.objects.filter(customer_id=recipient.customer_id, kind="email_bounced").count() == 1

    segment = Segment.objects.create(
        name="All three",
        rules={
            "combinator": "and",
            "rules": [
                {
                    "field": "email",
                    "operator": "in",
                    "value": ["ann@example.com", "bob@example.com", "cy@example.com"],
                }
            ],
        },
    )

    nxt = Campaign.objects.create(name="Next", segment=segment)
    assert sorted(audience_queryset(campaign=nxt).values_list("email", flat=True)) == [
        "bob@example.com",
        "cy@example.com",
    ]


def test_it_records_a_soft_bounce_without_suppressing(web, sent):
    recipient = sent.recipients[1]
    assert _post(web, postmark_bounce(recipient, kind="SoftBounce")).status_code == 200
    recipient.refresh_from_db()
    assert (recipient.status, recipient.error.startswith("soft bounced: ")) == ("bounced", True)
    assert Suppression.objects.count() == 0


def test_it_suppresses_a_complaint_after_delivery(web, sent):
    recipient = sent.recipients[2]
    _post(web, postmark_delivery(recipient))
    assert _post(web, postmark_complaint(recipient)).status_code == 200
    assert _state(recipient) == ("complained", True)
    assert list(Suppression.objects.values_list("email", "reason")) == [("cy@example.com", "complaint")]
    assert Interaction.objects.filter(customer_id=recipient.customer_id, kind="email_complained").count() == 1


def test_it_finds_the_recipient_by_message_id_without_metadata(web, sent):
    recipient = sent.recipients[1]
    payload = postmark_bounce(recipient, metadata=False)
    payload["MessageID"] = recipient.message_id.strip("<>")
    assert _post(web, payload).status_code == 200
    assert _state(recipient) == ("bounced", False)


def test_it_applies_a_repeated_webhook_once(web, sent):
    recipient = sent.recipients[0]
    for _ in range(3):
        assert _post(web, postmark_bounce(recipient)).status_code == 200
    assert Suppression.objects.count() == 1
    assert Interaction.objects.filter(kind="email_bounced").count() == 1


def test_it_never_turns_a_bounce_back_into_a_delivery(web, sent):
    recipient = sent.recipients[0]
    _post(web, postmark_bounce(recipient))
    _post(web, postmark_delivery(recipient))
    assert _state(recipient) == ("bounced", False)


def test_it_suppresses_a_bounced_address_that_was_no_campaigns_message(web, sent):
    payload = postmark_bounce(sent.recipients[0], metadata=False)
    payload["Email"] = "Someone.Else@Example.com"
    assert _post(web, payload).status_code == 200
    assert list(Suppression.objects.values_list("email", flat=True)) == ["someone.else@example.com"]
    assert set(CampaignRecipient.objects.values_list("status", flat=True)) == {"sent"}


@pytest.mark.parametrize("secret", [None, "hooks:wrong-password"])
def test_it_refuses_a_webhook_without_the_secret_and_changes_nothing(web, sent, secret):
    recipient = sent.recipients[0]
    if secret is None:
        response = web.post(
            POSTMARK_URL, data=json.dumps(postmark_bounce(recipient)), content_type="application/json"
        )
    else:
        response = _post(web, postmark_bounce(recipient), secret=secret)
    assert response.status_code in (400, 401, 403)
    assert _state(recipient) == ("sent", False)
    assert Suppression.objects.count() == 0


def test_it_ignores_metadata_naming_a_recipient_of_another_tenant(web, sent):
    recipient = sent.recipients[0]
    payload = postmark_bounce(sent.recipients[1], metadata=False)
    payload["Metadata"] = {"schema": "tenant_b", "recipient": str(recipient.pk)}
    payload["Email"] = "nobody@example.org"
    _post(web, payload)
    assert _state(recipient) == ("sent", False)


def _mailgun_signature(key="key-mailgun-signing"):
    timestamp, token = str(int(time.time())), "a8ce0edb2dd8301dee6c2405235584e45aa91d1e9f979f3de0"
    digest = hmac.new(key.encode(), (timestamp + token).encode(), hashlib.sha256).hexdigest()
    return {"timestamp": timestamp, "token": token, "signature": digest}


def mailgun_failed(recipient, severity="permanent", key="key-mailgun-signing"):
    return {
        "signature": _mailgun_signature(key),
        "event-data": {
            "event": "failed",
            "id": "G9Bn5sl1TC6nu79C8C0bwg",
            "timestamp": 1772442060.12,
            "severity": severity,
            "reason": "bounce" if severity == "permanent" else "generic",
            "recipient": recipient.email,
            "log-level": "error",
            "message": {"headers": {"message-id": recipient.message_id.strip("<>"), "to": recipient.email}},
            "delivery-status": {"code": 550, "message": "5.1.1 mailbox does not exist", "description": ""},
            "user-variables": {},
        },
    }


def test_it_understands_mailgun_signed_webhooks(web, sent):
    recipient = sent.recipients[2]
    assert _post(web, mailgun_failed(recipient), url="/webhooks/anymail/mailgun/tracking/").status_code == 200
    assert _state(recipient) == ("bounced", False)
    assert list(Suppression.objects.values_list("email", "reason")) == [("cy@example.com", "hard_bounce")]


def test_it_refuses_a_mailgun_webhook_with_a_bad_signature(web, sent):
    recipient = sent.recipients[2]
    response = _post(web, mailgun_failed(recipient, key="forged"), url="/webhooks/anymail/mailgun/tracking/")
    assert response.status_code == 400
    assert _state(recipient) == ("sent", False)
    assert Suppression.objects.count() == 0


def test_it_leaves_a_temporary_mailgun_failure_alone(web, sent):
    recipient = sent.recipients[2]
    assert (
        _post(
            web, mailgun_failed(recipient, severity="temporary"), url="/webhooks/anymail/mailgun/tracking/"
        ).status_code
        == 200
    )
    assert _state(recipient) == ("sent", False)
    assert Suppression.objects.count() == 0


def test_it_finds_the_recipient_by_the_senders_message_id_by_primary_key(
    web, sent, django_assert_max_num_queries
):
    recipient = sent.recipients[2]
    mid = message_id(
        campaign_id=recipient.campaign_id, recipient_id=recipient.pk, domain="tenant-a.localhost"
    )
    CampaignRecipient.objects.filter(pk=recipient.pk).update(message_id=mid)
    found = _recipient_for(message_id=mid.strip("<>"), email="cy@example.com")
    assert found.pk == recipient.pk
    forged = mid.replace(f".r{recipient.pk}.", f".r{sent.recipients[0].pk}.")
    assert _recipient_for(message_id=forged) is None
    payload = postmark_bounce(recipient, metadata=False)
    payload["MessageID"] = mid
    assert _post(web, payload).status_code == 200
    assert _state(recipient) == ("bounced", False)


@pytest.mark.filterwarnings("ignore::anymail.exceptions.AnymailInsecureWebhookWarning")
def test_it_ignores_events_while_no_webhook_secret_is_configured(web, sent, settings):
    settings.ANYMAIL = {}
    recipient = sent.recipients[0]
    response = web.post(
        POSTMARK_URL, data=json.dumps(postmark_bounce(recipient)), content_type="application/json"
    )
    assert response.status_code == 200  # anymail itself accepts it, with a warning
    assert _state(recipient) == ("sent", False)
    assert Suppression.objects.count() == 0


def test_it_warns_at_start_up_about_an_esp_without_a_webhook_secret(settings):
    settings.EMAIL_BACKEND = "anymail.backends.postmark.EmailBackend"
    settings.ANYMAIL = {}
    assert [w.id for w in check_webhook_secret()] == ["tracking.W001"]
    settings.ANYMAIL = {"WEBHOOK_SECRET": SECRET}
    assert check_webhook_secret() == []
