"""The sending engine: claim a batch, render it, send it over one connection, record the results.

Small and separate (listmonk's shape): it talks to the database only through `Store` and to the mail
transport through `Messenger`, and keeps its progress in the database, so any worker can pick up
where another stopped. The promises it keeps, and how:

- exactly once, however long a batch takes: a recipient is claimed by one worker at a time, under a
  claim token and a lease (campaigns/leases.py); the lease is renewed before each message while the
  worker lives, every write of the batch's outcome matches the token, and the reclaimer takes only
  the rows of a worker that stopped renewing. Only a worker that dies (or stands still for longer
  than its lease) between the SMTP hand-off and recording the batch leaves rows that are sent again,
  carrying the same deterministic Message-ID; a late outcome of such a batch changes nothing;
- consent at the moment of sending: a claim skips recipients who unsubscribed, withdrew consent, were
  suppressed or erased after the audience was frozen (status `skipped`, the reason in `error`);
- transient errors (4xx, lost connections) put the recipient back with a growing delay, permanent
  ones (5xx) mark it failed with the reason;
- pause, resume and cancel act between batches: each batch starts by reading the campaign's state,
  and only while its tenant is active (a deactivated tenant sends nothing more); a claim and the
  recording of a batch hold a share lock on the campaign row, so a cancel (which locks it for
  update) happens wholly before or after them: nothing is claimed once a campaign is cancelled, and
  what a batch in flight could not send becomes `cancelled`, not pending again;
- the tenant's rate is reserved in Redis before each claim (waiting for a slot never eats a lease),
  paced within the batch, and what a short batch did not use is given back; with Redis unreachable
  the run stops before claiming anything (the beat's stall check restarts the campaign once Redis is
  back: the queued task messages may be gone with it).
"""

import logging
import time
import uuid
from dataclasses import dataclass, field
from datetime import timedelta

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from core.backoff import exponential_backoff
from customers.models import Interaction
from tenancy.models import Tenant
from tenancy.work import work_mark

from . import abtests, jobs, lifecycle, selectors
from .leases import RECIPIENT_LEASES, Lease, LeaseLost
from .mail import NOT_ATTEMPTED, StopSending, delivery_error, mail_connection
from .messages import CampaignComposer
from .models import Campaign
from .ratelimit import RateLimiter, RateUnavailable
from .rendering import customer_context
from .tokens import tenant_base_url

logger = logging.getLogger(__name__)

MAX_ATTEMPTS = 5
# A transient error puts the recipient back for 1, 2, 4, 8 ... minutes, at most an hour.
RETRY_BACKOFF_BASE_SECONDS = 60
RETRY_BACKOFF_MAX_SECONDS = 3600
# Two broken connections in a row within one batch: the server is down; give the rest back untried.
MAX_BROKEN_IN_A_ROW = 2
# Claims that never went out because the server is down wait this long before they are due again.
RELEASE_DELAY_SECONDS = 30
# A sender that must wait longer than this for its first rate slot tells the stall check it is busy.
NOTE_RATE_WAIT_SECONDS = 1.0


@dataclass(frozen=True)
class Claim:
    id: int
    customer_id: int
    email: str
    attempts: int
    variant: str = ""  # the A/B variant's key ("" without a test)


@dataclass
class Batch:
    """What one claim took: recipients to send under `lease`, and how many it skipped instead."""

    claims: list = field(default_factory=list)
    skipped: int = 0
    token: uuid.UUID | None = None
    lease: Lease | None = None
    # False when the campaign was no longer sending (paused, cancelled) at the moment of the claim.
    open: bool = True


@dataclass
class BatchResult:
    sent: list = field(default_factory=list)  # (recipient id, message id)
    retry: list = field(default_factory=list)  # (recipient id, reason, delay seconds)
    failed: list = field(default_factory=list)  # (recipient id, reason)
    released: list = field(default_factory=list)  # recipient ids not tried (connection down, or stopped)
    # Why the batch stopped sending before its end (it lost its lease), else "".
    stopped: str = ""

    @property
    def claimed(self):
        return len(self.sent) + len(self.retry) + len(self.failed) + len(self.released)


