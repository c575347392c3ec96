"""The flow sender: deliver the queued messages of flow email steps with the campaign sender's
guarantees (campaigns/sender.py, campaigns/leases.py).

Each message is a recipient row of a carrier campaign (flows.carriers). `FlowStore` is the campaign
sender's `Store` for one carrier: the same claim under a token and a lease (`FOR UPDATE SKIP LOCKED`),
the same set-based recording matched on the token, the same reclaimer (campaigns' beat reclaims any
carrier's expired leases). What differs:

- whether it may send: the flow is active and the tenant is active, read from the database at each
  batch (a deactivated tenant sends nothing more);
- what the claim skips, in the claim's own statement: everyone the campaign audience rules exclude
  now (consent, unsubscribed, suppressed, erased), and, with the flow's `frequency_cap_hours`, whoever
  got any marketing email within that window ("frequency cap"); the reason is the recipient's `error`;
- the message: the template also gets `event.properties.*` and `order.*` of what entered the run, and
  its Message-ID is derived from the run and the step (a resend after a crash carries the same one).
"""

import json
import logging
import time
from dataclasses import dataclass

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone
from django.utils.crypto import salted_hmac

from campaigns import selectors
from campaigns.leases import RECIPIENT_LEASES
from campaigns.messages import CampaignComposer
from campaigns.models import CampaignRecipient
from campaigns.ratelimit import RateLimiter, RateUnavailable
from campaigns.rendering import order_context
from campaigns.sender import Messenger, Store, send_batch
from campaigns.tokens import tenant_base_url
from core.sql import id_array
from customers.models import Order
from tenancy.models import Tenant

from .models import Flow, FlowCarrier, FlowRun, FlowStepLog
from .work import DISPATCH_WORK

logger = logging.getLogger(__name__)


def flow_message_id(*, run_id, step_id, domain, schema=None):
    """Deterministic per run and step."""
    schema = schema or connection.schema_name
    digest = salted_hmac("flows.message-id", f"{schema}.{run_id}.{step_id}", algorithm="sha256").hexdigest()[
        :16
    ]
    return f"<f.r{run_id}.{step_id}.{digest}@{domain}>"


def frequency_cap_skip_sql(*, cap_hours):
    """SQL over a claimed recipient row `u`: why it may not go now because of the frequency cap, or NULL.
    One index probe (recipient_customer) per row, inside the claim's statement."""
    if not cap_hours:
        return "NULL::text"
    return f"""(
        SELECT 'frequency cap: a marketing email went to this customer within {int(cap_hours)} h'
        WHERE EXISTS (
            SELECT 1 FROM {CampaignRecipient._meta.db_table} AS other
            WHERE other.customer_id = u.customer_id AND other.id <> u.id
              AND other.sent_at > statement_timestamp() - make_interval(hours => {int(cap_hours)})
        )
    )"""


class FlowComposer(CampaignComposer):
    """A campaign composer with the run's event and order in the context and a per-run Message-ID."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.extras = {}
        self._current = None

    def context(self, **kwargs):
        values = super().context(**kwargs)
        extra = self.extras.get(self._current, {})
        values["event"] = extra.get("event") or {}
        values["order"] = extra.get("order") or {}
        return values

    def compose(self, *, recipient_id, email, customer_id, customer):
        self._current = recipient_id
        message, _ = super().compose(
            recipient_id=recipient_id, email=email, customer_id=customer_id, customer=customer
        )
        extra = self.extras.get(recipient_id) or {}
        mid = flow_message_id(
            run_id=extra.get("run", 0), step_id=extra.get("step", ""), domain=self.domain, schema=self.schema
        )
        message.extra_headers["Message-ID"] = mid
        message.metadata = {**message.metadata, "flow": extra.get("flow"), "step": extra.get("step")}
        message.tags = ["flow"]
        return message, mid


def _json(text):
    return json.loads(text) if isinstance(text, str) else text


def message_extras(recipient_ids):
    """{recipient id: {"run", "step", "flow", "event", "order"}} for a batch: two queries."""
    with connection.cursor() as cursor:
        # Raw SQL with the ids as one array literal and only the context's two keys read: through the
        # ORM (an IN list, the whole context decoded) this cost ~20 µs a message.
        cursor.execute(
            f"""
            SELECT l.recipient_id, l.run_id, l.step_id, l.flow_id,
                   r.context -> 'event', r.context -> 'order'
            FROM {FlowStepLog._meta.db_table} AS l JOIN {FlowRun._meta.db_table} AS r ON r.id = l.run_id
            WHERE l.recipient_id = ANY(%s::bigint[])
            """,
            [id_array(recipient_ids)],
        )
        rows = cursor.fetchall()
    # jsonb arrives as text (Django's psycopg setup); an order key is the order's id.
    rows = [(*row[:4], _json(row[4]), _json(row[5])) for row in rows]
    order_ids = {order for *_, order in rows if isinstance(order, int)}
    orders = {order.pk: order for order in Order.objects.filter(pk__in=order_ids).prefetch_related("items")}
    extras = {}
    for rid, run_id, step_id, flow_id, event, order_id in rows:
        order = orders.get(order_id) if isinstance(order_id, int) else None
        extras[rid] = {
            "run": run_id,
            "step": step_id,
            "flow": flow_id,
            "event": event if isinstance(event, dict) else {},
            "order": order_context(order) if order else {},
        }
    return extras


class FlowStore(Store):
    """The campaign sender's store for one carrier campaign of a flow."""

    # A dead flow sender's lease is reclaimed by the tenant's dispatch (flows.tasks).
    LEASES_WORK = DISPATCH_WORK

    def __init__(self, campaign_id, *, flow_id, cap_hours):
        super().__init__(campaign_id)
        self.flow_id = flow_id
        self.cap_hours = cap_hours

    def may_send(self):
        with connection.cursor() as cursor:
            cursor.execute(
                f"""
                SELECT f.status, t.is_active FROM {Flow._meta.db_table} AS f
                LEFT JOIN public.{Tenant._meta.db_table} AS t ON t.schema_name = %s
                WHERE f.id = %s
                """,
                [connection.schema_name, self.flow_id],
            )
            row = cursor.fetchone()
        return row is not None and row[0] == "active" and bool(row[1])

    def _locked_status(self, cursor):
        return "sending"  # a carrier is never cancelled: what a batch could not send is pending again

    def composer(self):
        campaign = self.campaign()
        return FlowComposer(
            campaign=campaign,
            content=selectors.campaign_content(campaign=campaign),
            sender=selectors.campaign_sender(campaign=campaign),
            links=selectors.campaign_links(campaign_id=campaign.pk),
            base_url=tenant_base_url(),
        )

    def _skip_reason_sql(self):
        return f"coalesce({super()._skip_reason_sql()}, {frequency_cap_skip_sql(cap_hours=self.cap_hours)})"


