"""Budgets of the tracking links: replays are answered as usual but not stored; pages refuse floods."""

import logging
from collections import Counter

import pytest
from django.core.cache import cache
from django.test import override_settings
from django_tenants.utils import schema_context

from campaigns.models import Campaign, CampaignRecipient
from campaigns.tokens import make_token
from customers.models import Customer, Interaction
from events.models import OutboxEvent
from tracking import ratelimit
from tracking.models import Hit

from .conftest import click_path, is_pixel, make_sent_campaign, open_path, preferences_path, unsubscribe_path

BURST = 20
INTERVAL = 10


class FakeClock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


@pytest.fixture
def clock():
    fake = FakeClock()
    saved = ratelimit.hits.clock, ratelimit.pages.clock, ratelimit.unstored.clock
    ratelimit.hits.clock = ratelimit.pages.clock = ratelimit.unstored.clock = fake
    yield fake
    ratelimit.hits.clock, ratelimit.pages.clock, ratelimit.unstored.clock = saved


@pytest.fixture(autouse=True)
def _counters_removed(tenant):
    """The counters of hits not stored live in the cache, which no transaction rolls back."""
    yield
    for campaign_id in Campaign.objects.values_list("pk", flat=True):
        cache.delete(ratelimit.UNSTORED_CACHE_KEY.format(campaign_id=campaign_id))


def _is_refusal_page(response):
    return (
        response.status_code == 429
        and response["Content-Type"] == "text/html; charset=utf-8"
        and "Too many requests" in response.content.decode()
        and response["Retry-After"] == "2"
        and response["Cache-Control"].startswith("no-store")
        and response["X-Robots-Tag"] == "noindex, nofollow"
        and "default-src 'none'" in response["Content-Security-Policy"]
    )


def _stats(api, campaign):
    return api.get(f"/api/campaigns/{campaign.pk}/stats").json()


def test_it_answers_every_replayed_open_with_the_pixel_and_stores_only_the_burst(web, sent, clock):
    recipient = sent.recipients[0]
    responses = [web.get(open_path(recipient)) for _ in range(BURST + 15)]
    assert [is_pixel(response) for response in responses] == [True] * (BURST + 15)
    assert Hit.objects.filter(kind="o", recipient_id=recipient.pk).count() == BURST
    assert Hit.objects.count() == BURST


def test_it_redirects_every_replayed_click_and_stores_only_the_burst(web, sent, clock):
    recipient, link = sent.recipients[0], sent.links[0]
    responses = [web.get(click_path(recipient, link)) for _ in range(BURST + 15)]
    assert [(r.status_code, r["Location"]) for r in responses] == [(302, link.url)] * (BURST + 15)
    assert Hit.objects.filter(kind="c", recipient_id=recipient.pk, link_id=link.pk).count() == BURST
    assert Hit.objects.count() == BURST


def test_it_gives_each_link_of_a_recipient_and_the_open_their_own_budget(web, sent, clock):
    recipient = sent.recipients[0]
    for _ in range(BURST + 3):
        web.get(open_path(recipient))
        web.get(click_path(recipient, sent.links[0]))
        web.get(click_path(recipient, sent.links[1]))
    assert Counter(Hit.objects.values_list("kind", "link_id")) == {
        ("o", None): BURST,
        ("c", sent.links[0].pk): BURST,
        ("c", sent.links[1].pk): BURST,
    }


def test_it_records_every_one_of_500_recipients_behind_one_address(web, tenant, clock):
    emails = [f"person{i}@office.example.com" for i in range(500)]
    sent = make_sent_campaign(name="Office", emails=emails)
    for recipient in sent.recipients:
        assert is_pixel(web.get(open_path(recipient), REMOTE_ADDR="198.51.100.7"))
        response = web.get(click_path(recipient, sent.links[0]), REMOTE_ADDR="198.51.100.7")
        assert response.status_code == 302
    assert Hit.objects.filter(kind="o", ip="198.51.100.7").values("recipient_id").distinct().count() == 500
    assert Hit.objects.filter(kind="c", ip="198.51.100.7").values("recipient_id").distinct().count() == 500
    assert Hit.objects.count() == 1000


def test_it_refills_the_budget_with_time(web, sent, clock):
    recipient = sent.recipients[0]
    for _ in range(BURST + 5):
        web.get(open_path(recipient))
    assert Hit.objects.count() == BURST

    clock.now += 3 * INTERVAL
    for _ in range(5):
        assert is_pixel(web.get(open_path(recipient)))
    assert Hit.objects.count() == BURST + 3

    clock.now += BURST * INTERVAL  # idle long enough: the whole burst again
    for _ in range(BURST + 5):
        web.get(open_path(recipient))
    assert Hit.objects.count() == 2 * BURST + 3


