"""ESP delivery events: delivered, bounced, complained, rejected, unsubscribed, applied to recipients."""

import re
from collections import Counter
from dataclasses import dataclass, field

from django.db import transaction
from django.utils import timezone

from campaigns.models import CampaignRecipient, recipient_email_erased
from campaigns.privacy import suppression_add
from customers.models import Customer
from customers.services import interaction_add

from .preferences import recipient_unsubscribe

DELIVERED, BOUNCED, SOFT_BOUNCED, COMPLAINED, REJECTED, UNSUBSCRIBED = (
    "delivered",
    "bounced",
    "soft_bounced",
    "complained",
    "rejected",
    "unsubscribed",
)
# From which recipient states each outcome may move a recipient (never back from a final bad one).
_FROM_STATES = {
    DELIVERED: ("pending", "sending", "sent"),
    BOUNCED: ("pending", "sending", "sent", "delivered"),
    SOFT_BOUNCED: ("pending", "sending", "sent"),
    COMPLAINED: ("pending", "sending", "sent", "delivered"),
    REJECTED: ("pending", "sending", "sent"),
}
_STATUS_FOR = {
    DELIVERED: "delivered",
    BOUNCED: "bounced",
    SOFT_BOUNCED: "bounced",
    COMPLAINED: "complained",
    REJECTED: "failed",
}
_SUPPRESSION_FOR = {BOUNCED: "hard_bounce", COMPLAINED: "complaint"}


@dataclass
class DeliveryOutcome:
    recipient_id: int | None = None
    status_changed: bool = False
    suppressed: bool = False
    counted: Counter = field(default_factory=Counter)


# campaigns.messages.message_id: "<c{campaign}.r{recipient}.{digest}@domain>"; reading the ids out of it
# finds the row by primary key, where a search by message_id alone would scan the table.
_OUR_MESSAGE_ID_RE = re.compile(r"^c(\d{1,18})\.r(\d{1,18})\.[0-9a-f]+@")


def _recipient_for(*, recipient_id=None, message_id=None, email=None):
    recipient = _recipient_matching(recipient_id=recipient_id, message_id=message_id, email=email)
    if recipient is None and email:
        # An erased customer's recipient no longer has the address the ESP names.
        recipient = _recipient_matching(recipient_id=recipient_id, message_id=message_id)
        if recipient is not None and not recipient_email_erased(recipient.email):
            return None
    return recipient


def _recipient_matching(*, recipient_id=None, message_id=None, email=None):
    queryset = CampaignRecipient.objects.all()
    if email:
        queryset = queryset.filter(email=email)
    if recipient_id:
        return queryset.filter(pk=recipient_id).first()
    bare = (message_id or "").strip().strip("<>")
    if not bare:
        return None
    candidates = [bare, f"<{bare}>"]
    ours = _OUR_MESSAGE_ID_RE.match(bare)
    if ours:
        campaign_id, recipient_id = map(int, ours.groups())
        return queryset.filter(pk=recipient_id, campaign_id=campaign_id, message_id__in=candidates).first()
    return queryset.filter(message_id__in=candidates).order_by("-id").first()


@transaction.atomic
def delivery_event_apply(
    *, outcome, email=None, message_id=None, recipient_id=None, occurred_at=None, detail=""
):
    """Apply one ESP delivery outcome (delivered, bounced, soft_bounced, complained, rejected,
    unsubscribed) to the recipient it concerns; a hard bounce or complaint suppresses the address
    whether or not the message was a campaign's. Safe to apply twice (ESPs retry webhooks)."""
    now = timezone.now()
    at = occurred_at or now
    email = (email or "").strip().lower() or None
    result = DeliveryOutcome()
    recipient = _recipient_for(recipient_id=recipient_id, message_id=message_id, email=email)
    erased = recipient is not None and recipient_email_erased(recipient.email)
    if recipient is not None:
        result.recipient_id = recipient.pk
        email = email or (None if erased else recipient.email)
    # After an erasure (GDPR) the outcome still counts, but nothing of the person is stored: no
    # server reply (it quotes the address), no interaction, a suppression by the address's hash only.
    detail = "" if erased else (detail or "")[:2000]

    if recipient is not None and outcome in _FROM_STATES:
        updates = {"status": _STATUS_FOR[outcome]}
        if outcome == DELIVERED:
            updates["delivered_at"] = at
        else:
            updates["error"] = f"{outcome.replace('_', ' ')}: {detail}".strip().rstrip(":")
        result.status_changed = bool(
            CampaignRecipient.objects.filter(pk=recipient.pk, status__in=_FROM_STATES[outcome]).update(
                **updates
            )
        )
        if result.status_changed and outcome != DELIVERED and not erased:
            kind = "email_complained" if outcome == COMPLAINED else "email_bounced"
            interaction_add(
                customer=Customer(pk=recipient.customer_id),
                kind=kind,
                body={
                    BOUNCED: "Email bounced (hard).",
                    SOFT_BOUNCED: "Email bounced (soft).",
                    REJECTED: "Email rejected by the sending service.",
                    COMPLAINED: "Marked the email as spam.",
                }[outcome],
                data={
                    "campaign_id": recipient.campaign_id,
                    "recipient_id": recipient.pk,
                    "outcome": outcome,
                    "detail": detail,
                },
                occurred_at=at,
            )

    reason = _SUPPRESSION_FOR.get(outcome)
    if reason and email:
        result.suppressed = suppression_add(email=email, reason=reason, detail=detail)
    if outcome == UNSUBSCRIBED and recipient is not None and not erased:
        recipient_unsubscribe(recipient=recipient, source="esp")
    return result