@dataclass
class SendOutcome:
    sent: int = 0
    failed: int = 0
    skipped: int = 0
    retried: int = 0
    more: bool = False
    delay: float = 0.0  # before the next task may go on: after the server refused, not after the time budget


def carriers_with_work():
    """(campaign id, flow id, cap hours) of active flows' carriers holding due pending messages."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            SELECT fc.campaign_id, fc.flow_id, f.frequency_cap_hours
            FROM {FlowCarrier._meta.db_table} AS fc
            JOIN {Flow._meta.db_table} AS f ON f.id = fc.flow_id AND f.status = 'active'
            WHERE EXISTS (
                SELECT 1 FROM {CampaignRecipient._meta.db_table} AS r
                WHERE r.campaign_id = fc.campaign_id AND r.status = 'pending'
                  AND (r.lease_until IS NULL OR r.lease_until <= clock_timestamp())
            )
            ORDER BY fc.campaign_id
            """
        )
        return cursor.fetchall()


def leases_reclaim_expired():
    """Messages held by a flow sender that died (lease run out) are pending again, to go out with the
    same Message-ID: the campaign reclaimer's statement over the carriers that hold such rows (an
    index probe of `recipient_leased`)."""
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            f"""
            SELECT DISTINCT r.campaign_id FROM {CampaignRecipient._meta.db_table} AS r
            JOIN {FlowCarrier._meta.db_table} AS fc ON fc.campaign_id = r.campaign_id
            WHERE r.status = 'sending' AND r.lease_until < statement_timestamp()  -- stable: index recipient_leased
            """
        )
        expired = [row[0] for row in cursor.fetchall()]
        if not expired:
            return 0
        return RECIPIENT_LEASES.reclaim_expired(cursor, now=timezone.now(), group_ids=expired)


def flow_messages_send(*, time_budget=None, batch_size=None, lease_seconds=None, messenger=None):
    """Send the current tenant's queued flow messages until none is due or the time is up."""
    time_budget = settings.CAMPAIGN_TASK_SECONDS if time_budget is None else time_budget
    batch_size = batch_size or settings.CAMPAIGN_BATCH_SIZE
    lease_seconds = lease_seconds or settings.CAMPAIGN_LEASE_SECONDS
    deadline = time.monotonic() + time_budget
    outcome = SendOutcome()
    own_messenger = messenger is None
    messenger = messenger or Messenger()
    limiter = None
    try:
        for campaign_id, flow_id, cap_hours in carriers_with_work():
            store = FlowStore(campaign_id, flow_id=flow_id, cap_hours=cap_hours)
            if store.campaign() is None:
                continue
            composer = store.composer()
            limiter = limiter or RateLimiter(rate_per_second=store.send_rate(), key="flows:send-rate")
            while store.may_send():
                try:
                    pacer = limiter.reserve(batch_size)
                except RateUnavailable as exc:
                    logger.warning("flow sending paused: Redis unreachable (%s)", exc)
                    outcome.more, outcome.delay = True, 1.0
                    return outcome
                pacer.wait(0)
                batch = store.claim(limit=batch_size, lease_seconds=lease_seconds)
                pacer.give_back(batch_size - len(batch.claims))
                outcome.skipped += batch.skipped
                if not batch.claims:
                    if batch.skipped:
                        continue
                    break
                composer.extras = message_extras([claim.id for claim in batch.claims])
                composer.prepare(batch.claims)  # the batch's "last bought" product cards, one query
                result = send_batch(
                    claims=batch.claims,
                    customers=store.customers([claim.customer_id for claim in batch.claims]),
                    composer=composer,
                    messenger=messenger,
                    pacer=pacer,
                    lease=batch.lease,
                )
                store.record(batch, result)
                outcome.sent += len(result.sent)
                outcome.failed += len(result.failed)
                outcome.retried += len(result.retry) + len(result.released)
                if result.released and not result.stopped:  # the server is down: come back later
                    outcome.more, outcome.delay = True, 1.0
                    return outcome
                if time.monotonic() >= deadline:
                    outcome.more = True
                    return outcome
    finally:
        if own_messenger:
            messenger.close()
    return outcome
