"""Claims under a token and a renewed lease (campaigns/leases.py, sender.Store): a batch may outlive its
lease while its worker lives, a reclaimed claim changes nothing, and the tenant's rate is waited for
before anything is claimed."""

import uuid
from datetime import timedelta

import pytest
from django.core import mail
from django.db import OperationalError
from django.utils import timezone

from campaigns import jobs, lifecycle, sender
from campaigns.leases import Lease, LeaseLost
from campaigns.models import CampaignRecipient
from campaigns.ratelimit import Pacer, RateLimiter

from .conftest import claim_order, make_campaign, make_customers, static_segment

FAST = RateLimiter(rate_per_second=100000)


pytestmark = pytest.mark.usefixtures("locmem_mail")


class Clock:
    def __init__(self, now=1000.0):
        self.now = now

    def __call__(self):
        return self.now


class Relay:
    """A messenger with `send` only; `after_each(address)` runs once a message went out."""

    def __init__(self, after_each=lambda address: None):
        self.sent, self.after_each = [], after_each

    def send(self, message):
        self.sent.append(message.to[0])
        self.after_each(message.to[0])

    def reset(self):
        pass

    close = reset


def _start(n):
    campaign = make_campaign(static_segment(make_customers(n)))
    lifecycle.campaign_send_now(campaign=campaign)
    return campaign


def _rows(campaign):
    return list(
        CampaignRecipient.objects.filter(campaign=campaign)
        .order_by("id")
        .values_list("status", "claim_token", "lease_until", "attempts")
    )


def _send(store, batch, messenger):
    return sender.send_batch(
        claims=batch.claims,
        customers=store.customers([claim.customer_id for claim in batch.claims]),
        composer=store.composer(),
        messenger=messenger,
        pacer=Pacer(start=0.0, interval=0.0),
        lease=batch.lease,
    )


def test_it_claims_under_one_token_and_a_lease(tenant):
    campaign = _start(3)
    batch = sender.Store(campaign.pk).claim(limit=2, lease_seconds=60)

    rows = _rows(campaign)
    assert [(status, token, attempts) for status, token, _, attempts in rows] == [
        ("sending", batch.token, 1),
        ("sending", batch.token, 1),
        ("pending", None, 0),
    ]
    assert all(
        timezone.now() + timedelta(seconds=55) < lease < timezone.now() + timedelta(seconds=61)
        for _, _, lease, _ in rows[:2]
    )
    assert batch.lease.ids == [claim.id for claim in batch.claims]


def test_it_renews_the_lease_while_a_slow_batch_goes_on(tenant):
    campaign = _start(3)
    store = sender.Store(campaign.pk)
    batch = store.claim(limit=3, lease_seconds=60)
    clock = Clock(batch.lease.renewed_at)
    batch.lease.clock = clock
    renewals = []
    renew = batch.lease.renew
    batch.lease.renew = lambda **kwargs: renewals.append(kwargs["ids"]) or renew(**kwargs)
    leases = []

    def slow(address):  # 25 s per message: the batch takes 75 s under a 60-second lease
        clock.now += 25
        leases.append(sorted({lease for _, _, lease, _ in _rows(campaign)}))

    relay = Relay(after_each=slow)
    result = _send(store, batch, relay)

    assert len(relay.sent) == 3 and result.stopped == ""
    ids = [claim.id for claim in batch.claims]
    assert renewals == [ids, ids]  # before the second and the third message: a third of it had passed
    assert leases[0][0] < leases[1][0] < leases[2][0]  # each renewal pushed the lease further
    assert store.record(batch, result) == 3
    assert [(status, token) for status, token, _, _ in _rows(campaign)] == [("sent", None)] * 3


def test_it_stops_a_batch_whose_lease_was_reclaimed_and_its_late_outcome_changes_nothing(tenant):
    campaign = _start(3)
    store = sender.Store(campaign.pk)
    first = store.claim(limit=3, lease_seconds=60)
    clock = Clock(first.lease.renewed_at)
    first.lease.clock = clock
    second = []

    def frozen(address):
        # The worker stands still for longer than its lease after its first message: the reclaimer
        # puts the rows back and another worker claims them.
        if len(second) == 0:
            CampaignRecipient.objects.filter(campaign=campaign).update(
                lease_until=timezone.now() - timedelta(seconds=1)
            )
            assert jobs.leases_reclaim_expired() == [campaign.pk]
            second.append(sender.Store(campaign.pk).claim(limit=3, lease_seconds=60))
            clock.now += 61

    relay = Relay(after_each=frozen)
    result = _send(store, first, relay)

    order = claim_order(campaign)
    assert relay.sent == order[:1]  # nothing more once it knew it had lost the rows
    assert result.stopped == "the lease ran out after 61.0 s and 3 of 3 rows were reclaimed"
    assert (len(result.sent), len(result.released)) == (1, 2)
    assert store.record(first, result) == 0  # the late outcome changes nothing
    assert [(status, token, attempts) for status, token, _, attempts in _rows(campaign)] == [
        ("sending", second[0].token, 2)
    ] * 3

    # The newer claim sends and records as if the first had never been there, with the same Message-IDs.
    again = Relay()
    done = _send(store, second[0], again)
    assert store.record(second[0], done) == 3
    assert again.sent == order
    assert [status for status, *_ in _rows(campaign)] == ["sent"] * 3
    assert dict(result.sent)[first.claims[0].id] == dict(done.sent)[first.claims[0].id]


