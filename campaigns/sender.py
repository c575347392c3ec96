"""The sending engine: claim a batch, render it, send it over one connection, record the results.

Small and separate (listmonk's shape): it talks to the database through `Store` and to the mail
transport through `Messenger`, and keeps its progress in the database, so any worker can pick up
where another stopped. The promises it keeps, and how:

- exactly once: a recipient is claimed by one worker at a time (`FOR UPDATE SKIP LOCKED` + a lease);
  only a worker that dies between the SMTP hand-off and recording the batch leaves rows that are
  sent again once their lease expires, carrying the same deterministic Message-ID;
- transient errors (4xx, lost connections) put the recipient back with a growing delay, permanent
  ones (5xx) mark it failed with the reason;
- pause, resume and cancel act between batches: each batch starts by reading the campaign's state;
  a claim and the recording of a batch hold a share lock on the campaign row, so a cancel (which
  locks it for update) happens wholly before or after them: nothing is claimed once a campaign is
  cancelled, and what a batch in flight could not send becomes `cancelled`, not pending again;
- the tenant's rate is reserved in Redis before each batch and paced within it; with Redis
  unreachable the run gives its unsent claims back and stops (the beat's stall check restarts the
  campaign once Redis is back: the queued task messages may be gone with it).
"""

import logging
import time
from dataclasses import dataclass, field

from django.conf import settings
from django.db import connection, transaction

from . import selectors
from .mail import NOT_ATTEMPTED, delivery_error, mail_connection
from .messages import CampaignComposer
from .models import Campaign, CampaignRecipient
from .ratelimit import RateLimiter, RateUnavailable
from .rendering import customer_context

logger = logging.getLogger(__name__)

MAX_ATTEMPTS = 5
# Two broken connections in a row within one batch: the server is down; give the rest back untried.
MAX_BROKEN_IN_A_ROW = 2


@dataclass(frozen=True)
class Claim:
    id: int
    customer_id: int
    email: str
    attempts: int


@dataclass
class BatchResult:
    sent: list = field(default_factory=list)  # (recipient id, message id)
    retry: list = field(default_factory=list)  # (recipient id, reason, delay seconds)
    failed: list = field(default_factory=list)  # (recipient id, reason)
    released: list = field(default_factory=list)  # recipient ids not tried (connection down)

    @property
    def claimed(self):
        return len(self.sent) + len(self.retry) + len(self.failed) + len(self.released)


def retry_delay_seconds(attempts):
    """Backoff after the n-th failed attempt: 1, 2, 4, 8 ... minutes, at most an hour."""
    return min(60 * 2 ** max(attempts - 1, 0), 3600)


