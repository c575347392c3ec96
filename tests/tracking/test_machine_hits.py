from datetime import timedelta

import pytest
from django.utils import timezone

from tenancy.models import Tenant
from tracking.machine import is_machine_agent
from tracking.models import Hit
from tracking.rollup import hits_rollup

from .conftest import APPLE_MPP_AGENT, HUMAN_AGENT, click_path, make_sent_campaign, open_path


@pytest.mark.parametrize(
    "agent, ip, machine",
    [
        (HUMAN_AGENT, "203.0.113.1", False),
        (
            "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)",
            "66.249.84.1",
            False,
        ),
        (
            "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148",
            "198.51.100.4",
            False,
        ),
        (APPLE_MPP_AGENT, "203.0.113.1", True),
        (HUMAN_AGENT, "17.58.101.9", True),  # Apple's own network: the MPP proxies
        ("", "203.0.113.1", True),
        ("Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)", None, True),
        ("Barracuda Sentinel (EE)", None, True),
        ("Mozilla/5.0 (Windows NT 10.0) Mimecast URL protect", None, True),
        ("python-requests/2.32.3", None, True),
        ("curl/8.5.0", None, True),
        (
            "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/120.0",
            None,
            True,
        ),
        ("facebookexternalhit/1.1", None, True),
    ],
)
def test_it_tells_machines_from_people_by_agent_and_address(agent, ip, machine):
    assert is_machine_agent(user_agent=agent, ip=ip) is machine


def test_it_flags_apple_privacy_prefetch_and_bots_but_keeps_them(web, sent):
    recipient = sent.recipients[0]
    web.get(open_path(recipient), HTTP_USER_AGENT=APPLE_MPP_AGENT)
    web.get(open_path(recipient), HTTP_USER_AGENT="Mozilla/5.0 (compatible; bingbot/2.0)")
    web.get(click_path(recipient, sent.links[0]), HTTP_USER_AGENT="Proofpoint URL Defense scanner")
    web.get(open_path(recipient), HTTP_USER_AGENT=HUMAN_AGENT)
    assert list(Hit.objects.order_by("id").values_list("kind", "is_machine")) == [
        ("o", True),
        ("o", True),
        ("c", True),
        ("o", False),
    ]


def test_it_flags_hits_within_the_tenants_window_after_sending(web, tenant):
    now = timezone.now()
    fresh = make_sent_campaign(
        name="Fresh", emails=("f1@example.com", "f2@example.com"), sent_at=now - timedelta(seconds=3)
    )
    web.get(open_path(fresh.recipients[0]))
    web.get(click_path(fresh.recipients[1], fresh.links[0]))
    assert list(Hit.objects.order_by("id").values_list("is_machine", flat=True)) == [True, True]


def test_it_uses_the_tenants_own_window(web, tenant):
    Tenant.objects.filter(pk=tenant.pk).update(machine_open_window_seconds=0)
    fresh = make_sent_campaign(
        name="Fresh", emails=("f1@example.com",), sent_at=timezone.now() - timedelta(seconds=3)
    )
    web.get(open_path(fresh.recipients[0]))
    assert list(Hit.objects.values_list("is_machine", flat=True)) == [False]


def test_it_counts_a_hit_for_a_message_not_sent_yet_as_a_machine(web, sent):
    recipient = sent.recipients[0]
    type(recipient).objects.filter(pk=recipient.pk).update(sent_at=None, status="pending")
    web.get(open_path(recipient))
    assert list(Hit.objects.values_list("is_machine", flat=True)) == [True]


def test_it_leaves_machine_opens_out_of_human_counts(web, sent, api):
    web.get(open_path(sent.recipients[0]), HTTP_USER_AGENT=APPLE_MPP_AGENT)
    web.get(open_path(sent.recipients[0]), HTTP_USER_AGENT=APPLE_MPP_AGENT)
    web.get(open_path(sent.recipients[1]), HTTP_USER_AGENT="Mozilla/5.0 (compatible; bingbot/2.0)")
    web.get(open_path(sent.recipients[2]))
    hits_rollup()
    stats = api.get(f"/api/campaigns/{sent.campaign.pk}/stats").json()
    assert (stats["opens"], stats["unique_opens"], stats["machine_opens"]) == (1, 1, 3)
    assert stats["open_rate"] == 1 / 3
    for recipient in sent.recipients[:2]:
        recipient.refresh_from_db()
        assert recipient.first_opened_at is None


def test_it_flags_a_hit_from_apples_network_over_http(web, sent):
    web.get(open_path(sent.recipients[0]), REMOTE_ADDR="17.58.63.12")
    assert list(Hit.objects.values_list("ip", "is_machine")) == [("17.58.63.12", True)]


def test_it_takes_the_client_address_from_our_proxy_only_when_told_to(web, sent, settings):
    forwarded = {"REMOTE_ADDR": "10.0.0.5", "HTTP_X_FORWARDED_FOR": "17.1.1.1, 203.0.113.77"}
    web.get(open_path(sent.recipients[0]), **forwarded)
    settings.TRUSTED_PROXIES = "1"
    web.get(open_path(sent.recipients[0]), **forwarded)
    web.get(open_path(sent.recipients[0]), REMOTE_ADDR="10.0.0.5", HTTP_X_FORWARDED_FOR="not-an-address")
    # The left-most entry is whatever the client claims; the last is what our proxy saw.
    assert list(Hit.objects.order_by("id").values_list("ip", "is_machine")) == [
        ("10.0.0.5", False),
        ("203.0.113.77", False),
        (None, False),
    ]


def test_it_counts_the_window_from_delivery_when_the_esp_reported_it(web, tenant):
    now = timezone.now()
    late = make_sent_campaign(name="Late", emails=("l1@example.com",), sent_at=now - timedelta(minutes=5))
    type(late.recipients[0]).objects.filter(pk=late.recipients[0].pk).update(
        status="delivered", delivered_at=now - timedelta(seconds=2)
    )
    web.get(open_path(late.recipients[0]))
    assert list(Hit.objects.values_list("is_machine", flat=True)) == [True]