def test_it_gives_nothing_back_for_a_claim_it_no_longer_holds(tenant):
    campaign = _start(2)
    store = sender.Store(campaign.pk)
    first = store.claim(limit=2, lease_seconds=60)
    CampaignRecipient.objects.filter(campaign=campaign).update(
        lease_until=timezone.now() - timedelta(seconds=1)
    )
    jobs.leases_reclaim_expired()
    second = store.claim(limit=2, lease_seconds=60)
    result = sender.BatchResult(
        failed=[(first.claims[0].id, "550 no such user")], released=[first.claims[1].id]
    )

    assert store.record(first, result) == 0
    assert [(status, token) for status, token, _, _ in _rows(campaign)] == [("sending", second.token)] * 2


def test_it_keeps_sending_through_a_database_hiccup_while_a_third_of_the_lease_is_left():
    clock = Clock(0.0)

    def down(**kwargs):
        raise OperationalError("server closed the connection unexpectedly")

    lease = Lease(token="t", ids=[1, 2], seconds=60, renew=down, taken_at=0.0, clock=clock)
    clock.now = 30.0
    lease.keep()  # could not renew, but 30 s are left
    clock.now = 41.0
    with pytest.raises(LeaseLost, match="could not be renewed"):
        lease.keep()
    with pytest.raises(LeaseLost):  # and it stays lost
        lease.keep()


def test_it_waits_for_the_rate_before_claiming_and_gives_back_what_a_short_batch_left(tenant):
    campaign = _start(3)
    seen = []

    class Limiter:
        rate = 100000.0

        def reserve(self, n):
            held = CampaignRecipient.objects.filter(campaign=campaign, status="sending").count()
            given, waits = [], []
            seen.append((n, held, given, waits))

            def wait(index):  # what is held when the pacer waits for slot `index`
                waits.append(
                    (index, CampaignRecipient.objects.filter(campaign=campaign, status="sending").count())
                )

            pacer = Pacer(start=0.0, interval=0.0, give_back=given.append)
            pacer.wait = wait
            return pacer

    outcome = sender.campaign_batches_send(campaign_id=campaign.pk, batch_size=2, limiter=Limiter())

    assert (outcome.sent, outcome.finished) == (3, True)
    # The first slot is waited for while nothing is held, then the claim's messages are paced; the
    # slots a batch did not use go back: 2 of 2 used, then 1 of 2, then none of 2.
    assert seen == [
        (2, 0, [], [(0, 0), (0, 2), (1, 2)]),
        (2, 0, [1], [(0, 0), (0, 1)]),
        (2, 0, [2], [(0, 0)]),
    ]
    assert len(mail.outbox) == 3


def test_it_lets_the_next_reservation_start_where_the_used_slots_end(tenant, settings):
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    _check_give_back(RateLimiter(rate_per_second=10, key="give-back-local"))


def test_it_gives_back_unused_slots_through_redis(tenant, redis_service):
    _check_give_back(RateLimiter(rate_per_second=10, key=f"give-back-{uuid.uuid4().hex}"))


def _check_give_back(limiter):
    first = limiter.reserve(10)  # a second of slots; the batch uses 3
    first.give_back(7)
    second = limiter.reserve(5)
    assert 0.25 < second.start - first.start < 0.35  # right after the 3 used slots
    third = limiter.reserve(1)
    second.give_back(5)  # someone reserved after it: the slots stay taken
    fourth = limiter.reserve(1)
    assert 0.05 < fourth.start - third.start < 0.15


def test_it_tells_the_stall_check_a_sender_waiting_for_its_rate_is_busy(tenant, settings):
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    settings.CAMPAIGN_STALL_SECONDS = 30
    campaign = _start(2)
    later = timezone.now() + timedelta(minutes=5)  # long past the quiet window
    seen_by_beat = []

    def sleep(seconds):
        if not seen_by_beat:  # while the sender waits for its first slot, holding nothing
            held = CampaignRecipient.objects.filter(campaign=campaign, status="sending").count()
            seen_by_beat.append((seconds, held, jobs.campaigns_resume_stalled(now=later)))

    class Busy:
        """The tenant's other campaigns hold the next two minutes of its rate."""

        rate = 1.0

        def reserve(self, n):
            return Pacer(start=120.0, interval=1.0, sleep=sleep, clock=lambda: 0.0)

    outcome = sender.campaign_batches_send(campaign_id=campaign.pk, limiter=Busy(), max_batches=1)

    assert seen_by_beat == [(120.0, 0, [])]  # busy, not stalled: no extra batch tasks
    assert outcome.sent == 2
