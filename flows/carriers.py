"""Carrier campaigns: one per email step, flow version and entry round.

A flow email is a recipient row of its carrier, so the campaign machinery serves flows unchanged:
claims, leases and the reclaimer (exactly once), tracking tokens and hits (opens and clicks per
step), unsubscribe links, delivery webhooks, and later revenue attribution. The carrier's content is
the step's template as it was when that version first sent; its status is `sent` from the start, so
no campaign state machine, scheduler or stall check ever acts on it. A customer who walks the flow
again gets the next round's carrier (one message per address and campaign stays true)."""

from django.db import IntegrityError, transaction
from django.utils import timezone

from campaigns.lifecycle import links_ensure
from campaigns.models import Campaign, EmailTemplate

from .models import FlowCarrier

CARRIER_STATUS = "sent"


def carrier_campaign(*, flow, key):
    """The carrier campaign id of `key` = (flow id, version, step id, round), made on first use;
    None when the step's template is gone."""
    _, version, step_id, round_ = key
    found = FlowCarrier.objects.filter(flow=flow, version=version, step_id=step_id, round=round_).values_list(
        "campaign_id", flat=True
    )
    if found:
        return found[0]
    step = next((s for s in flow.steps if s.get("id") == step_id), None)
    template = EmailTemplate.objects.filter(pk=(step or {}).get("template")).first()
    if template is None:
        return None
    now = timezone.now()
    try:
        with transaction.atomic():
            campaign = Campaign.objects.create(
                name=f"Flow: {flow.name} · {step_id}"[:200],
                subject=step.get("subject") or template.subject,
                template=template,
                html_body=template.html_body,
                text_body=template.text_body,
                from_email=flow.from_email,
                from_name=flow.from_name,
                status=CARRIER_STATUS,
                started_at=now,
                sent_at=now,
            )
            links_ensure(campaign=campaign)
            FlowCarrier.objects.create(
                flow=flow, version=version, step_id=step_id, round=round_, campaign=campaign
            )
    except IntegrityError:  # another dispatcher made it meanwhile (it committed: we waited for it)
        return FlowCarrier.objects.values_list("campaign_id", flat=True).get(
            flow=flow, version=version, step_id=step_id, round=round_
        )
    return campaign.pk
