"""A segment a scheduled campaign or a live flow still needs can't be deleted from under it (409)."""

from datetime import timedelta

import pytest
from django.utils import timezone
from django_tenants.utils import schema_context

from campaigns.models import Campaign
from flows.models import Flow
from segments.models import Segment

VIP_RULES = {"combinator": "and", "rules": [{"field": "tags", "operator": "contains", "value": "vip"}]}


@pytest.fixture
def segment(tenant):
    return Segment.objects.create(name="VIPs", kind="dynamic", rules=VIP_RULES)


def _campaign(status, **links):
    return Campaign.objects.create(
        name=f"{status} newsletter",
        subject="Hi",
        html_body="<p>Hi</p>",
        status=status,
        scheduled_at=timezone.now() + timedelta(days=1) if status == "scheduled" else None,
        **links,
    )


def _flow(status, segment):
    return Flow.objects.create(
        name=f"{status} welcome",
        status=status,
        trigger={"type": "segment_entered", "segment": segment.pk},
        activated_at=timezone.now() if status != "draft" else None,
    )


def test_it_refuses_to_delete_a_segment_a_scheduled_campaign_sends_to(api, segment):
    _campaign("scheduled", segment=segment)

    response = api.delete(f"/api/segments/{segment.pk}")

    assert response.status_code == 409
    assert "scheduled newsletter" in response.json()["detail"]
    assert Segment.objects.filter(pk=segment.pk).exists()
    assert Campaign.objects.get(name="scheduled newsletter").segment_id == segment.pk


def test_it_refuses_to_delete_a_segment_a_scheduled_campaign_excludes(api, segment):
    other = Segment.objects.create(name="All", kind="dynamic", rules={"combinator": "and", "rules": []})
    _campaign("scheduled", segment=other, exclude_segment=segment)

    assert api.delete(f"/api/segments/{segment.pk}").status_code == 409
    assert Segment.objects.filter(pk=segment.pk).exists()


def test_it_lets_a_segment_of_drafts_and_sent_campaigns_go(api, segment):
    draft = _campaign("draft", segment=segment)
    sent = _campaign("sent", segment=segment)

    assert api.delete(f"/api/segments/{segment.pk}").status_code == 204
    assert not Segment.objects.filter(pk=segment.pk).exists()
    draft.refresh_from_db()
    sent.refresh_from_db()
    assert draft.segment_id is None and sent.segment_id is None


@pytest.mark.parametrize("status", ["active", "paused"])
def test_it_refuses_to_delete_the_trigger_segment_of_a_live_flow(api, segment, status):
    _flow(status, segment)

    response = api.delete(f"/api/segments/{segment.pk}")

    assert response.status_code == 409
    assert f"{status} welcome" in response.json()["detail"]
    assert Segment.objects.filter(pk=segment.pk).exists()


@pytest.mark.parametrize("status", ["draft", "archived"])
def test_it_lets_the_segment_of_a_draft_or_archived_flow_go(api, segment, status):
    _flow(status, segment)

    assert api.delete(f"/api/segments/{segment.pk}").status_code == 204


def test_it_names_every_reason_at_once(api, segment):
    _campaign("scheduled", segment=segment)
    _flow("active", segment)

    detail = api.delete(f"/api/segments/{segment.pk}").json()["detail"]

    assert "scheduled newsletter" in detail and "active welcome" in detail


def test_it_counts_only_this_tenants_campaigns(api, api_b, segment, other_tenant):
    with schema_context(other_tenant.schema_name):
        theirs = Segment.objects.create(name="VIPs", kind="dynamic", rules=VIP_RULES)
        Campaign.objects.create(
            name="theirs",
            subject="Hi",
            html_body="<p>Hi</p>",
            status="scheduled",
            scheduled_at=timezone.now() + timedelta(days=1),
            segment=theirs,
        )

    assert api.delete(f"/api/segments/{segment.pk}").status_code == 204
