"""Every message a tenant sends goes out DKIM-signed by its From domain's own key (campaign, test copy,
order email), checked with dkimpy's verify against the records the tenant was told to publish, through
a real SMTP server."""

import base64
import email
import email.policy
from datetime import timedelta

import dkim
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from django.utils import timezone

from campaigns import jobs, lifecycle, mail, senders, transactional
from campaigns import sender as engine
from campaigns.models import Campaign, CampaignRecipient, SenderDomain
from campaigns.ratelimit import RateLimiter
from customers.models import Customer, Order
from tenancy.models import Tenant
from tests import processes

from .conftest import make_campaign, make_customers, static_segment


@pytest.fixture
def sink(settings):
    with processes.smtp_sink() as handler:
        settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
        settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", handler.port
        settings.EMAIL_USE_TLS = settings.EMAIL_USE_SSL = False
        settings.EMAIL_HOST_USER = settings.EMAIL_HOST_PASSWORD = ""
        settings.DKIM_SELECTOR = ""
        settings.MAIL_UNSUBSCRIBE_MAILTO = ""
        yield handler


def _published(sender_domain):
    records = {r["name"]: r["value"] for r in senders.sender_domain_records(sender_domain=sender_domain)}
    return lambda name, timeout=5: (records.get(name.decode().rstrip(".")) or "").encode() or None


def _parsed(raw):
    return email.message_from_bytes(raw, policy=email.policy.default)


def _signature(raw):
    header = _parsed(raw)["DKIM-Signature"]
    return {
        name.strip(): "".join(value.split())
        for name, _, value in (part.partition("=") for part in header.replace("\r\n", "").split(";"))
    }


def _assert_signed_by(raw, sender_domain):
    assert dkim.verify(raw, dnsfunc=_published(sender_domain))
    assert _signature(raw)["d"] == sender_domain.domain
    assert _signature(raw)["s"] == sender_domain.dkim_selector
    assert _parsed(raw)["From"].addresses[0].domain == sender_domain.domain


def test_it_signs_every_campaign_message_with_the_tenants_domain_key(verified_domain, sink):
    campaign = make_campaign(static_segment(make_customers(3)))
    lifecycle.campaign_start(campaign=campaign, enqueue=False)

    outcome = engine.campaign_batches_send(
        campaign_id=campaign.pk,
        messenger=engine.Messenger(lambda: mail.CampaignSMTPBackend(host="127.0.0.1", port=sink.port)),
        limiter=RateLimiter(rate_per_second=100000),
    )

    assert outcome.sent == 3 and outcome.finished
    assert sorted(rcpt for rcpts, _ in sink.messages for rcpt in rcpts) == [
        f"c{i}@example.com" for i in range(3)
    ]
    for _, raw in sink.messages:
        _assert_signed_by(raw, verified_domain)


def test_it_signs_a_test_copy_with_the_tenants_domain_key(api, verified_domain, sink):
    campaign = make_campaign(static_segment(make_customers(1)))
    response = api.post(f"/api/campaigns/{campaign.pk}/test", {"emails": ["me@example.com"]}, format="json")
    assert response.status_code == 200 and response.json()[0]["sent"] is True
    [(rcpts, raw)] = sink.messages
    assert rcpts == ["me@example.com"]
    _assert_signed_by(raw, verified_domain)
    assert _parsed(raw)["X-CRM-Test"] == "yes"


def _order_email(tenant):
    customer = Customer.objects.create(email="ann@example.com", first_name="Ann", email_marketing=False)
    order = Order.objects.create(
        external_id="w-1", customer=customer, number="1001", status="paid", total="10.00"
    )
    email_id = transactional.transactional_email_request(order_id=order.pk, key=transactional.CONFIRMATION)
    return transactional.transactional_email_send(email_id=email_id)


def test_it_signs_order_emails_from_the_tenants_verified_default_sender(tenant, verified_domain, sink):
    Tenant.objects.filter(pk=tenant.pk).update(from_email="orders@shop.example", from_name="Shop")

    assert _order_email(tenant) == ("sent", None)

    [(_, raw)] = sink.messages
    _assert_signed_by(raw, verified_domain)
    assert _parsed(raw)["From"].addresses[0].addr_spec == "orders@shop.example"


def test_it_sends_order_emails_from_the_platform_address_when_the_default_sender_is_refused(
    tenant, sink, settings, tmp_path
):
    # A default sender saved before sender domains existed: the order confirmation still goes out,
    # from the platform address, signed with the platform's key.
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    (tmp_path / "platform.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    settings.DKIM_SELECTOR, settings.DKIM_PRIVATE_KEY_FILE = "platform", str(tmp_path / "platform.pem")
    Tenant.objects.filter(pk=tenant.pk).update(
        from_email="orders@legacy.example", from_name="Legacy shop", reply_to="help@legacy.example"
    )

    assert _order_email(tenant) == ("sent", None)

    [(_, raw)] = sink.messages
    message = _parsed(raw)
    assert message["From"].addresses[0].addr_spec == settings.MAIL_FROM_ADDRESS
    assert message["From"].addresses[0].display_name == "Legacy shop"
    assert message["Reply-To"] == "help@legacy.example"
    assert _signature(raw)["d"] == settings.MAIL_FROM_ADDRESS.rpartition("@")[2]
    record = b"v=DKIM1; k=rsa; p=" + base64.b64encode(public)
    assert dkim.verify(raw, dnsfunc=lambda name, timeout=5: record)


def test_it_holds_back_a_sending_campaign_whose_domain_failed_its_check_until_it_verifies_again(
    verified_domain, sink
):
    campaign = make_campaign(static_segment(make_customers(2)))
    lifecycle.campaign_start(campaign=campaign, enqueue=False)
    SenderDomain.objects.filter(pk=verified_domain.pk).update(status="failed")

    def run():
        return engine.campaign_batches_send(
            campaign_id=campaign.pk,
            messenger=engine.Messenger(lambda: mail.CampaignSMTPBackend(host="127.0.0.1", port=sink.port)),
            limiter=RateLimiter(rate_per_second=100000),
        )

    outcome = run()

    # Nothing went out unsigned or under a domain the tenant no longer proves it holds; the
    # recipients wait for a retry (a transient refusal), with the reason.
    assert outcome.sent == 0 and sink.messages == []
    rows = list(CampaignRecipient.objects.filter(campaign=campaign).values_list("status", "error"))
    assert [status for status, _ in rows] == ["pending", "pending"]
    assert all(error.startswith("sender refused: The sender domain shop.example failed") for _, error in rows)

    # Verified again (and the retry due): the same recipients are sent, signed.
    SenderDomain.objects.filter(pk=verified_domain.pk).update(status="verified")
    CampaignRecipient.objects.filter(campaign=campaign).update(lease_until=None)
    assert run().sent == 2
    for _, raw in sink.messages:
        _assert_signed_by(raw, verified_domain)


def test_it_fails_a_scheduled_campaign_whose_domain_failed_its_check_with_the_reason(verified_domain):
    campaign = make_campaign(static_segment(make_customers(1)))
    lifecycle.campaign_schedule(campaign=campaign, scheduled_at=timezone.now() + timedelta(minutes=5))
    SenderDomain.objects.filter(pk=verified_domain.pk).update(status="failed")

    assert jobs.campaigns_dispatch_due(now=timezone.now() + timedelta(minutes=10)) == []

    campaign = Campaign.objects.get(pk=campaign.pk)
    assert campaign.status == "failed"
    assert campaign.error.startswith("Could not start: from_email: The sender domain shop.example failed")
    assert not campaign.recipients.exists()