def composer_for(*, campaign, test=False):
    """The composer of a campaign's messages (also the web version's and a test copy's), its reads
    through the campaign's Store."""
    return Store(campaign.pk, campaign=campaign).composer(test=test)


def _composer(*, campaign, content, sender, links, test):
    base_url = tenant_base_url()
    composer = CampaignComposer(
        campaign=campaign, content=content, sender=sender, links=links, base_url=base_url, test=test
    )
    if not campaign.variants or test:
        return composer
    variants = {}
    for variant in campaign.variants:
        variant_content, variant_sender = abtests.variant_content(
            campaign=campaign, key=variant["key"], content=content, sender=sender
        )
        variants[variant["key"]] = CampaignComposer(
            campaign=campaign,
            content=variant_content,
            sender=variant_sender,
            links=links,
            base_url=base_url,
            purchases=composer.product_cards.purchases,
        )
    return VariantComposer(composer, variants)


class VariantComposer:
    """An A/B test's composers: each claim is composed with its own variant's (claim.variant)."""

    def __init__(self, default, variants):
        self.default = default
        self.variants = variants

    def for_claim(self, claim):
        return self.variants.get(claim.variant, self.default)

    def prepare(self, claims):
        """The batch's "last bought" products, for every variant at once: the composers share them
        (one query per batch, however many variants it holds)."""
        self.default.prepare(claims)


