"""The campaigns' periodic jobs, run by beat for the tenants with work (campaigns/tasks.py): start the
scheduled campaigns that are due, reclaim the leases of dead workers, resume stalled campaigns."""

from django.conf import settings
from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.utils import timezone

from . import selectors
from .leases import RECIPIENT_LEASES
from .lifecycle import (
    CampaignStateError,
    campaign_fail,
    campaign_finish_if_done,
    campaign_start,
    senders_enqueue,
)
from .models import Campaign


def campaigns_dispatch_due(*, now=None):
    """Start every scheduled campaign whose time has come (this tenant); one that cannot start fails
    with the reason. Returns the ids started."""
    started = []
    for campaign in selectors.campaigns_due(now=now):
        try:
            campaign_start(campaign=campaign)
            started.append(campaign.pk)
        except ValidationError as exc:
            reasons = "; ".join(f"{field}: {' '.join(msgs)}" for field, msgs in exc.message_dict.items())
            try:
                campaign_fail(campaign=campaign, reason=f"Could not start: {reasons}")
            except CampaignStateError:
                pass
        except CampaignStateError:
            continue  # someone else started, edited or cancelled it meanwhile
    return started


def leases_reclaim_expired(*, now=None):
    """Recover from dead workers: recipients whose lease expired go back to pending and their campaign
    gets fresh batch tasks, campaigns nobody works on are resumed (`campaigns_resume_stalled`),
    finished ones still marked sending become sent.

    Returns the ids of the campaigns it touched."""
    now = now or timezone.now()
    # Before the reclaim below: a campaign holding expired leases is not stalled yet, so no campaign
    # gets batch tasks from both.
    resumed = campaigns_resume_stalled(now=now)
    expired = list(selectors.campaigns_with_expired_leases(now=now).values_list("id", flat=True))
    if expired:
        # Under the share lock the sender takes: a campaign cancelled meanwhile gets its rows
        # cancelled, never pending again (nobody would ever pick them up). The rows lose their claim
        # token: whatever their worker still writes changes nothing.
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(
                f"SELECT id, status FROM {Campaign._meta.db_table} WHERE id = ANY(%s) ORDER BY id "
                "FOR KEY SHARE",
                [expired],
            )
            statuses = dict(cursor.fetchall())
            cancelled = [pk for pk, status in statuses.items() if status == "cancelled"]
            # Attempts were counted at claim time; a recipient that keeps killing workers fails eventually.
            RECIPIENT_LEASES.reclaim_expired(
                cursor, now=now, group_ids=[pk for pk in statuses if pk not in cancelled]
            )
            RECIPIENT_LEASES.reclaim_expired(cursor, now=now, group_ids=cancelled, status="cancelled")
    for campaign_id in Campaign.objects.filter(id__in=expired, status="sending").values_list("id", flat=True):
        senders_enqueue(campaign_id=campaign_id)
    finished = [
        campaign_id
        for campaign_id in selectors.campaigns_done_but_sending().values_list("id", flat=True)
        if campaign_finish_if_done(campaign_id=campaign_id)
    ]
    return sorted(set(resumed) | set(expired) | set(finished))


def campaigns_resume_stalled(*, now=None):
    """Fresh batch tasks for the sending campaigns nobody works on (`selectors.campaigns_stalled`,
    quiet for CAMPAIGN_STALL_SECONDS), e.g. after a Redis restart lost their queued task messages.

    Once per campaign until one of its batch tasks starts (`campaign_resume_arrived`): new tasks
    waiting behind a busy queue do not get more piled on them. Returns the ids it enqueued."""
    resumed = []
    stalled = selectors.campaigns_stalled(now=now, quiet_seconds=settings.CAMPAIGN_STALL_SECONDS)
    for campaign_id, started_at in stalled.values_list("id", "started_at"):
        if cache.get(_rate_wait_key(campaign_id, started_at)):
            continue  # its sender waits for a slot of the tenant's rate: busy, not stalled
        # The marker lives in Redis next to the task messages, so a restart that loses them loses it
        # too; otherwise it lapses like a lease. With Redis down `add` fails soft (False) and nothing
        # is enqueued: the broker is down as well.
        if cache.add(_resume_key(campaign_id, started_at), 1, timeout=settings.CAMPAIGN_LEASE_SECONDS):
            senders_enqueue(campaign_id=campaign_id)
            resumed.append(campaign_id)
    return resumed


def campaign_rate_wait_note(*, campaign, seconds):
    """A sender of the campaign waits `seconds` for a slot of its tenant's rate before it claims (the
    tenant's other campaigns use the rate): meanwhile it holds and sends nothing, yet the campaign is
    not stalled and gets no extra tasks (they would only reserve more slots and wait longer)."""
    cache.set(
        _rate_wait_key(campaign.pk, campaign.started_at),
        1,
        timeout=int(seconds) + settings.CAMPAIGN_STALL_SECONDS,
    )


def _rate_wait_key(campaign_id, started_at):
    return f"campaigns:rate-wait:{campaign_id}:{started_at.timestamp() if started_at else 0}"


def campaign_resume_arrived(*, campaign_id):
    """A batch task of the campaign started: a later stall may be resumed again."""
    started_at = Campaign.objects.filter(pk=campaign_id).values_list("started_at", flat=True).first()
    cache.delete(_resume_key(campaign_id, started_at))


def _resume_key(campaign_id, started_at):
    # started_at too: a recreated database (or tenant) numbers its campaigns from 1 again.
    return f"campaigns:resumed:{campaign_id}:{started_at.timestamp() if started_at else 0}"
