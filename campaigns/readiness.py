"""Whether a campaign can be sent: the preflight every start and schedule runs, the admin's pre-send
checklist, and when a test copy of the campaign's current content last went out."""

import hashlib

from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.utils import timezone

from segments.services import segment_delete_refuse_while_used

from . import selectors, senders
from .messages import UNSUBSCRIBE_VAR_RE
from .rendering import validate_sources


def segment_delete_guard(*, segment):
    """A segment a scheduled campaign sends to (or excludes) stays: deleting it would leave the campaign
    to fail at its start time. Sending campaigns froze their audience already. (segments' DELETE_GUARDS)"""
    segment_delete_refuse_while_used(
        users=selectors.campaigns_scheduled_with_segment(segment),
        reason="Scheduled campaigns use this segment ({names}): unschedule them or change their segment first.",
    )


def scheduled_at_check(scheduled_at):
    """A schedule must lie in the future; raises ValidationError naming `scheduled_at`."""
    if scheduled_at <= timezone.now():
        raise ValidationError({"scheduled_at": ["must be in the future."]})


def campaign_preflight(*, campaign, count_audience=True, require_segment=True):
    """Everything that makes a campaign unsendable, as {field: [messages]}; raises ValidationError."""
    errors = {}
    if require_segment and campaign.segment_id is None:
        errors["segment"] = ["Choose a segment to send to."]
    content = selectors.campaign_content(campaign=campaign)
    if not content["html"].strip() and not content["text"].strip():
        errors["template"] = [
            "The campaign has no content: choose a template (a deleted one is gone) or write an HTML body."
        ]
    if not content["subject"].strip():
        errors["subject"] = ["The campaign has no subject."]
    sender = selectors.campaign_sender(campaign=campaign)
    try:
        validate_email(sender["from_email"])
    except ValidationError:
        errors["from_email"] = [f"'{sender['from_email']}' is not a valid sender address."]
    else:
        problem = senders.sender_problem(sender["from_email"])
        if problem and not campaign.from_email:
            problem = f"The account's default sender address (Settings) is refused. {problem}"
        if problem:
            errors["from_email"] = [problem]
    if not errors:
        try:
            validate_sources(subject=content["subject"], html_body=content["html"], text_body=content["text"])
        except ValidationError as exc:
            errors.update(exc.message_dict)
    if not errors and count_audience and selectors.audience_count(campaign=campaign) == 0:
        errors["segment"] = [
            "Nobody would receive this campaign: the segment has no customers with marketing consent "
            "and a deliverable address."
        ]
    if errors:
        raise ValidationError(errors)
    return content


TEST_SEND_MEMORY_SECONDS = 30 * 24 * 3600


def _test_send_key(campaign_id):
    return f"campaign-test-send:{campaign_id}"  # the cache prefixes the tenant's schema


def _content_digest(content):
    payload = "\x00".join(content.get(key) or "" for key in ("subject", "html", "text"))
    return hashlib.sha256(payload.encode()).hexdigest()


def campaign_last_test_set(*, campaign_id, content):
    """A test copy of `content` went out now (campaign_last_test reads it back)."""
    cache.set(
        _test_send_key(campaign_id),
        {"at": timezone.now().strftime("%Y-%m-%d %H:%M"), "digest": _content_digest(content)},
        TEST_SEND_MEMORY_SECONDS,
    )


def campaign_last_test(*, campaign):
    """When a test copy of the campaign's current content last went out, or None."""
    seen = cache.get(_test_send_key(campaign.pk))
    if not seen or seen.get("digest") != _content_digest(selectors.campaign_content(campaign=campaign)):
        return None
    return seen.get("at")


def campaign_checklist(*, campaign):
    """The pre-send checklist for the admin: [(label, ok, detail)]."""
    try:
        campaign_preflight(campaign=campaign, count_audience=False)
        problems = {}
    except ValidationError as exc:
        problems = exc.message_dict
    audience = selectors.audience_count(campaign=campaign) if campaign.segment_id else 0
    sender = selectors.campaign_sender(campaign=campaign)
    content = selectors.campaign_content(campaign=campaign)
    last_test = campaign_last_test(campaign=campaign)
    return [
        (
            "segment",
            "Segment chosen",
            "segment" not in problems,
            campaign.segment.name if campaign.segment_id else "",
        ),
        ("audience", "Audience not empty", audience > 0, f"{audience} recipients"),
        (
            "content",
            "Content present and valid",
            not ({"template", "html_body", "text_body"} & set(problems)),
            "",
        ),
        ("subject", "Subject present and valid", "subject" not in problems, ""),
        (
            "sender",
            "Sender address allowed (a verified domain or the platform address)",
            "from_email" not in problems,
            " ".join(problems["from_email"]) if "from_email" in problems else sender["from_email"],
        ),
        (
            "unsubscribe",
            "Unsubscribe link present",
            True,  # the composer adds a footer link where the content has none
            "in the content"
            if UNSUBSCRIBE_VAR_RE.search(content["html"] or "")
            else "added to the footer automatically",
        ),
        (
            "test",
            "Test copy sent",
            last_test is not None,
            f"last at {last_test} UTC" if last_test else "send yourself a test copy of this content first",
        ),
    ]