class Store:
    """The sending engine's only door to the database, for one campaign (the connection's current
    tenant schema): the campaign and its content, whether it may send, claims and their leases, the
    customers, the outcomes, and finishing the campaign."""

    # The periodic work that reclaims the leases of senders that died (campaigns.lifecycle).
    LEASES_WORK = lifecycle.LEASES_WORK

    def __init__(self, campaign_id, *, campaign=None):
        self.campaign_id = campaign_id
        self._campaign = campaign

    def campaign(self):
        """The campaign (with its template), or None when it does not exist."""
        if self._campaign is None:
            self._campaign = Campaign.objects.filter(pk=self.campaign_id).select_related("template").first()
        return self._campaign

    def composer(self, *, test=False):
        """The composer of the campaign's messages (one per variant in an A/B test)."""
        campaign = self.campaign()
        return _composer(
            campaign=campaign,
            content=selectors.campaign_content(campaign=campaign),
            sender=selectors.campaign_sender(campaign=campaign),
            links=selectors.campaign_links(campaign_id=campaign.pk),
            test=test,
        )

    def send_rate(self):
        """The tenant's messages per second."""
        return getattr(connection.tenant, "send_rate_per_second", 50)

    def may_send(self):
        """Whether a batch may start: the campaign is sending and its tenant is active. Read from the
        database each time: a worker's tenant object is cached and would miss a deactivation."""
        with connection.cursor() as cursor:
            cursor.execute(
                f"""
                SELECT c.status, t.is_active
                FROM {Campaign._meta.db_table} AS c
                LEFT JOIN public.{Tenant._meta.db_table} AS t ON t.schema_name = %s
                WHERE c.id = %s
                """,
                [connection.schema_name, self.campaign_id],
            )
            row = cursor.fetchone()
        return row is not None and row[0] == "sending" and bool(row[1])

    def _locked_status(self, cursor):
        """The campaign's state, held until this transaction ends: KEY SHARE lets the workers of one
        campaign through together and waits only for a state change (services lock FOR UPDATE)."""
        cursor.execute(
            f"SELECT status FROM {Campaign._meta.db_table} WHERE id = %s FOR KEY SHARE", [self.campaign_id]
        )
        row = cursor.fetchone()
        return row[0] if row else None

    def _unsent_status(self, cursor):
        """Where a claimed but unsent recipient goes: back to pending, or cancelled with its campaign."""
        return "cancelled" if self._locked_status(cursor) == "cancelled" else "pending"

    def _skip_reason_sql(self):
        """SQL over a claimed recipient row `u`: why it may not be mailed now, or NULL."""
        return selectors.marketing_skip_reason_sql(customer_id="u.customer_id", email="u.email")

    def claim(self, *, limit, lease_seconds):
        """Take up to `limit` due pending recipients under a new token and a lease of `lease_seconds`;
        committed before returning. Those who may no longer be mailed are skipped in the same
        statement (selectors.marketing_skip_reason_sql).

        Only while the campaign is sending: a cancel committed before this claim leaves nothing to
        take, and one that comes during it waits for it (the rows claimed are a batch in flight)."""
        taken_at = time.monotonic()  # before asking: the lease runs from a moment after this
        with transaction.atomic(), connection.cursor() as cursor:
            if self._locked_status(cursor) != "sending":
                return Batch(open=False)
            token, rows, skipped = RECIPIENT_LEASES.claim(
                cursor,
                group_id=self.campaign_id,
                limit=limit,
                lease_seconds=lease_seconds,
                columns=("u.id", "u.customer_id", "u.email", "u.attempts", "u.variant"),
                skip=self._skip_reason_sql(),
            )
            if rows:
                # What reclaims a dead sender's lease visits this tenant once it could have run out
                # (tenancy/work.py); in the claim's transaction, so no lease exists without its marker.
                work_mark(self.LEASES_WORK, due_at=timezone.now() + timedelta(seconds=lease_seconds + 1))
        claims = [Claim(*row) for row in rows]
        lease = Lease(
            token=token,
            ids=[claim.id for claim in claims],
            seconds=lease_seconds,
            renew=self._renew,
            taken_at=taken_at,
        )
        return Batch(claims=claims, skipped=skipped, token=token, lease=lease)

    def _renew(self, *, token, ids, lease_seconds):
        with connection.cursor() as cursor:
            return RECIPIENT_LEASES.renew(cursor, token=token, ids=ids, lease_seconds=lease_seconds)

    def customers(self, ids):
        return selectors.customers_for_sending(ids=ids)

    def record(self, batch, result):
        """Write a batch's outcome set-based, in one transaction, to the rows its claim still holds
        (the token); sent ones also log an interaction. Returns how many rows it wrote: fewer than
        claimed only when the lease was lost and the rows reclaimed (then they are not ours)."""
        held = RECIPIENT_LEASES.held("r")
        table = RECIPIENT_LEASES.table
        token = batch.token
        written = 0
        with transaction.atomic(), connection.cursor() as cursor:
            unsent = self._unsent_status(cursor) if (result.retry or result.released) else "pending"
            if result.sent:
                ids, mids = zip(*result.sent, strict=True)
                cursor.execute(
                    f"""
                    WITH done AS (
                        UPDATE {table} AS r
                        SET status = 'sent', sent_at = clock_timestamp(), message_id = v.mid,
                            lease_until = NULL, claim_token = NULL, error = ''
                        FROM unnest(%s::bigint[], %s::text[]) AS v (id, mid)
                        WHERE r.id = v.id AND {held}
                        RETURNING r.id, r.customer_id, r.message_id
                    )
                    INSERT INTO {Interaction._meta.db_table} (customer_id, kind, body, data, occurred_at, created_at)
                    SELECT done.customer_id, 'email_sent', %s,
                           jsonb_build_object('campaign', %s::bigint, 'recipient', done.id,
                                              'message_id', done.message_id),
                           clock_timestamp(), clock_timestamp()
                    FROM done
                    """,
                    [
                        list(ids),
                        list(mids),
                        token,
                        f"Campaign: {self.campaign().name}"[:500],
                        self.campaign_id,
                    ],
                )
                written += cursor.rowcount
            if result.retry:
                ids, reasons, delays = zip(*result.retry, strict=True)
                cursor.execute(
                    f"""
                    UPDATE {table} AS r
                    SET status = %s, error = v.reason, claim_token = NULL,
                        lease_until = CASE WHEN %s::text = 'pending'
                                           THEN clock_timestamp() + make_interval(secs => v.delay) END
                    FROM unnest(%s::bigint[], %s::text[], %s::float8[]) AS v (id, reason, delay)
                    WHERE r.id = v.id AND {held}
                    """,
                    [unsent, unsent, list(ids), list(reasons), list(delays), token],
                )
                written += cursor.rowcount
            if result.failed:
                ids, reasons = zip(*result.failed, strict=True)
                cursor.execute(
                    f"""
                    UPDATE {table} AS r
                    SET status = 'failed', error = v.reason, lease_until = NULL, claim_token = NULL
                    FROM unnest(%s::bigint[], %s::text[]) AS v (id, reason)
                    WHERE r.id = v.id AND {held}
                    """,
                    [list(ids), list(reasons), token],
                )
                written += cursor.rowcount
            if result.released:
                # Never tried: the attempt does not count; with the server down they wait a little.
                written += RECIPIENT_LEASES.release(
                    cursor,
                    token=token,
                    ids=result.released,
                    status=unsent,
                    due_in=None if result.stopped else RELEASE_DELAY_SECONDS,
                )
        if written < result.claimed:
            logger.warning(
                "campaign %s in %s: %s of %s outcomes of a batch were not recorded: its lease had run "
                "out and another claim holds those recipients",
                self.campaign_id,
                connection.schema_name,
                result.claimed - written,
                result.claimed,
            )
        return written

    def note_rate_wait(self, seconds):
        jobs.campaign_rate_wait_note(campaign=self.campaign(), seconds=seconds)

    def work_left(self):
        """(pending, sending, seconds until the earliest pending recipient is due or None)."""
        return selectors.campaign_work_left(campaign_id=self.campaign_id)

    def finish_if_done(self):
        """sending/paused -> sent when nobody is left (through the state machine's own function)."""
        return lifecycle.campaign_finish_if_done(campaign_id=self.campaign_id)


