"""Writes of the campaigns app: templates, campaigns and every change of a campaign's state."""

import hashlib
import logging
from dataclasses import replace

from django.conf import settings
from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import connection, transaction
from django.utils import timezone

from events.services import event_emit
from tenancy.work import work_mark

from . import abtests, hooks, selectors, senders, transactional
from .design import design_compile, design_parse
from .leases import LeasedTable
from .messages import UNSUBSCRIBE_VAR_RE, trackable_urls
from .models import Campaign, CampaignLink, CampaignRecipient, EmailTemplate
from .product_cards import ProductCards
from .rendering import customer_context, sample_context, validate_sources

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
# The recipients are claimed, renewed and reclaimed under leases (campaigns/leases.py).
RECIPIENT_LEASES = LeasedTable(table=CampaignRecipient._meta.db_table, group="campaign_id")
EDITABLE_STATUSES = ("draft", "scheduled")
START_FROM = ("draft", "scheduled")
TEST_SEND_MAX = 10

# Periodic work of this app (tenancy/work.py): beat visits only the tenants with a marker. A scheduled
# campaign marks its start time; a campaign that starts or resumes sending marks the stall check and
# the lease reclaimer, which re-arm themselves while the tenant has campaigns sending; every claim of
# recipients marks the reclaimer for when its lease could run out (sender.Store.claim).
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
    _work_mark(campaign=campaign)
    return campaign


def _work_mark(*, campaign):
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


# --- templates ---------------------------------------------------------------------------------------


def template_validate(*, kind, key, subject, html_body, text_body, instance=None):
    errors = {}
    if kind == "transactional":
        if not key:
            errors["key"] = ["A transactional template needs a key (order_confirmation or order_shipped)."]
        elif (
            EmailTemplate.objects.filter(kind="transactional", key=key)
            .exclude(pk=getattr(instance, "pk", None))
            .exists()
        ):
            errors["key"] = [f"There is already a transactional template for '{key}'."]
    elif key:
        errors["key"] = ["Only transactional templates have a key."]
    if not (subject or "").strip():
        errors["subject"] = ["A template needs a subject."]
    try:
        validate_sources(subject=subject or "", html_body=html_body or "", text_body=text_body or "")
    except ValidationError as exc:
        for field, messages in exc.message_dict.items():
            errors.setdefault(field, []).extend(messages)
    if not (html_body or "").strip() and not (text_body or "").strip():
        errors.setdefault("html_body", []).append("A template needs an HTML or a text body.")
    if errors:
        raise ValidationError(errors)


def design_apply(values):
    """When `values` hold a design (the block editor's JSON, as text or a dict), compile it: its HTML
    and text replace `html_body` and `text_body`. No design (None, "") means a raw HTML template.
    Returns the compiler's warnings (e.g. products not shown); raises ValidationError on `design`."""
    design = values.get("design")
    if not isinstance(design, dict):
        design = design_parse(design)
    if not design:
        values["design"] = None
        return []
    compiled = design_compile(design)
    values.update(design=design, html_body=compiled["html"], text_body=compiled["text"])
    return compiled["warnings"]


def template_create(*, name, subject, html_body="", text_body="", kind="marketing", key=None, design=None):
    key = key or None
    values = {"design": design, "html_body": html_body, "text_body": text_body}
    design_apply(values)
    html_body, text_body = values["html_body"], values["text_body"]
    template_validate(kind=kind, key=key, subject=subject, html_body=html_body, text_body=text_body)
    return EmailTemplate.objects.create(
        name=name,
        subject=subject,
        html_body=html_body,
        text_body=text_body,
        kind=kind,
        key=key,
        design=values["design"],
    )


def template_update(*, template, **changes):
    values = {
        field: changes.get(field, getattr(template, field))
        for field in ("name", "subject", "html_body", "text_body", "kind", "key", "design")
    }
    values["key"] = values["key"] or None
    design_apply(values)
    template_validate(
        kind=values["kind"],
        key=values["key"],
        subject=values["subject"],
        html_body=values["html_body"],
        text_body=values["text_body"],
        instance=template,
    )
    for field, value in values.items():
        setattr(template, field, value)
    template.save()
    for campaign in Campaign.objects.filter(template=template, status__in=EDITABLE_STATUSES):
        if campaign_classify(campaign=campaign):
            campaign.save(update_fields=["intent", "intent_confidence", "updated_at"])
    return template