@override_settings(TRACKING_HIT_BURST=3, TRACKING_HIT_INTERVAL_SECONDS=60)
def test_it_reads_the_budget_from_the_settings(web, sent, clock):
    for _ in range(10):
        web.get(open_path(sent.recipients[0]))
    assert Hit.objects.count() == 3
    clock.now += 59
    web.get(open_path(sent.recipients[0]))
    assert Hit.objects.count() == 3
    clock.now += 1
    web.get(open_path(sent.recipients[0]))
    assert Hit.objects.count() == 4


def test_it_keeps_one_tenants_budget_apart_from_anothers(web, web_b, sent, other_tenant, clock):
    recipient = sent.recipients[0]
    # The same recipient id in tenant B, so only the schema tells the two budgets apart.
    with schema_context(other_tenant.schema_name):
        campaign_b = Campaign.objects.create(name="B", subject="Hi", status="sent", sent_at=recipient.sent_at)
        customer_b = Customer.objects.create(email="b@example.com", email_marketing=True)
        CampaignRecipient.objects.create(
            pk=recipient.pk,
            campaign=campaign_b,
            customer=customer_b,
            email=customer_b.email,
            status="sent",
            sent_at=recipient.sent_at,
        )
        token_b = make_token("o", recipient.pk, schema=other_tenant.schema_name)
    for _ in range(BURST + 5):
        web.get(open_path(recipient))
    for _ in range(3):
        assert is_pixel(web_b.get(f"/t/o/{token_b}"))
    assert Hit.objects.count() == BURST
    with schema_context(other_tenant.schema_name):
        assert Hit.objects.filter(recipient_id=recipient.pk).count() == 3


@override_settings(TRACKING_HIT_INTERVAL_SECONDS=3600)
def test_it_counts_exactly_the_hits_not_stored_per_campaign(web, api, tenant, sent, clock, caplog):
    other = make_sent_campaign(name="Other", emails=("dee@example.com",))
    recipient, link = sent.recipients[0], sent.links[1]
    caplog.set_level(logging.WARNING, logger="tracking.ratelimit")
    for _ in range(BURST + 7):
        web.get(open_path(recipient))
    for _ in range(BURST + 4):
        web.get(click_path(recipient, link))
    for _ in range(BURST + 2):
        web.get(open_path(other.recipients[0]))
    clock.now += 59.9
    web.get(open_path(other.recipients[0]))  # not stored either; no report before a minute is up

    # The first hit not stored is reported at once, the rest wait for the minute.
    assert [record.getMessage() for record in caplog.records] == [
        f"tracking: 1 hits of 1 recipients over their budget were not stored in tenant {tenant.schema_name}"
        " (this worker)"
    ]
    assert _stats(api, sent.campaign)["hits_not_stored"] == 1

    clock.now += 0.1
    web.get(open_path(other.recipients[0]))
    assert len(caplog.records) == 2
    assert caplog.records[1].getMessage().startswith("tracking: 14 hits of 2 recipients over their budget")
    assert _stats(api, sent.campaign)["hits_not_stored"] == 11
    assert _stats(api, other.campaign)["hits_not_stored"] == 4
    assert _stats(api, sent.campaign)["opens"] == 0  # nothing rolled up from the replays either
    assert Hit.objects.count() == 3 * BURST


def test_it_reports_what_is_pending_when_forced(web, api, sent, clock):
    for _ in range(BURST + 5):
        web.get(open_path(sent.recipients[0]))
    assert _stats(api, sent.campaign)["hits_not_stored"] == 1
    ratelimit.unstored_report(force=True)
    assert _stats(api, sent.campaign)["hits_not_stored"] == 5


PAGE_BUDGET = {"TRACKING_PAGE_BURST": 5, "TRACKING_PAGE_INTERVAL_SECONDS": 2}


def _customer_state(customer):
    return (
        Customer.objects.filter(pk=customer.pk)
        .values("email_marketing", "email_transactional", "unsubscribed_at", "updated_at")
        .get(),
        Interaction.objects.filter(customer_id=customer.pk).count(),
        OutboxEvent.objects.count(),
    )


@override_settings(**PAGE_BUDGET)
def test_it_refuses_an_unsubscribe_post_flood_and_changes_nothing(web, sent, clock):
    recipient = sent.recipients[0]
    path = unsubscribe_path(recipient)
    for action in ("unsubscribe", "resubscribe", "unsubscribe", "resubscribe", "unsubscribe"):
        assert web.post(path, {"action": action}).status_code == 200
    before = _customer_state(recipient.customer)
    assert before[0]["email_marketing"] is False

    for action in ("resubscribe", "unsubscribe", "resubscribe"):
        assert _is_refusal_page(web.post(path, {"action": action}))
    assert _is_refusal_page(web.post(path, {"List-Unsubscribe": "One-Click"}))
    assert _is_refusal_page(web.get(path))
    assert _customer_state(recipient.customer) == before