class Messenger:
    """The mail side: one backend connection, opened lazily, reopened after it broke."""

    def __init__(self, connection_factory=mail_connection):
        self.factory = connection_factory
        self.connection = None

    def _connection(self):
        if self.connection is None:
            self.connection = self.factory()
            self.connection.open()
        return self.connection

    def send(self, message):
        if self._connection().send_messages([message]) != 1:
            raise OSError("the mail backend did not accept the message")

    def send_many(self, messages, before_each=None):
        """Per message: None (accepted), the exception, or NOT_ATTEMPTED. SMTP pipelines the batch;
        other backends (ESPs, console, file) get one call per message. `before_each(i)` may raise
        StopSending: message i and the rest are not attempted."""
        try:
            connection = self._connection()
            if hasattr(connection, "send_many"):
                results = connection.send_many(messages, before_each=before_each)
                if connection.connection is None:  # it broke and closed itself
                    self.connection = None
                return results
        except Exception as exc:  # cannot connect (or the backend failed as a whole): nothing went out
            self.reset()
            return [exc] + [NOT_ATTEMPTED] * (len(messages) - 1) if messages else []
        results = []
        for index, message in enumerate(messages):
            if before_each:
                try:
                    before_each(index)
                except StopSending:
                    return results + [NOT_ATTEMPTED] * (len(messages) - index)
            try:
                self.send(message)
                results.append(None)
            except Exception as exc:
                results.append(exc)
        return results

    def reset(self):
        if self.connection is not None:
            try:
                self.connection.close()
            except Exception:  # the connection is already gone; that is why we reset
                pass
        self.connection = None

    close = reset