def template_test_send(*, template, emails):
    """A test copy of a template (no campaign, no segment needed), as campaign_test_send sends it."""
    campaign = Campaign(name=template.name, template=template, track_opens=False, track_clicks=False)
    return campaign_test_send(campaign=campaign, emails=emails)


def template_delete(*, template):
    """Campaigns that used it keep their frozen content; drafts lose their content and must pick another."""
    template.delete()


def preview_links(*, customer_id=None):
    """Links for a preview: real-looking, but they name no recipient."""
    from .tokens import preferences_url, tenant_base_url

    base = tenant_base_url()
    return {
        "unsubscribe_url": f"{base}/u/preview",
        "web_version_url": f"{base}/v/preview",
        "preferences_url": preferences_url(base, customer_id) if customer_id else f"{base}/p/preview",
    }


def template_preview(*, subject, html_body, text_body, customer=None, campaign_name="", kind="marketing"):
    """Rendered subject, html, text of a template against a customer (or sample values); a
    transactional one as an order email goes out (an order, the preference centre, no unsubscribe)."""
    from .rendering import render_message

    if kind == "transactional":
        rendered = render_message(
            subject=subject,
            html=html_body,
            text=text_body,
            context=transactional.transactional_preview_context(customer=customer),
        )
        return replace(rendered, html=transactional.without_empty_links(rendered.html))
    # Product cards as they would go out now: current product data, the customer's last bought.
    cards = ProductCards(html_source=html_body, text_source=text_body)
    context = {
        "customer": customer_context(customer) if customer is not None else sample_context(),
        "campaign": {"name": campaign_name},
        "products": cards.context(getattr(customer, "pk", None) or 0),
        **preview_links(customer_id=getattr(customer, "pk", None)),
    }
    return render_message(subject=subject, html=cards.html, text=cards.text, context=context)


def design_preview(*, design, subject="", customer=None, campaign_name=""):
    """A design compiled (html, text, warnings) and rendered for a customer or sample values (rendered:
    a Rendered), for the editor's preview; raises ValidationError naming the design's problem."""
    compiled = design_compile(design if isinstance(design, dict) else design_parse(design) or {})
    rendered = template_preview(
        subject=subject or "(no subject)",
        html_body=compiled["html"],
        text_body=compiled["text"],
        customer=customer,
        campaign_name=campaign_name,
    )
    return compiled, rendered


def design_test_send(*, design, subject, emails, name=""):
    """A test copy of a design as it is in the editor (saved or not), as template_test_send sends one."""
    compiled = design_compile(design if isinstance(design, dict) else design_parse(design) or {})
    if not (subject or "").strip():
        raise ValidationError({"subject": ["A test copy needs a subject."]})
    template = EmailTemplate(
        name=name or "Design", subject=subject, html_body=compiled["html"], text_body=compiled["text"]
    )
    return template_test_send(template=template, emails=emails)


# --- campaigns: content ------------------------------------------------------------------------------


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


CONTENT_FIELDS = ("subject", "template", "html_body", "text_body")


def campaign_classify(*, campaign):
    """Set the campaign's intent from its content (the classifier plugged into campaigns.hooks);
    True when it changed. The caller saves."""
    content = selectors.campaign_content(campaign=campaign)
    intent, confidence = hooks.classify(
        subject=content["subject"], html=content["html"], text=content["text"]
    )
    changed = (intent, confidence) != (campaign.intent, campaign.intent_confidence)
    campaign.intent, campaign.intent_confidence = intent, confidence
    return changed


def campaign_create(*, name, scheduled_at=None, **fields):
    """A draft. Tracking follows the tenant's settings unless the caller says otherwise."""
    values = {key: value for key, value in fields.items() if key in CAMPAIGN_FIELDS}
    if "design" in values:
        design_apply(values)
    for flag in ("track_opens", "track_clicks"):
        values.setdefault(flag, getattr(connection.tenant, flag, True))
    campaign = Campaign(name=name, **values)
    if scheduled_at is not None:
        _check_future(scheduled_at)
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
                _check_future(scheduled_at)
            campaign.scheduled_at = scheduled_at
        campaign.save()
        if campaign.status == "scheduled" and campaign.scheduled_at is None:
            campaign_transition(campaign=campaign, to="draft")
        elif campaign.status == "scheduled":
            _preflight(campaign=campaign)
            _work_mark(campaign=campaign)
    return campaign


def _check_future(scheduled_at):
    if scheduled_at <= timezone.now():
        raise ValidationError({"scheduled_at": ["must be in the future."]})