@override_settings(**PAGE_BUDGET)
def test_it_refuses_a_preferences_post_flood_and_changes_nothing(web, sent, clock):
    customer = sent.recipients[0].customer
    path = preferences_path(customer)
    for marketing in (False, True, False, True, False):
        data = {"email_transactional": "on", **({"email_marketing": "on"} if marketing else {})}
        assert web.post(path, data).status_code == 200
    before = _customer_state(customer)
    assert before[0]["email_marketing"] is False

    assert _is_refusal_page(web.post(path, {"email_marketing": "on"}))
    assert _is_refusal_page(web.get(path))
    assert _customer_state(customer) == before

    clock.now += 2  # one more request a refill later
    assert web.post(path, {"email_marketing": "on"}).status_code == 200
    assert Customer.objects.get(pk=customer.pk).email_marketing is True


@override_settings(**PAGE_BUDGET)
def test_it_takes_the_one_click_unsubscribes_of_many_recipients_from_one_address(web, tenant, clock):
    # Mailbox providers POST the RFC 8058 one-clicks of all their users from a few servers.
    sent = make_sent_campaign(name="Many", emails=[f"u{i}@gmail.example.com" for i in range(40)])
    for recipient in sent.recipients:
        response = web.post(
            unsubscribe_path(recipient), {"List-Unsubscribe": "One-Click"}, REMOTE_ADDR="192.0.2.40"
        )
        assert response.status_code == 200
    assert Customer.objects.filter(email__endswith="@gmail.example.com", email_marketing=False).count() == 40


@override_settings(**PAGE_BUDGET)
def test_it_limits_links_that_are_not_valid_per_address(web, sent, clock):
    bad = ["/u/garbage", "/p/garbage", "/t/c/garbage", "/u/garbage", "/p/garbage"]
    assert [web.get(path, REMOTE_ADDR="203.0.113.5").status_code for path in bad] == [404] * 5
    for path in ("/u/garbage", "/p/garbage", "/t/c/garbage"):
        assert _is_refusal_page(web.get(path, REMOTE_ADDR="203.0.113.5"))
    assert _is_refusal_page(web.post("/u/garbage", {"action": "unsubscribe"}, REMOTE_ADDR="203.0.113.5"))
    # Another address, and valid links from the same one, are unaffected.
    assert web.get("/u/garbage", REMOTE_ADDR="203.0.113.6").status_code == 404
    assert web.get(unsubscribe_path(sent.recipients[0]), REMOTE_ADDR="203.0.113.5").status_code == 200
    assert (
        web.get(click_path(sent.recipients[0], sent.links[0]), REMOTE_ADDR="203.0.113.5").status_code == 302
    )
    assert is_pixel(web.get("/t/o/garbage", REMOTE_ADDR="203.0.113.5"))  # the pixel is always the pixel


@override_settings(TRUSTED_PROXIES="127.0.0.1/32", **PAGE_BUDGET)
def test_it_tells_addresses_apart_by_our_proxys_forwarded_for_only_when_trusted(web, sent, clock):
    for _ in range(5):
        web.get("/u/garbage", HTTP_X_FORWARDED_FOR="203.0.113.5")
    assert _is_refusal_page(web.get("/u/garbage", HTTP_X_FORWARDED_FOR="203.0.113.5"))
    assert web.get("/u/garbage", HTTP_X_FORWARDED_FOR="203.0.113.6").status_code == 404
    # A client that forges the header in front of our proxy is still the address our proxy saw.
    assert _is_refusal_page(web.get("/u/garbage", HTTP_X_FORWARDED_FOR="198.51.100.1, 203.0.113.5"))


@override_settings(**PAGE_BUDGET)
def test_it_ignores_a_forged_forwarded_for_when_no_proxy_is_trusted(web, sent, clock):
    for i in range(5):
        web.get("/u/garbage", HTTP_X_FORWARDED_FOR=f"203.0.113.{i}")
    assert _is_refusal_page(web.get("/u/garbage", HTTP_X_FORWARDED_FOR="203.0.113.99"))


def test_it_forgets_idle_keys_and_never_holds_more_than_its_bound(clock):
    budget = ratelimit.Budget(max_keys=100, clock=clock)
    for key in range(100):
        assert budget.take(key, burst=2, interval=1)
    assert len(budget) == 100
    clock.now += 1  # every bucket is full again: idle keys go as new ones come
    for key in range(100, 150):
        assert budget.take(key, burst=2, interval=1)
    assert len(budget) == 50
    for key in range(150, 400):
        budget.take(key, burst=2, interval=1)
    assert len(budget) == 100


def test_it_gives_an_exact_burst_then_one_per_interval(clock):
    budget = ratelimit.Budget(max_keys=10, clock=clock)
    assert [budget.take("k", burst=3, interval=5) for _ in range(5)] == [True, True, True, False, False]
    clock.now += 4.9
    assert budget.take("k", burst=3, interval=5) is False
    clock.now += 0.1
    assert [budget.take("k", burst=3, interval=5) for _ in range(2)] == [True, False]
