"""The sending pipeline in process: freeze, claim, compose, send, record, finish (locmem backend)."""

import email
import email.policy
import smtplib

import pytest
from django.core import mail
from django.utils import timezone

from campaigns import jobs, lifecycle, sender
from campaigns.models import Campaign, CampaignLink, CampaignRecipient, Suppression
from campaigns.ratelimit import Pacer, RateLimiter
from campaigns.tokens import read_token
from customers.models import Customer, Interaction
from events.models import OutboxEvent

from .conftest import make_campaign, make_customers, static_segment

FAST = RateLimiter(rate_per_second=100000)


pytestmark = pytest.mark.usefixtures("locmem_mail")


def _parse(message):
    return email.message_from_bytes(message.message().as_bytes(), policy=email.policy.default)


def test_it_freezes_only_marketable_deliverable_unique_addresses(tenant):
    ok = make_customers(3, prefix="ok")
    no_consent = make_customers(1, prefix="nc", consent=False)
    unsubscribed = make_customers(1, prefix="un", unsubscribed_at=timezone.now())
    erased = Customer.objects.create(email=None, email_marketing=True, erased_at=timezone.now())
    invalid = Customer.objects.create(email="not-an-address", email_marketing=True)
    suppressed = make_customers(1, prefix="sup")
    Suppression.objects.create(email=suppressed[0].email, reason="hard_bounce")
    excluded = make_customers(1, prefix="ex")
    everyone = ok + no_consent + unsubscribed + [erased, invalid] + suppressed + excluded
    campaign = make_campaign(static_segment(everyone), exclude_segment=static_segment(excluded, "Ex"))

    assert lifecycle.audience_freeze(campaign=campaign) == 3
    assert lifecycle.audience_freeze(campaign=campaign) == 0  # idempotent: one row per address
    assert sorted(CampaignRecipient.objects.filter(campaign=campaign).values_list("email", flat=True)) == [
        "ok0@example.com",
        "ok1@example.com",
        "ok2@example.com",
    ]


def test_it_sends_every_recipient_once_and_finishes_the_campaign(tenant):
    customers = make_customers(5)
    campaign = make_campaign(static_segment(customers))
    lifecycle.campaign_send_now(campaign=campaign)
    campaign.refresh_from_db()
    assert campaign.status == "sending"
    assert list(CampaignLink.objects.filter(campaign=campaign).values_list("url", flat=True)) == [
        "https://shop.example/sale?x=1&y=2"
    ]

    outcome = sender.campaign_batches_send(campaign_id=campaign.pk, batch_size=2, limiter=FAST)

    assert (outcome.sent, outcome.failed, outcome.batches, outcome.finished) == (5, 0, 3, True)
    assert sorted(m.to[0] for m in mail.outbox) == sorted(c.email for c in customers)
    campaign.refresh_from_db()
    assert campaign.status == "sent"
    assert campaign.sent_at is not None
    statuses = set(CampaignRecipient.objects.filter(campaign=campaign).values_list("status", flat=True))
    assert statuses == {"sent"}
    event = OutboxEvent.objects.get(type="campaign.sent", data__id=campaign.pk)
    assert event.data == {
        "id": campaign.pk,
        "name": "Spring",
        "recipients": 5,
        "sent": 5,
        "failed": 0,
        "pending": 0,
    }
    assert Interaction.objects.filter(kind="email_sent", customer__in=customers).count() == 5
    # A second run finds nothing to do and publishes nothing twice.
    assert sender.campaign_batches_send(campaign_id=campaign.pk, limiter=FAST).sent == 0
    assert OutboxEvent.objects.filter(type="campaign.sent", data__id=campaign.pk).count() == 1


