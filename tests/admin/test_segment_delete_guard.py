"""The admin's delete of a segment a scheduled campaign needs lists why and deletes nothing."""

from datetime import timedelta

from django.utils import timezone

from campaigns.models import Campaign
from segments.models import Segment

RULES = {"combinator": "and", "rules": [{"field": "tags", "operator": "contains", "value": "vip"}]}


def _scheduled(segment):
    return Campaign.objects.create(
        name="Spring sale",
        subject="Hi",
        html_body="<p>Hi</p>",
        status="scheduled",
        scheduled_at=timezone.now() + timedelta(days=1),
        segment=segment,
    )


def test_it_shows_the_scheduled_campaign_and_keeps_the_segment(admin_client_a):
    segment = Segment.objects.create(name="VIPs", kind="dynamic", rules=RULES)
    _scheduled(segment)
    url = f"/admin/segments/segment/{segment.pk}/delete/"

    page = admin_client_a.get(url)
    answer = admin_client_a.post(url, {"post": "yes"})

    assert page.status_code == 200
    assert "Spring sale" in page.content.decode()
    assert answer.status_code in (200, 403)
    assert Segment.objects.filter(pk=segment.pk).exists()


def test_it_keeps_it_through_the_bulk_delete_too(admin_client_a):
    segment = Segment.objects.create(name="VIPs", kind="dynamic", rules=RULES)
    spare = Segment.objects.create(name="Spare", kind="dynamic", rules=RULES)
    _scheduled(segment)

    answer = admin_client_a.post(
        "/admin/segments/segment/",
        {"action": "delete_selected", "_selected_action": [segment.pk, spare.pk], "post": "yes"},
    )

    assert answer.status_code in (200, 302, 403)
    assert Segment.objects.filter(pk=segment.pk).exists()
    assert "Spring sale" in answer.content.decode()


def test_it_deletes_a_segment_nothing_needs(admin_client_a):
    segment = Segment.objects.create(name="Old", kind="dynamic", rules=RULES)

    answer = admin_client_a.post(f"/admin/segments/segment/{segment.pk}/delete/", {"post": "yes"})

    assert answer.status_code == 302
    assert not Segment.objects.filter(pk=segment.pk).exists()
