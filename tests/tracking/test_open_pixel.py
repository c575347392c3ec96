from unittest import mock

from django.db import OperationalError
from django_tenants.utils import schema_context

from campaigns.tokens import make_token
from tracking.models import Hit

from .conftest import HUMAN_AGENT, is_pixel, open_path


def test_it_returns_a_one_pixel_gif_that_is_never_cached(web, sent):
    response = web.get(open_path(sent.recipients[0]))
    assert is_pixel(response)
    assert response.content[:6] == b"GIF89a"
    assert response.content[6:10] == b"\x01\x00\x01\x00"  # 1 x 1
    assert response["Pragma"] == "no-cache"
    assert response["Expires"] == "0"


def test_it_records_one_raw_hit_per_request(web, sent):
    recipient = sent.recipients[0]
    web.get(open_path(recipient), REMOTE_ADDR="203.0.113.9")
    web.get(open_path(recipient), REMOTE_ADDR="203.0.113.9")
    hits = list(
        Hit.objects.order_by("id").values_list(
            "kind", "campaign_id", "recipient_id", "link_id", "is_machine", "ip", "user_agent", "processed_at"
        )
    )
    assert hits == [("o", sent.campaign.pk, recipient.pk, None, False, "203.0.113.9", HUMAN_AGENT, None)] * 2


def test_it_returns_the_pixel_and_records_nothing_for_a_tampered_token(web, sent):
    token = open_path(sent.recipients[0])
    tampered = token[:-1] + ("A" if token[-1] != "A" else "B")
    for path in (
        tampered,
        "/t/o/garbage",
        "/t/o/" + "x" * 500,
        open_path(sent.recipients[0]).replace("/t/o/", "/t/o/1"),
    ):
        assert is_pixel(web.get(path)), path
    assert Hit.objects.count() == 0


def test_it_does_not_accept_a_click_or_unsubscribe_token_as_an_open(web, sent):
    recipient = sent.recipients[0]
    assert is_pixel(web.get(f"/t/o/{make_token('u', recipient.pk)}"))
    assert is_pixel(web.get(f"/t/o/{make_token('c', recipient.pk, sent.links[0].pk)}"))
    assert Hit.objects.count() == 0


def test_it_records_nothing_for_a_recipient_that_does_not_exist(web, sent):
    assert is_pixel(web.get(f"/t/o/{make_token('o', 987654321)}"))
    assert Hit.objects.count() == 0


def test_it_ignores_a_token_of_tenant_a_on_tenant_b(web_b, sent, other_tenant):
    response = web_b.get(open_path(sent.recipients[0]))
    assert is_pixel(response)
    assert Hit.objects.count() == 0
    with schema_context(other_tenant.schema_name):
        assert Hit.objects.count() == 0


def test_it_still_returns_the_pixel_when_recording_fails(web, sent):
    with mock.patch("tracking.hits.hit_record_open", side_effect=OperationalError("database is down")):
        response = web.get(open_path(sent.recipients[0]))
    assert is_pixel(response)
    assert Hit.objects.count() == 0


def test_it_answers_head_and_post_with_the_pixel_without_recording(web, sent):
    assert web.head(open_path(sent.recipients[0])).status_code == 200
    assert is_pixel(web.post(open_path(sent.recipients[0])))
    assert Hit.objects.count() == 0


def test_it_strips_nul_bytes_and_truncates_long_user_agents(web, sent):
    web.get(
        open_path(sent.recipients[0]), HTTP_USER_AGENT="Mozilla/5.0 (X11) \x00 Firefox/133.0" + "z" * 1000
    )
    agent = Hit.objects.get().user_agent
    assert "\x00" not in agent and len(agent) == 512 and agent.startswith("Mozilla/5.0 (X11)  Firefox/133.0")