def test_it_builds_rfc8058_personalised_tracked_messages(tenant, settings):
    settings.MAIL_UNSUBSCRIBE_MAILTO = "unsubscribe@shop.example"
    tenant.postal_address = "Shop Kft., Fő utca 1, Budapest"
    customer = make_customers(1)[0]
    campaign = make_campaign(static_segment([customer]))
    lifecycle.campaign_send_now(campaign=campaign)
    sender.campaign_batches_send(campaign_id=campaign.pk, limiter=FAST)

    recipient = CampaignRecipient.objects.get(campaign=campaign)
    parsed = _parse(mail.outbox[0])
    assert parsed.defects == []
    assert parsed.get_content_type() == "multipart/alternative"
    assert [part.get_content_type() for part in parsed.iter_parts()] == ["text/plain", "text/html"]
    assert parsed["Subject"] == "Hi First0"
    assert parsed["From"] == "Shop <news@shop.example>"
    assert parsed["Message-ID"] == recipient.message_id
    assert recipient.message_id.startswith(f"<c{campaign.pk}.r{recipient.pk}.")
    assert recipient.message_id.endswith("@shop.example>")
    assert parsed["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    unsubscribe, mailto = [part.strip().strip("<>") for part in parsed["List-Unsubscribe"].split(",")]
    assert unsubscribe.startswith("http://tenant-a.localhost:8012/u/")
    assert read_token("u", unsubscribe.rsplit("/", 1)[1]) == (recipient.pk,)
    assert mailto.startswith("mailto:unsubscribe@shop.example?subject=unsubscribe-")
    html = parsed.get_body(("html",)).get_content()
    text = parsed.get_body(("plain",)).get_content()
    assert "Hello First0 Last0" in html and "Hello First0 Last0" in text
    link = CampaignLink.objects.get(campaign=campaign)
    click_tokens = [part.split('"')[0] for part in html.split("/t/c/")[1:]]
    assert [read_token("c", token) for token in click_tokens] == [(recipient.pk, link.pk)]
    assert 'href="mailto:help@shop.example"' in html and 'href="#top"' in html
    assert f'href="{unsubscribe}"' in html  # the unsubscribe link is never rewritten
    pixel = html.split("/t/o/")[1].split('"')[0]
    assert read_token("o", pixel) == (recipient.pk,)
    assert "Shop Kft." not in html  # the template has its own unsubscribe link: no footer


def test_it_appends_a_footer_when_the_template_has_no_unsubscribe_link(tenant):
    tenant.postal_address = "Shop Kft., Budapest"
    customer = make_customers(1)[0]
    campaign = make_campaign(
        static_segment([customer]), html_body="<p>Hi</p>", track_opens=False, track_clicks=False
    )
    lifecycle.campaign_send_now(campaign=campaign)
    sender.campaign_batches_send(campaign_id=campaign.pk, limiter=FAST)
    parsed = _parse(mail.outbox[0])
    html = parsed.get_body(("html",)).get_content()
    text = parsed.get_body(("plain",)).get_content()
    assert "Shop Kft., Budapest" in html and ">Unsubscribe</a>" in html
    assert "/t/o/" not in html
    assert "Shop Kft., Budapest" in text and "Unsubscribe: http://tenant-a.localhost:8012/u/" in text


class FlakyMessenger:
    """Refuses some addresses: permanently (550) or transiently (451)."""

    def __init__(self, *, permanent=(), transient=()):
        self.permanent, self.transient, self.sent = set(permanent), set(transient), []

    def send(self, message):
        address = message.to[0]
        if address in self.permanent:
            raise smtplib.SMTPRecipientsRefused({address: (550, b"5.1.1 no such user")})
        if address in self.transient:
            raise smtplib.SMTPDataError(451, b"4.3.0 try again later")
        self.sent.append(message)

    def reset(self):
        pass

    close = reset


def test_it_fails_permanent_errors_and_retries_transient_ones_with_backoff(tenant):
    customers = make_customers(3)
    campaign = make_campaign(static_segment(customers))
    lifecycle.campaign_send_now(campaign=campaign)
    messenger = FlakyMessenger(permanent={"c0@example.com"}, transient={"c1@example.com"})

    outcome = sender.campaign_batches_send(campaign_id=campaign.pk, messenger=messenger, limiter=FAST)

    assert (outcome.sent, outcome.failed, outcome.retried, outcome.more) == (1, 1, 1, True)
    assert 55 <= outcome.delay <= 60
    rows = {r.email: r for r in CampaignRecipient.objects.filter(campaign=campaign)}
    assert rows["c0@example.com"].status == "failed"
    assert rows["c0@example.com"].error == "recipient refused: 550 5.1.1 no such user"
    assert rows["c1@example.com"].status == "pending"
    assert rows["c1@example.com"].error == "451 4.3.0 try again later"
    assert rows["c1@example.com"].lease_until > timezone.now()
    assert rows["c2@example.com"].status == "sent"
    campaign.refresh_from_db()
    assert campaign.status == "sending"

    # Its retry time has come and the server accepts it now.
    CampaignRecipient.objects.filter(pk=rows["c1@example.com"].pk).update(lease_until=timezone.now())
    outcome = sender.campaign_batches_send(campaign_id=campaign.pk, messenger=FlakyMessenger(), limiter=FAST)
    assert (outcome.sent, outcome.finished) == (1, True)
    assert CampaignRecipient.objects.get(pk=rows["c1@example.com"].pk).attempts == 2


def test_it_gives_up_after_the_last_attempt(tenant):
    customer = make_customers(1)[0]
    campaign = make_campaign(static_segment([customer]))
    lifecycle.campaign_send_now(campaign=campaign)
    CampaignRecipient.objects.filter(campaign=campaign).update(attempts=sender.MAX_ATTEMPTS - 1)
    sender.campaign_batches_send(
        campaign_id=campaign.pk, messenger=FlakyMessenger(transient={customer.email}), limiter=FAST
    )
    row = CampaignRecipient.objects.get(campaign=campaign)
    assert row.status == "failed"
    assert row.error == "gave up after 5 attempts: 451 4.3.0 try again later"
    campaign.refresh_from_db()
    assert campaign.status == "sent"


def test_it_stops_between_batches_when_paused_and_goes_on_when_resumed(tenant):
    customers = make_customers(4)
    campaign = make_campaign(static_segment(customers))
    lifecycle.campaign_send_now(campaign=campaign)
    sender.campaign_batches_send(campaign_id=campaign.pk, batch_size=2, max_batches=1, limiter=FAST)
    lifecycle.campaign_pause(campaign=campaign)

    assert sender.campaign_batches_send(campaign_id=campaign.pk, batch_size=2, limiter=FAST).sent == 0
    assert len(mail.outbox) == 2

    lifecycle.campaign_resume(campaign=Campaign.objects.get(pk=campaign.pk))
    assert sender.campaign_batches_send(campaign_id=campaign.pk, batch_size=2, limiter=FAST).sent == 2
    assert sorted(m.to[0] for m in mail.outbox) == sorted(c.email for c in customers)
    assert Campaign.objects.get(pk=campaign.pk).status == "sent"


def test_it_sends_nothing_more_once_cancelled(tenant):
    customers = make_customers(4)
    campaign = make_campaign(static_segment(customers))
    lifecycle.campaign_send_now(campaign=campaign)
    sender.campaign_batches_send(campaign_id=campaign.pk, batch_size=2, max_batches=1, limiter=FAST)
    lifecycle.campaign_cancel(campaign=campaign)
    assert sender.campaign_batches_send(campaign_id=campaign.pk, limiter=FAST).sent == 0
    assert len(mail.outbox) == 2
    assert CampaignRecipient.objects.filter(campaign=campaign, status="cancelled").count() == 2
    assert Campaign.objects.get(pk=campaign.pk).status == "cancelled"


def test_it_reclaims_expired_leases_and_resends_with_the_same_message_id(tenant):
    customers = make_customers(2)
    campaign = make_campaign(static_segment(customers))
    lifecycle.campaign_send_now(campaign=campaign)
    # A worker claimed both, handed them to SMTP, and died before recording anything.
    batch = sender.Store(campaign.pk).claim(limit=10, lease_seconds=60)
    assert len(batch.claims) == 2
    assert jobs.leases_reclaim_expired() == []  # not expired yet
    CampaignRecipient.objects.filter(campaign=campaign).update(lease_until=timezone.now())

    assert jobs.leases_reclaim_expired() == [campaign.pk]
    sender.campaign_batches_send(campaign_id=campaign.pk, limiter=FAST)

    rows = CampaignRecipient.objects.filter(campaign=campaign).order_by("id")
    assert [(r.status, r.attempts) for r in rows] == [("sent", 2), ("sent", 2)]
    assert [m.extra_headers["Message-ID"] for m in mail.outbox] == [r.message_id for r in rows]


def test_it_keeps_two_concurrent_claims_disjoint(tenant):
    customers = make_customers(5)
    campaign = make_campaign(static_segment(customers))
    lifecycle.campaign_send_now(campaign=campaign)
    store = sender.Store(campaign.pk)
    first = store.claim(limit=3, lease_seconds=60)
    second = store.claim(limit=3, lease_seconds=60)
    assert len(first.claims) == 3 and len(second.claims) == 2
    assert not {c.id for c in first.claims} & {c.id for c in second.claims}
    assert first.token != second.token
    assert store.claim(limit=3, lease_seconds=60).claims == []


def test_it_paces_batches_at_the_tenant_rate(tenant):
    customers = make_customers(6)
    campaign = make_campaign(static_segment(customers))
    lifecycle.campaign_send_now(campaign=campaign)
    slept = []

    class Limiter:
        def reserve(self, n):
            return Pacer(start=0.0, interval=0.5, sleep=slept.append, clock=lambda: 0.0)

    sender.campaign_batches_send(campaign_id=campaign.pk, batch_size=3, limiter=Limiter())
    assert slept == [0.5, 1.0, 0.5, 1.0]