class Store:
    """The database side of sending one campaign (the connection's current tenant schema)."""

    table = CampaignRecipient._meta.db_table

    def __init__(self, campaign_id):
        self.campaign_id = campaign_id

    def status(self):
        return Campaign.objects.filter(pk=self.campaign_id).values_list("status", flat=True).first()

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

    def claim(self, *, limit, lease_seconds):
        """Take up to `limit` due pending recipients for `lease_seconds`; committed before returning.

        Only while the campaign is sending: a cancel committed before this claim leaves nothing to
        take, and one that comes during it waits for it (the rows claimed are a batch in flight)."""
        with transaction.atomic(), connection.cursor() as cursor:
            if self._locked_status(cursor) != "sending":
                return []
            cursor.execute(
                f"""
                UPDATE {self.table} AS r
                SET status = 'sending', attempts = r.attempts + 1,
                    lease_until = clock_timestamp() + make_interval(secs => %s)
                WHERE r.id IN (
                    SELECT id FROM {self.table}
                    WHERE campaign_id = %s AND status = 'pending'
                      AND (lease_until IS NULL OR lease_until <= clock_timestamp())
                    ORDER BY id
                    LIMIT %s
                    FOR UPDATE SKIP LOCKED
                )
                RETURNING r.id, r.customer_id, r.email, r.attempts
                """,
                [lease_seconds, self.campaign_id, limit],
            )
            rows = cursor.fetchall()
        return [Claim(*row) for row in sorted(rows)]

    def customers(self, ids):
        return selectors.customers_for_sending(ids=ids)

    def record(self, result, *, campaign_name=""):
        """Write a batch's outcome set-based, in one transaction; sent ones also log an interaction."""
        from customers.models import Interaction

        interaction_table = Interaction._meta.db_table
        with transaction.atomic(), connection.cursor() as cursor:
            unsent = self._unsent_status(cursor) if (result.retry or result.released) else "pending"
            if result.sent:
                ids, mids = zip(*result.sent, strict=True)
                cursor.execute(
                    f"""
                    WITH done AS (
                        UPDATE {self.table} AS r
                        SET status = 'sent', sent_at = clock_timestamp(), message_id = v.mid, lease_until = NULL, error = ''
                        FROM unnest(%s::bigint[], %s::text[]) AS v (id, mid)
                        WHERE r.id = v.id AND r.status = 'sending'
                        RETURNING r.id, r.customer_id, r.message_id
                    )
                    INSERT INTO {interaction_table} (customer_id, kind, body, data, occurred_at, created_at)
                    SELECT done.customer_id, 'email_sent', %s,
                           jsonb_build_object('campaign', %s::bigint, 'recipient', done.id,
                                              'message_id', done.message_id),
                           clock_timestamp(), clock_timestamp()
                    FROM done
                    """,
                    [list(ids), list(mids), f"Campaign: {campaign_name}"[:500], self.campaign_id],
                )
            if result.retry:
                ids, reasons, delays = zip(*result.retry, strict=True)
                cursor.execute(
                    f"""
                    UPDATE {self.table} AS r
                    SET status = %s, error = v.reason,
                        lease_until = CASE WHEN %s::text = 'pending'
                                           THEN clock_timestamp() + make_interval(secs => v.delay) END
                    FROM unnest(%s::bigint[], %s::text[], %s::float8[]) AS v (id, reason, delay)
                    WHERE r.id = v.id AND r.status = 'sending'
                    """,
                    [unsent, unsent, list(ids), list(reasons), list(delays)],
                )
            if result.failed:
                ids, reasons = zip(*result.failed, strict=True)
                cursor.execute(
                    f"""
                    UPDATE {self.table} AS r
                    SET status = 'failed', error = v.reason, lease_until = NULL
                    FROM unnest(%s::bigint[], %s::text[]) AS v (id, reason)
                    WHERE r.id = v.id AND r.status = 'sending'
                    """,
                    [list(ids), list(reasons)],
                )
            if result.released:
                # Never tried: the attempt does not count.
                cursor.execute(
                    f"""
                    UPDATE {self.table}
                    SET status = %s, attempts = greatest(attempts - 1, 0),
                        lease_until = CASE WHEN %s::text = 'pending' THEN clock_timestamp() + interval '30 seconds' END
                    WHERE id = ANY(%s) AND status = 'sending'
                    """,
                    [unsent, unsent, list(result.released)],
                )

    def give_back(self, ids):
        """Claims that were never sent go back to pending (cancelled with their campaign), due at
        once; the attempt does not count."""
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(
                f"""
                UPDATE {self.table}
                SET status = %s, attempts = greatest(attempts - 1, 0), lease_until = NULL
                WHERE id = ANY(%s) AND status = 'sending'
                """,
                [self._unsent_status(cursor), list(ids)],
            )
            return cursor.rowcount


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
        other backends (ESPs, console, file) get one call per message."""
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
                before_each(index)
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


def send_batch(*, claims, customers, composer, messenger, pacer):
    """Compose and send each claimed recipient; classify every failure. Pure of the database.

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
        try:
            message, mid = composer.compose(
                recipient_id=claim.id,
                email=claim.email,
                customer_id=claim.customer_id,
                customer=customer_context(customer),
            )
        except Exception as exc:  # a template that fails for this customer's data fails only them
            result.failed.append((claim.id, f"could not render: {type(exc).__name__}: {exc}"[:1000]))
            continue
        composed.append((claim, message, mid))
    if hasattr(messenger, "send_many"):
        outcomes = messenger.send_many([message for _, message, _ in composed], before_each=pacer.wait)
    else:
        outcomes = _send_each(messenger, [message for _, message, _ in composed], pacer)
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
            result.retry.append((claim.id, error.reason[:1000], retry_delay_seconds(claim.attempts)))
    return result


def _send_each(messenger, messages, pacer):
    """For a messenger with `send` only: one call per message; after two broken connections in a
    row the rest are not attempted."""
    outcomes, broken = [], 0
    for index, message in enumerate(messages):
        if broken >= MAX_BROKEN_IN_A_ROW:
            outcomes.append(NOT_ATTEMPTED)
            continue
        pacer.wait(index)
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
    batches: int = 0
    # Whether this campaign needs another run, and after how many seconds.
    more: bool = False
    delay: float = 0.0
    finished: bool = False
    # Stopped because Redis (rate reservations, task broker) is unreachable; nothing is held.
    redis_unreachable: bool = False


