"""The campaign state machine: campaign_transition() owns every change of a campaign's state, against
ALLOWED_TRANSITIONS; the actions (schedule, start, pause, resume, cancel, finish, fail) go through it,
each in one transaction with what the change brings (the audience frozen, the senders enqueued, the
recipients left cancelled, the events published, the periodic work marked)."""

import logging

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.utils import timezone

from events.services import event_emit
from tenancy.work import work_mark

from . import abtests, hooks, selectors
from .messages import trackable_urls
from .models import Campaign, CampaignLink, CampaignRecipient
from .readiness import campaign_preflight, scheduled_at_check

logger = logging.getLogger(__name__)

# Every state change of a campaign goes through campaign_transition(), against this table.
ALLOWED_TRANSITIONS = {
    "draft": {"scheduled", "sending", "cancelled"},
    "scheduled": {"draft", "sending", "cancelled", "failed"},
    "sending": {"paused", "sent", "cancelled", "failed"},
    # A campaign paused after its last batch went out is finished, not stuck.
    "paused": {"sending", "sent", "cancelled"},
    "sent": set(),
    "cancelled": set(),
    "failed": set(),
}
EDITABLE_STATUSES = ("draft", "scheduled")
START_FROM = ("draft", "scheduled")

# Periodic work of this app (tenancy/work.py): beat visits only the tenants with a marker. A scheduled
# campaign marks its start time; a campaign that starts or resumes sending marks the stall check and
# the lease reclaimer, which re-arm themselves while the tenant has campaigns sending; every claim of
# recipients marks the reclaimer for when its lease could run out (sender.Store.claim). The jobs
# themselves are in jobs.py.
DISPATCH_WORK = "campaigns.dispatch"
STALL_WORK = "campaigns.stalled"
LEASES_WORK = "campaigns.leases"
AB_WORK = "campaigns.ab_tests"


class CampaignStateError(Exception):
    """The campaign's state does not allow the change (the API answers 409, the admin shows it)."""


# How a refusal names the change, e.g. "A campaign that is sent cannot be sent."
VERBS = {
    "draft": "taken back to draft",
    "scheduled": "scheduled",
    "sending": "sent or resumed",
    "paused": "paused",
    "sent": "marked sent",
    "cancelled": "cancelled",
    "failed": "marked failed",
}


def _check_transition(current, to, only_from=None):
    if to not in ALLOWED_TRANSITIONS.get(current, set()) or (only_from and current not in only_from):
        raise CampaignStateError(f"A campaign that is {current} cannot be {VERBS[to]}.")


def campaign_transition(*, campaign, to, only_from=None, **fields):
    """Move `campaign` to state `to`, atomically, only from the state it was read in.

    The UPDATE is conditional on that state, so of two concurrent callers exactly one wins; the other
    gets CampaignStateError (a double /send is a 409, not a double send). `only_from` narrows the
    table for an action (resume leads to sending only from paused); `fields` are saved with it.
    """
    current = campaign.status
    _check_transition(current, to, only_from)
    now = timezone.now()
    changed = Campaign.objects.filter(pk=campaign.pk, status=current).update(
        status=to, updated_at=now, **fields
    )
    if changed != 1:
        actual = Campaign.objects.filter(pk=campaign.pk).values_list("status", flat=True).first()
        raise CampaignStateError(
            f"The campaign changed meanwhile: it is {actual} now and cannot become {to}."
        )
    campaign.status = to
    campaign.updated_at = now
    for name, value in fields.items():
        setattr(campaign, name, value)
    logger.info("campaign %s: %s -> %s", campaign.pk, current, to)
    campaign_work_mark(campaign=campaign)
    return campaign


def campaign_work_mark(*, campaign):
    """The markers the campaign's new state needs, in the transaction of the change (tenancy/work.py)."""
    if campaign.status == "scheduled" and campaign.scheduled_at is not None:
        work_mark(DISPATCH_WORK, due_at=campaign.scheduled_at)
    elif campaign.status == "sending":
        # Due at once: the next ticks look at the tenant and re-arm while it sends (the quiet window
        # and the lease are the workers' settings, which this process need not share).
        work_mark(STALL_WORK)
        work_mark(LEASES_WORK)
        if campaign.ab_test:
            work_mark(AB_WORK)


def campaign_schedule(*, campaign, scheduled_at):
    """Schedule a draft for `scheduled_at` (in the future); beat starts it when it is due."""
    with transaction.atomic():
        campaign = Campaign.objects.select_for_update().get(pk=campaign.pk)
        _require(campaign, "scheduled")
        scheduled_at_check(scheduled_at)
        campaign_preflight(campaign=campaign)
        campaign_transition(campaign=campaign, to="scheduled", scheduled_at=scheduled_at, error="")
    return campaign


def campaign_send_now(*, campaign):
    """Start sending now: freeze the audience and hand the work to the batch workers (after commit)."""
    return campaign_start(campaign=campaign)


def _require(campaign, to, only_from=None):
    _check_transition(campaign.status, to, only_from)


