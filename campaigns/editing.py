"""Creating and editing campaigns: a draft, or a scheduled campaign (editing one reschedules it or takes
it back to draft); the fields and their checks."""

from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import connection, transaction
from django.utils import timezone

from . import abtests, selectors, senders
from .content import campaign_classify, design_apply
from .lifecycle import EDITABLE_STATUSES, CampaignStateError, campaign_transition, campaign_work_mark
from .models import Campaign
from .readiness import campaign_preflight, scheduled_at_check
from .rendering import validate_sources


def campaign_validate(*, campaign, check_sender=True):
    """Everything wrong with a campaign's fields, as ValidationError({field: [messages]}).

    `check_sender`: whether `from_email` must be one this tenant may send from (PRODUCT.md "Sender
    identity"); edits that leave the sender alone skip it, so a draft saved before sender domains
    existed stays editable (its sender is refused when it is sent, with how to fix it)."""
    errors = {}
    if campaign.template_id and campaign.template.kind != "marketing":
        errors["template"] = ["A campaign uses a marketing template, not a transactional one."]
    try:
        validate_sources(subject=campaign.subject, html_body=campaign.html_body, text_body=campaign.text_body)
    except ValidationError as exc:
        errors.update(exc.message_dict)
    for field in ("from_email", "reply_to"):
        value = getattr(campaign, field)
        if value:
            try:
                validate_email(value)
            except ValidationError:
                errors[field] = [f"'{value}' is not a valid email address."]
    try:
        campaign.variants, campaign.ab_test = abtests.ab_validate(
            variants=campaign.variants, ab_test=campaign.ab_test
        )
    except ValidationError as exc:
        errors.update(exc.message_dict)
    if check_sender and campaign.from_email and "from_email" not in errors:
        problem = senders.sender_problem(campaign.from_email)
        if problem:
            errors["from_email"] = [problem]
    if errors:
        raise ValidationError(errors)


CAMPAIGN_FIELDS = (
    "name",
    "subject",
    "template",
    "html_body",
    "text_body",
    "segment",
    "exclude_segment",
    "from_email",
    "from_name",
    "reply_to",
    "track_opens",
    "track_clicks",
    "design",
    "variants",
    "ab_test",
)


def campaign_create(*, name, scheduled_at=None, **fields):
    """A draft. Tracking follows the tenant's settings unless the caller says otherwise."""
    values = {key: value for key, value in fields.items() if key in CAMPAIGN_FIELDS}
    if "design" in values:
        design_apply(values)
    for flag in ("track_opens", "track_clicks"):
        values.setdefault(flag, getattr(connection.tenant, flag, True))
    campaign = Campaign(name=name, **values)
    if scheduled_at is not None:
        scheduled_at_check(scheduled_at)
        campaign.scheduled_at = scheduled_at
    campaign_validate(campaign=campaign)
    campaign_classify(campaign=campaign)
    campaign.save()
    return campaign


def campaign_update(*, campaign, **changes):
    """Edit a draft or scheduled campaign. On a scheduled one, a new `scheduled_at` reschedules it
    and `scheduled_at=None` takes it back to draft."""
    with transaction.atomic():
        campaign = Campaign.objects.select_for_update().get(pk=campaign.pk)
        if campaign.status not in EDITABLE_STATUSES:
            raise CampaignStateError(f"A campaign that is {campaign.status} cannot be edited.")
        sender_before = campaign.from_email
        content_before = selectors.campaign_content(campaign=campaign)
        changes = dict(changes)
        if "design" in changes:
            design_apply(changes)
        for key, value in changes.items():
            if key in CAMPAIGN_FIELDS:
                setattr(campaign, key, value)
        campaign_validate(campaign=campaign, check_sender=campaign.from_email != sender_before)
        if selectors.campaign_content(campaign=campaign) != content_before:
            campaign_classify(campaign=campaign)
        if "scheduled_at" in changes:
            scheduled_at = changes["scheduled_at"]
            if scheduled_at is not None:
                scheduled_at_check(scheduled_at)
            campaign.scheduled_at = scheduled_at
        campaign.save()
        if campaign.status == "scheduled" and campaign.scheduled_at is None:
            campaign_transition(campaign=campaign, to="draft")
        elif campaign.status == "scheduled":
            campaign_preflight(campaign=campaign)
            campaign_work_mark(campaign=campaign)
    return campaign


def campaign_summary_save(*, campaign_id, summary, source):
    """Store the marketers' summary of a campaign's results (written by assist); not a state change."""
    return Campaign.objects.filter(pk=campaign_id).update(
        summary=summary, summary_source=source, summary_at=timezone.now()
    )