def send_batch(*, claims, customers, composer, messenger, pacer, lease=None):
    """Compose and send each claimed recipient; classify every failure. Pure of the database but for
    the lease, which `lease.keep()` renews before each message (or stops the batch when it is lost).

    The whole batch is composed first and then sent back to back: interleaving CPU-heavy rendering
    with SMTP round trips made every round trip wait for the scheduler (3x slower sends measured on
    a loaded machine); a batch of composed messages is a few hundred kilobytes.
    """
    result = BatchResult()
    composed = []
    for claim in claims:
        customer = customers.get(claim.customer_id)
        if customer is None:
            result.failed.append((claim.id, "the customer no longer exists"))
            continue
        chosen = composer.for_claim(claim) if hasattr(composer, "for_claim") else composer
        try:
            message, mid = chosen.compose(
                recipient_id=claim.id,
                email=claim.email,
                customer_id=claim.customer_id,
                customer=customer_context(customer),
            )
        except Exception as exc:  # a template that fails for this customer's data fails only them
            result.failed.append((claim.id, f"could not render: {type(exc).__name__}: {exc}"[:1000]))
            continue
        composed.append((claim, message, mid))

    def before_each(index):
        pacer.wait(index)
        if lease is not None:
            try:
                lease.keep()
            except LeaseLost as exc:
                result.stopped = str(exc)
                raise StopSending(str(exc)) from exc

    messages = [message for _, message, _ in composed]
    if hasattr(messenger, "send_many"):
        outcomes = messenger.send_many(messages, before_each=before_each)
    else:
        outcomes = _send_each(messenger, messages, before_each)
    for (claim, _message, mid), outcome in zip(composed, outcomes, strict=True):
        if outcome is None:
            result.sent.append((claim.id, mid))
            continue
        if outcome is NOT_ATTEMPTED:
            result.released.append(claim.id)
            continue
        error = delivery_error(outcome)
        if error.permanent:
            result.failed.append((claim.id, error.reason[:1000]))
        elif claim.attempts >= MAX_ATTEMPTS:
            result.failed.append(
                (claim.id, f"gave up after {claim.attempts} attempts: {error.reason}"[:1000])
            )
        else:
            delay = exponential_backoff(
                claim.attempts, base=RETRY_BACKOFF_BASE_SECONDS, cap=RETRY_BACKOFF_MAX_SECONDS
            )
            result.retry.append((claim.id, error.reason[:1000], delay))
    return result


def _send_each(messenger, messages, before_each):
    """For a messenger with `send` only: one call per message; after two broken connections in a
    row, or once `before_each` raised StopSending, the rest are not attempted."""
    outcomes, broken = [], 0
    for index, message in enumerate(messages):
        if broken >= MAX_BROKEN_IN_A_ROW:
            outcomes.append(NOT_ATTEMPTED)
            continue
        try:
            before_each(index)
        except StopSending:
            return outcomes + [NOT_ATTEMPTED] * (len(messages) - index)
        try:
            messenger.send(message)
            outcomes.append(None)
            broken = 0
        except Exception as exc:
            outcomes.append(exc)
            if delivery_error(exc).broken:
                messenger.reset()
                broken += 1
    return outcomes


@dataclass
class RunOutcome:
    sent: int = 0
    failed: int = 0
    retried: int = 0
    skipped: int = 0
    batches: int = 0
    # Whether this campaign needs another run, and after how many seconds.
    more: bool = False
    delay: float = 0.0
    finished: bool = False
    # Stopped because Redis (rate reservations, task broker) is unreachable; nothing is held.
    redis_unreachable: bool = False