def campaign_start(*, campaign, enqueue=True):
    """draft/scheduled -> sending: snapshot the content, freeze the audience, enqueue the senders.

    All in one transaction: when anything is wrong (no segment, empty audience, broken content) it
    raises and nothing was written.
    """
    with transaction.atomic():
        campaign = Campaign.objects.select_for_update().get(pk=campaign.pk)
        _require(campaign, "sending", only_from=START_FROM)
        content = campaign_preflight(campaign=campaign, count_audience=False)
        # The content is frozen into the campaign: editing or deleting the template later changes nothing.
        campaign_transition(
            campaign=campaign,
            to="sending",
            only_from=START_FROM,
            started_at=timezone.now(),
            subject=content["subject"],
            html_body=content["html"],
            text_body=content["text"],
            error="",
        )
        count = audience_freeze(campaign=campaign)
        if count == 0:
            raise ValidationError(
                {
                    "segment": [
                        "Nobody would receive this campaign: the segment has no customers with marketing "
                        "consent and a deliverable address."
                    ]
                }
            )
        if campaign.variants:
            abtests.ab_sample_assign(campaign=campaign)
        links_ensure(campaign=campaign)
        if enqueue:  # `manage.py send_campaign` sends in-process instead
            senders_enqueue(campaign_id=campaign.pk)
    return campaign


def audience_freeze(*, campaign):
    """One INSERT ... SELECT of the campaign's audience into campaign_recipients; returns the rows added.

    ON CONFLICT makes it idempotent: one message per address, however often it runs.
    """
    select_sql, params = (
        selectors.audience_queryset(campaign=campaign)
        .order_by()
        .values_list("id", "email")
        .query.sql_with_params()
    )
    table = CampaignRecipient._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            INSERT INTO {table} (campaign_id, customer_id, email, status, message_id, attempts, error)
            SELECT %s, audience.id, audience.email, 'pending', '', 0, ''
            FROM ({select_sql}) AS audience (id, email)
            ON CONFLICT (campaign_id, email) DO NOTHING
            """,
            [campaign.pk, *params],
        )
        return cursor.rowcount


def links_ensure(*, campaign):
    """One CampaignLink per distinct trackable URL of the campaign's HTML (click tokens name these ids)."""
    urls = [url for html in abtests.campaign_html_sources(campaign=campaign) for url in trackable_urls(html)]
    CampaignLink.objects.bulk_create(
        [CampaignLink(campaign=campaign, url=url) for url in urls], ignore_conflicts=True
    )
    return selectors.campaign_links(campaign_id=campaign.pk)


def senders_enqueue(*, campaign_id, countdown=0):
    """Start CAMPAIGN_SEND_CONCURRENCY batch tasks for a campaign once the transaction commits."""
    from .tasks import send_campaign_batches  # noqa: PLC0415  (campaigns.tasks imports this module)

    def enqueue():
        for _ in range(max(1, settings.CAMPAIGN_SEND_CONCURRENCY)):
            send_campaign_batches.apply_async((campaign_id,), countdown=countdown)

    transaction.on_commit(enqueue)


def campaign_pause(*, campaign):
    """Stops after the batches in flight; nothing already claimed is lost."""
    with transaction.atomic():
        campaign = Campaign.objects.select_for_update().get(pk=campaign.pk)
        return campaign_transition(campaign=campaign, to="paused")


def campaign_resume(*, campaign):
    with transaction.atomic():
        campaign = Campaign.objects.select_for_update().get(pk=campaign.pk)
        campaign_transition(campaign=campaign, to="sending", only_from=("paused",))
        senders_enqueue(campaign_id=campaign.pk)
    return campaign


def campaign_cancel(*, campaign):
    """Nobody else receives it: in the same transaction as the state change, the recipients still
    pending become `cancelled`, and `campaign.cancelled` is published with the counts.

    Rows a worker holds (`sending`) are a batch in flight and stay its own: the worker records what
    really happened to each (sent, failed) and what it did not send becomes cancelled too
    (sender.Store takes a share lock on the campaign to claim or record, so no claim slips in
    between this transition and the update below)."""
    with transaction.atomic():
        campaign = Campaign.objects.select_for_update().get(pk=campaign.pk)
        campaign_transition(campaign=campaign, to="cancelled")
        CampaignRecipient.objects.filter(campaign_id=campaign.pk, status__in=("pending", "held")).update(
            status="cancelled", lease_until=None
        )
        progress = selectors.campaign_progress(campaign=campaign)
        left_us = ("sent", "delivered", "bounced", "complained")
        event_emit(
            type="campaign.cancelled",
            data={
                "id": campaign.pk,
                "name": campaign.name,
                "recipients": progress["total"],
                "sent": sum(progress[status] for status in left_us),
                "failed": progress["failed"],
                "cancelled": progress["cancelled"],
                "in_flight": progress["sending"],
            },
        )
    return campaign


def campaign_finish_if_done(*, campaign_id):
    """sending/paused -> sent when no recipient is pending or in flight; publishes campaign.sent once."""
    with transaction.atomic():
        campaign = Campaign.objects.select_for_update().filter(pk=campaign_id).first()
        if campaign is None or campaign.status not in ("sending", "paused"):
            return False
        pending, sending, _ = selectors.campaign_work_left(campaign_id=campaign_id)
        if pending or sending:
            return False
        if campaign.variants and not campaign.ab_winner:
            return False  # the A/B test's sample is done; the rest waits for the winner
        campaign_transition(campaign=campaign, to="sent", sent_at=timezone.now())
        counts = selectors.campaign_final_counts(campaign=campaign)
        event_emit(type="campaign.sent", data={"id": campaign.pk, "name": campaign.name, **counts})
        hooks.run_in_transaction(hooks.campaign_sent, campaign_id=campaign.pk)
    return True


def campaign_fail(*, campaign, reason):
    with transaction.atomic():
        campaign = Campaign.objects.select_for_update().get(pk=campaign.pk)
        return campaign_transition(campaign=campaign, to="failed", error=reason[:2000])