def composer_for(*, campaign, test=False):
    from .tokens import tenant_base_url

    return CampaignComposer(
        campaign=campaign,
        content=selectors.campaign_content(campaign=campaign),
        sender=selectors.campaign_sender(campaign=campaign),
        links=selectors.campaign_links(campaign_id=campaign.pk),
        base_url=tenant_base_url(),
        test=test,
    )


def run(
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
    from .services import campaign_finish_if_done

    time_budget = settings.CAMPAIGN_TASK_SECONDS if time_budget is None else time_budget
    batch_size = batch_size or settings.CAMPAIGN_BATCH_SIZE
    lease_seconds = lease_seconds or settings.CAMPAIGN_LEASE_SECONDS
    outcome = RunOutcome()
    campaign = Campaign.objects.filter(pk=campaign_id).select_related("template").first()
    if campaign is None or campaign.status != "sending":
        return outcome
    store = Store(campaign_id)
    composer = composer_for(campaign=campaign)
    limiter = limiter or RateLimiter(rate_per_second=getattr(connection.tenant, "send_rate_per_second", 50))
    own_messenger = messenger is None
    messenger = messenger or Messenger()
    deadline = time.monotonic() + time_budget
    try:
        while True:
            if store.status() != "sending":  # paused or cancelled: stop between batches
                return outcome
            claims = store.claim(limit=batch_size, lease_seconds=lease_seconds)
            if not claims:
                break
            try:
                pacer = limiter.reserve(len(claims))
            except RateUnavailable as exc:
                # Nothing of this batch went out. Held under a lease the rows would wait out
                # CAMPAIGN_LEASE_SECONDS after Redis is back; given back, the stall check finds them.
                # No re-enqueue: the broker is the same Redis.
                given_back = store.give_back([claim.id for claim in claims])
                logger.warning(
                    "sending paused: Redis unreachable (%s); campaign %s in %s gave back %s claimed "
                    "recipients and resumes when the stall check finds it after Redis is back",
                    exc,
                    campaign_id,
                    connection.schema_name,
                    given_back,
                )
                outcome.redis_unreachable = True
                return outcome
            result = send_batch(
                claims=claims,
                customers=store.customers([claim.customer_id for claim in claims]),
                composer=composer,
                messenger=messenger,
                pacer=pacer,
            )
            store.record(result, campaign_name=campaign.name)
            outcome.batches += 1
            outcome.sent += len(result.sent)
            outcome.failed += len(result.failed)
            outcome.retried += len(result.retry) + len(result.released)
            if result.released:  # the server is down: come back later rather than spin
                outcome.more, outcome.delay = True, 30.0
                return outcome
            if time.monotonic() >= deadline or (max_batches and outcome.batches >= max_batches):
                outcome.more = True
                return outcome
    finally:
        if own_messenger:
            messenger.close()
    pending, sending, due_in = selectors.campaign_work_left(campaign_id=campaign_id)
    if pending:
        # Only recipients waiting for their retry time are left: come back then.
        outcome.more, outcome.delay = True, max(1.0, due_in or 0.0)
    elif not sending:
        outcome.finished = campaign_finish_if_done(campaign_id=campaign_id)
    # Rows another worker holds: that worker finishes the campaign; if it died, the reclaimer does.
    return outcome


def run_until_done(*, campaign_id, mail_overrides=None, batch_size=None, sleep=time.sleep):
    """Send one campaign in this process until nothing is left for it (the synchronous path used by
    `manage.py send_campaign` and benchmarks). `mail_overrides` go to the mail backend (host, port)."""
    messenger = Messenger(lambda: mail_connection(**(mail_overrides or {})))
    total = RunOutcome()
    try:
        while True:
            outcome = run(
                campaign_id=campaign_id, time_budget=3600, batch_size=batch_size, messenger=messenger
            )
            total.sent += outcome.sent
            total.failed += outcome.failed
            total.retried += outcome.retried
            total.batches += outcome.batches
            total.finished = total.finished or outcome.finished
            total.redis_unreachable = outcome.redis_unreachable
            if not outcome.more:
                return total
            sleep(outcome.delay)
    finally:
        messenger.close()