def campaign_batches_send(
    *,
    campaign_id,
    time_budget=None,
    batch_size=None,
    lease_seconds=None,
    messenger=None,
    limiter=None,
    max_batches=None,
):
    """Send batches of one campaign until it is done, stopped, or `time_budget` seconds are used."""
    time_budget = settings.CAMPAIGN_TASK_SECONDS if time_budget is None else time_budget
    batch_size = batch_size or settings.CAMPAIGN_BATCH_SIZE
    lease_seconds = lease_seconds or settings.CAMPAIGN_LEASE_SECONDS
    outcome = RunOutcome()
    store = Store(campaign_id)
    if store.campaign() is None or not store.may_send():
        return outcome
    composer = store.composer()
    limiter = limiter or RateLimiter(rate_per_second=store.send_rate())
    rate = getattr(limiter, "rate", None)
    if rate:
        # A batch reserves no more than the rate lets out within one task's time: at 1 message/s a
        # batch of 200 would make every other sender of the tenant wait over three minutes for it.
        batch_size = max(1, min(batch_size, int(rate * max(time_budget, 1))))
    own_messenger = messenger is None
    messenger = messenger or Messenger()
    deadline = time.monotonic() + time_budget
    try:
        while True:
            if not store.may_send():  # paused, cancelled, or the tenant deactivated: stop between batches
                return outcome
            try:
                pacer = limiter.reserve(batch_size)
            except RateUnavailable as exc:
                # Nothing is claimed, nothing held; the stall check finds the campaign once Redis is
                # back. No re-enqueue: the broker is the same Redis.
                logger.warning(
                    "sending paused: Redis unreachable (%s); campaign %s in %s claimed nothing more "
                    "and resumes when the stall check finds it after Redis is back",
                    exc,
                    campaign_id,
                    connection.schema_name,
                )
                outcome.redis_unreachable = True
                return outcome
            # The slot is waited for before claiming: a lease runs only while its batch is sent.
            if pacer.delay() > NOTE_RATE_WAIT_SECONDS:
                store.note_rate_wait(pacer.delay())
            pacer.wait(0)
            batch = store.claim(limit=batch_size, lease_seconds=lease_seconds)
            pacer.give_back(batch_size - len(batch.claims))
            if not batch.open:
                return outcome
            outcome.skipped += batch.skipped
            if batch.claims:
                composer.prepare(batch.claims)
                result = send_batch(
                    claims=batch.claims,
                    customers=store.customers([claim.customer_id for claim in batch.claims]),
                    composer=composer,
                    messenger=messenger,
                    pacer=pacer,
                    lease=batch.lease,
                )
                store.record(batch, result)
                outcome.batches += 1
                outcome.sent += len(result.sent)
                outcome.failed += len(result.failed)
                outcome.retried += len(result.retry) + len(result.released)
                if result.stopped:
                    logger.warning(
                        "campaign %s in %s: a batch stopped sending: %s",
                        campaign_id,
                        connection.schema_name,
                        result.stopped,
                    )
                elif result.released:  # the server is down: come back later rather than spin
                    outcome.more, outcome.delay = True, float(RELEASE_DELAY_SECONDS)
                    return outcome
            elif not batch.skipped:
                break
            if time.monotonic() >= deadline or (max_batches and outcome.batches >= max_batches):
                outcome.more = True
                return outcome
    finally:
        if own_messenger:
            messenger.close()
    pending, sending, due_in = store.work_left()
    if pending:
        # Only recipients waiting for their retry time are left: come back then.
        outcome.more, outcome.delay = True, max(1.0, due_in or 0.0)
    elif not sending:
        outcome.finished = store.finish_if_done()
    # Rows another worker holds: that worker finishes the campaign; if it died, the reclaimer does.
    return outcome


def run_until_done(*, campaign_id, mail_overrides=None, batch_size=None, sleep=time.sleep):
    """Send one campaign in this process until nothing is left for it (the synchronous path used by
    `manage.py send_campaign` and benchmarks). `mail_overrides` go to the mail backend (host, port)."""
    messenger = Messenger(lambda: mail_connection(**(mail_overrides or {})))
    total = RunOutcome()
    try:
        while True:
            outcome = campaign_batches_send(
                campaign_id=campaign_id, time_budget=3600, batch_size=batch_size, messenger=messenger
            )
            total.sent += outcome.sent
            total.failed += outcome.failed
            total.retried += outcome.retried
            total.skipped += outcome.skipped
            total.batches += outcome.batches
            total.finished = total.finished or outcome.finished
            total.redis_unreachable = outcome.redis_unreachable
            if not outcome.more:
                return total
            sleep(outcome.delay)
    finally:
        messenger.close()