def _preflight(*, campaign, count_audience=True, require_segment=True):
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


def campaign_last_test(*, campaign):
    """When a test copy of the campaign's current content last went out, or None."""
    seen = cache.get(_test_send_key(campaign.pk))
    if not seen or seen.get("digest") != _content_digest(selectors.campaign_content(campaign=campaign)):
        return None
    return seen.get("at")


def campaign_checklist(*, campaign):
    """The pre-send checklist for the admin: [(label, ok, detail)]."""
    try:
        _preflight(campaign=campaign, count_audience=False)
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


# --- campaigns: sending ------------------------------------------------------------------------------


def campaign_schedule(*, campaign, scheduled_at):
    """Schedule a draft for `scheduled_at` (in the future); beat starts it when it is due."""
    with transaction.atomic():
        campaign = Campaign.objects.select_for_update().get(pk=campaign.pk)
        _require(campaign, "scheduled")
        _check_future(scheduled_at)
        _preflight(campaign=campaign)
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
        content = _preflight(campaign=campaign, count_audience=False)
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
    from .tasks import send_campaign_batches  # tasks import this module

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


def campaign_summary_save(*, campaign_id, summary, source):
    """Store the marketers' summary of a campaign's results (written by assist); not a state change."""
    return Campaign.objects.filter(pk=campaign_id).update(
        summary=summary, summary_source=source, summary_at=timezone.now()
    )


def campaign_fail(*, campaign, reason):
    with transaction.atomic():
        campaign = Campaign.objects.select_for_update().get(pk=campaign.pk)
        return campaign_transition(campaign=campaign, to="failed", error=reason[:2000])


def campaigns_start_due(*, now=None):
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


def leases_reclaim(*, now=None):
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


def campaign_test_send(*, campaign, emails, variant=None):
    """Send a test copy to up to TEST_SEND_MAX addresses: marked [Test], no recipient rows, no tracking.
    `variant`: an A/B campaign's variant key (marked [Test B]), or "all" for a copy of each.

    Returns [{"email", "sent", "error"}], with "variant" for a variant's copy."""
    from .mail import delivery_error, mail_connection
    from .messages import CampaignComposer

    errors = {}
    if not isinstance(emails, list | tuple) or not emails:
        errors["emails"] = ["Give a list of 1 to 10 email addresses."]
    elif len(emails) > TEST_SEND_MAX:
        errors["emails"] = [f"At most {TEST_SEND_MAX} addresses."]
    else:
        bad = []
        for email in emails:
            try:
                validate_email(email)
            except (ValidationError, TypeError):
                bad.append(f"'{email}' is not a valid email address.")
        if bad:
            errors["emails"] = bad
    try:
        abtests.test_send_variants(campaign=campaign, variant=variant)
    except ValidationError as exc:
        errors.update(exc.message_dict)
    if errors:
        raise ValidationError(errors)
    content = _preflight(campaign=campaign, count_audience=False, require_segment=False)
    from .tokens import tenant_base_url

    base_url = tenant_base_url()
    composers = [
        (
            key,
            CampaignComposer(
                campaign=campaign, content=copy, sender=sender, base_url=base_url, test=True, variant=key
            ),
        )
        for key, copy, sender in abtests.test_send_contents(
            campaign=campaign,
            variant=variant,
            content=content,
            sender=selectors.campaign_sender(campaign=campaign),
        )
    ]
    from customers.models import Customer

    results = []
    mail = mail_connection()
    try:
        for email in emails:
            address = email.strip().lower()
            customer = Customer.objects.filter(email=address).first()
            for key, composer in composers:
                message, _ = composer.compose(
                    recipient_id=0,
                    email=address,
                    customer_id=customer.pk if customer else 0,
                    customer=customer_context(customer) if customer else sample_context(),
                )
                named = {"email": address, **({"variant": key} if key else {})}
                try:
                    mail.send_messages([message])
                    results.append({**named, "sent": True, "error": ""})
                except Exception as exc:  # reported per address; a test send never changes state
                    results.append({**named, "sent": False, "error": delivery_error(exc).reason})
    finally:
        try:
            mail.close()
        except Exception:
            pass
    if campaign.pk and any(result["sent"] for result in results):
        cache.set(
            _test_send_key(campaign.pk),
            {"at": timezone.now().strftime("%Y-%m-%d %H:%M"), "digest": _content_digest(content)},
            TEST_SEND_MEMORY_SECONDS,
        )
    return results
