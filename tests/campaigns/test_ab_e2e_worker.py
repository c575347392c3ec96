"""End to end: an A/B test sent by real Celery workers to a real SMTP server (aiosmtpd). The sample is
split evenly, the winner is decided after the wait (by confidence, at timeout) or by hand, the rest of
the audience gets the winner only, and nobody gets two messages.

Data is committed in a tenant of this module (the workers are other processes)."""

import email
import email.policy
from collections import Counter
from datetime import timedelta

import pytest
from django.db import connection
from django_tenants.utils import schema_context

from campaigns import editing
from campaigns.models import Campaign, CampaignRecipient
from campaigns.tasks import decide_ab_tests
from tenancy.models import Tenant
from tests.campaigns import test_e2e_worker as e2e
from tests.campaigns.test_e2e_worker import _api, _campaign_state, _post, _setup_campaign, _wait, _wait_sent
from tracking.hits import hit_record_open
from tracking.rollup import hits_rollup

# The worker module's fixtures: a committed tenant of this module, the SMTP sink, the workers.
live, sink, blocker, workers = e2e.live, e2e.sink, e2e.blocker, e2e.workers

N = 60
VARIANTS = [{"key": "A", "subject": "A: spring sale"}, {"key": "B", "subject": "B: a treat for you"}]


@pytest.mark.django_db  # makes pytest-django set up the test database when this module runs alone
def test_it_runs_in_a_tenant_of_its_own(live):
    assert live.schema_name.startswith("e2e_")


def _subjects(sink):
    parsed = [email.message_from_bytes(raw, policy=email.policy.default) for _, raw in sink.messages]
    return Counter(str(message["Subject"]) for message in parsed)


def _start_test(live, blocker, workers, sink, name):
    """A campaign of N with A/B variants (half the audience in the test), sent until the sample is out."""
    campaign, expected, _ = _setup_campaign(live, blocker, n=N, extra=False, name=name)
    with blocker.unblock(), schema_context(live.schema_name):
        editing.campaign_update(
            campaign=Campaign.objects.get(pk=campaign.pk),
            variants=VARIANTS,
            ab_test={"test_percent": 50, "metric": "open_rate", "wait_seconds": 3600, "min_confidence": 0.95},
        )
    connection.set_schema_to_public()
    workers.start()
    client = _api(live, blocker)
    assert _post(client, blocker, f"/api/campaigns/{campaign.pk}/send").status_code == 202
    _wait(lambda: sink.count() == N // 2)
    return campaign, expected, client


def _sample_sent(live, blocker, campaign_id):
    status, rows = _campaign_state(live, blocker, campaign_id)
    return status == "sending" and Counter(row["status"] for row in rows) == Counter(
        {"sent": N // 2, "held": N // 2}
    )


def _open(live, blocker, campaign_id, variant, n):
    """n recipients of a variant's sample open the message (human hits, rolled up as beat does)."""
    human = (
        "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36"
    )
    with blocker.unblock():
        tenant = Tenant.objects.get(pk=live.pk)
        tenant.machine_open_window_seconds = 0  # opened the moment it arrived: a person in this test
        with schema_context(live.schema_name):
            ids = CampaignRecipient.objects.filter(
                campaign_id=campaign_id, variant=variant, ab_sample=True
            ).values_list("id", flat=True)[:n]
            for recipient_id in ids:
                assert hit_record_open(tenant=tenant, recipient_id=recipient_id, user_agent=human)
            hits_rollup()
    connection.set_schema_to_public()


def _wait_is_over(live, blocker, campaign_id):
    """The wait ends now: started an hour ago (instead of waiting an hour in a test)."""
    with blocker.unblock(), schema_context(live.schema_name):
        campaign = Campaign.objects.get(pk=campaign_id)
        Campaign.objects.filter(pk=campaign_id).update(
            started_at=campaign.started_at - timedelta(seconds=3600)
        )
    connection.set_schema_to_public()


def _decision(live, blocker, campaign_id):
    with blocker.unblock(), schema_context(live.schema_name):
        campaign = Campaign.objects.get(pk=campaign_id)
    connection.set_schema_to_public()
    return campaign.ab_winner, campaign.ab_decided_by


def _assert_the_rest_got_the_winner_once(live, blocker, sink, campaign_id, expected, winner):
    _wait_sent(live, blocker, campaign_id)
    assert sink.by_address() == Counter({address: 1 for address in expected})
    loser = "B" if winner == "A" else "A"
    subjects = _subjects(sink)
    winning = next(v["subject"] for v in VARIANTS if v["key"] == winner)
    losing = next(v["subject"] for v in VARIANTS if v["key"] == loser)
    assert subjects == Counter({winning: N // 4 + N // 2, losing: N // 4})
    _, rows = _campaign_state(live, blocker, campaign_id)
    assert {row["status"] for row in rows} == {"sent"}
    assert len({row["message_id"] for row in rows}) == N


@pytest.mark.parametrize(
    "opens, winner, decided_by",
    [({"A": 1, "B": 13}, "B", "confidence"), ({"A": 5, "B": 4}, "A", "timeout")],
)
def test_it_decides_after_the_wait_and_sends_the_rest_the_winner(
    live, blocker, workers, sink, opens, winner, decided_by
):
    campaign, expected, _ = _start_test(live, blocker, workers, sink, name=f"AB {decided_by}")
    _wait(lambda: _sample_sent(live, blocker, campaign.pk))
    assert _subjects(sink) == Counter({"A: spring sale": N // 4, "B: a treat for you": N // 4})
    for variant, n in opens.items():
        _open(live, blocker, campaign.pk, variant, n)

    decide_ab_tests.delay()  # what beat does every 30 s; the wait is not over: nothing happens
    _wait_is_over(live, blocker, campaign.pk)
    assert _decision(live, blocker, campaign.pk) == ("", "")
    decide_ab_tests.delay()

    _wait(lambda: _decision(live, blocker, campaign.pk)[0])
    assert _decision(live, blocker, campaign.pk) == (winner, decided_by)
    _assert_the_rest_got_the_winner_once(live, blocker, sink, campaign.pk, expected, winner)


def test_it_sends_the_rest_the_variant_a_marketer_picks(live, blocker, workers, sink):
    campaign, expected, client = _start_test(live, blocker, workers, sink, name="AB manual")
    _wait(lambda: _sample_sent(live, blocker, campaign.pk))

    response = _post(client, blocker, f"/api/campaigns/{campaign.pk}/winner", {"key": "A"})

    assert response.status_code == 200, response.content
    assert _decision(live, blocker, campaign.pk) == ("A", "manual")
    _assert_the_rest_got_the_winner_once(live, blocker, sink, campaign.pk, expected, "A")
    assert _post(client, blocker, f"/api/campaigns/{campaign.pk}/winner", {"key": "B"}).status_code == 409
