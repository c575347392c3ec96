"""The flow engine: advance the current tenant's due runs, a batch at a time.

Due steps are rows: an active run's next step is `step_id`, due at `due_at` (partial index
`flow_run_due`, by flow). `flows_dispatch` claims up to a batch of due runs with `FOR UPDATE SKIP
LOCKED` (two dispatchers never take the same run; a tick with a million waiting runs and none due is
one index probe per active flow), performs each run's steps until it must wait (a delay, a wait_for,
the send window) or ends, and writes everything the batch did set-based in the same transaction: the
step logs (unique on run + step: a step is performed at most once, and a crash rolls the whole batch
back so nothing is half done), the email steps' recipient rows, tags, the runs' new positions,
finished runs and their events (batch rows of the outbox: flows.outbox). Runs entering a flow have
their first steps performed by the same code (`runs_advance`, `effects_write`) as they enter
(flows.entry), so the dispatcher's runs are those whose time came later.

Rules are evaluated set-based too: exit rules once per flow and round, a branch once per step and
round, a wait_for's "did it happen" once per step and round (one query each, over the batch's
customers), never a query per run.

Email steps only queue a recipient row in the step's carrier campaign (flows.carriers); the flow
sender (flows.sender) delivers it with the campaign sender's guarantees after commit.
"""

import json
import logging
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import timedelta

from django.conf import settings
from django.core.cache import cache
from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection, transaction
from django.utils import timezone
from django_tenants.utils import schema_context

from campaigns.models import CampaignRecipient
from core.commits import on_commit_once
from core.locks import advisory_lock
from customers import hooks
from customers.models import Customer, CustomerTag, Order, Tag
from segments.rules import RuleError
from segments.selectors import rules_queryset

from . import carriers, definitions
from .definitions import ORDER_PLACED, duration_seconds, next_step_id, window_opens
from .models import CustomEvent, Flow, FlowRun, FlowStepLog
from .runs import runs_finish

logger = logging.getLogger(__name__)


@dataclass
class Run:
    id: int
    flow_id: int
    customer_id: int
    step_id: str
    version: int
    entry_number: int
    waiting_since: object
    context: dict
    due_at: object = None
    moved: bool = False
    finished: tuple | None = None  # (status, reason, step id)
    entry_key: str = ""  # an entering run's (flows.entry); the dispatcher's runs have theirs written


@dataclass
class Batch:
    """What one batch did, written set-based at its end."""

    logs: list = field(default_factory=list)  # (run, step, status, detail, email carrier key or None)
    tags_add: list = field(default_factory=list)  # (customer id, name)
    tags_remove: list = field(default_factory=list)
    emails: int = 0


@dataclass
class DispatchOutcome:
    runs: int = 0
    batches: int = 0
    emails: int = 0
    finished: int = 0
    more: bool = False


# pg advisory lock key: (namespace, hash of the schema), as tracking's roll-up.
DISPATCHER_LOCK_NAMESPACE = 7_100_002
# Set (per tenant) while a kick's sender tasks wait in the queue; the first of them to start clears it.
SENDER_KICK_KEY = "flows:sender-kick"
SENDER_KICK_SECONDS = 60


def dispatcher_lock():
    """One dispatcher per tenant at a time (core.locks.advisory_lock, per schema): yields whether this
    one holds the tenant's lock.

    Why: every bulk of entered runs kicks a dispatch task. Two dispatchers of one tenant were safe (runs
    are claimed SKIP LOCKED) but took both worker slots for as long as entries kept coming, and the
    senders' tasks queued behind them: 100,000 customers entering sent nothing for the ten seconds
    their events took. One dispatcher keeps up with entry (a tenth of a sender's cost per run)."""
    return advisory_lock(DISPATCHER_LOCK_NAMESPACE, name=connection.schema_name)


def runs_due():
    """Whether an active flow has a run due now: one probe of the partial index flow_run_due per
    active flow."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            SELECT EXISTS (
                SELECT 1 FROM {Flow._meta.db_table} AS f
                WHERE f.status = 'active' AND EXISTS (
                    SELECT 1 FROM {FlowRun._meta.db_table} AS r
                    WHERE r.flow_id = f.id AND r.status = 'active' AND r.due_at <= statement_timestamp()
                )
            )
            """
        )
        return cursor.fetchone()[0]


def flows_dispatch(*, batch_size=None, time_budget=None):
    """Advance the current tenant's due runs until none is due (or `time_budget` seconds are spent;
    then `more` is set). The per-tenant unit of work: beat calls it for each tenant with work."""
    batch_size = batch_size or settings.FLOW_DISPATCH_BATCH
    time_budget = settings.FLOW_DISPATCH_SECONDS if time_budget is None else time_budget
    deadline = time.monotonic() + time_budget
    outcome = DispatchOutcome()
    while True:
        taken, emails, finished = dispatch_batch(limit=batch_size)
        outcome.runs += taken
        outcome.emails += emails
        outcome.finished += finished
        outcome.batches += 1 if taken else 0
        if taken < batch_size:
            return outcome
        if time.monotonic() >= deadline:
            outcome.more = True
            return outcome


def _claim(cursor, limit):
    cursor.execute(
        f"""
        SELECT r.id, r.flow_id, r.customer_id, r.step_id, r.version, r.entry_number, r.waiting_since, r.context,
               -- The steps a run already performed (a batch whose run rows said otherwise): one probe
               -- of (run_id, step_id) per run, in the claim's round trip.
               (SELECT jsonb_object_agg(l.step_id, l.status)::text FROM {FlowStepLog._meta.db_table} AS l
                WHERE l.run_id = r.id)
        FROM {Flow._meta.db_table} AS f
        -- Each active flow's due runs through (flow_id, due_at) of the partial index flow_run_due:
        -- a paused flow's due runs are never read (one index over all flows made every tick walk
        -- past them). statement_timestamp(), not clock_timestamp(): a volatile bound cannot use it.
        CROSS JOIN LATERAL (
            SELECT r.* FROM {FlowRun._meta.db_table} AS r
            WHERE r.flow_id = f.id AND r.status = 'active' AND r.due_at <= statement_timestamp()
            ORDER BY r.due_at
            LIMIT %s
            FOR UPDATE OF r SKIP LOCKED
        ) AS r
        WHERE f.status = 'active'
        ORDER BY r.due_at
        LIMIT %s
        """,
        [limit, limit],
    )
    runs, done = [], {}
    for *columns, performed in cursor.fetchall():
        runs.append(Run(*columns))
        done[runs[-1].id] = json.loads(performed) if performed else {}
    return runs, done


def dispatch_batch(*, limit):
    """Claim and advance up to `limit` due runs in one transaction. Returns (runs, emails, finished)."""
    with transaction.atomic(), connection.cursor() as cursor:
        runs, done = _claim(cursor, limit)
        if not runs:
            return 0, 0, 0
        flows = Flow.objects.in_bulk({run.flow_id for run in runs})
        now = timezone.now()
        batch = Batch()
        runs_advance(runs, flows, done=done, batch=batch, now=now)
        batch.emails = effects_write(cursor, flows, batch, now)
        _moved_write(cursor, runs, now)
        finished = (
            runs_finish(
                cursor=cursor,
                finished=[(run.id, *run.finished) for run in runs if run.finished is not None],
                versions={run.id: run.version for run in runs if run.finished is not None},
            )
            if any(run.finished for run in runs)
            else []
        )
        if batch.emails:
            senders_kick()
    return len(runs), batch.emails, len(finished)


def runs_advance(runs, flows, *, done, batch, now):
    """Perform each run's steps until it must wait (a delay, a wait_for, the send window) or ends:
    the one place steps are performed, for the dispatcher's claimed runs and for runs entering a
    flow (flows.entry). `done` is {run id: {step id: status}} of steps already logged; what the
    steps did is gathered in `batch`. A run still moving after every step is due again at once."""
    time_zone = getattr(connection.tenant, "time_zone", "UTC")
    active = runs
    for _ in range(definitions.MAX_STEPS + 2):
        active = [run for run in active if run.finished is None]
        if not active:
            break
        _versions(active, flows)
        active = [run for run in active if run.finished is None]
        _exit_rules(active, flows)
        active = [run for run in active if run.finished is None]
        facts = _facts(active, flows)
        active = [
            run for run in active if _perform(run, flows[run.flow_id], done, facts, batch, now, time_zone)
        ]
    for run in active:
        run.due_at = now


def sender_kick_taken():
    """In a starting sender task: kicks from here on enqueue senders again."""
    try:
        cache.delete(SENDER_KICK_KEY)
    except Exception:  # the key runs out by itself
        logger.warning("could not clear the flow sender kick", exc_info=True)


def senders_kick():
    """Start the tenant's flow senders once this transaction commits; once however many of its
    statements queued messages (the beat sends what a lost kick leaves: the tenant's dispatch work
    is due while a flow message is pending)."""
    on_commit_once(senders_enqueue, connection.schema_name)


def senders_enqueue(schema):
    """Enqueue FLOW_SEND_CONCURRENCY sender tasks, unless an earlier kick's tasks have not started
    yet: they will see this transaction's messages when they do (it committed before this runs).

    Why: every entering request and every dispatcher batch kicks the senders. Without the check a
    100,000-customer entry queued two hundred sender tasks, each building its composer and SMTP
    connection for a slice of the sending, and the events publisher's task waited behind all of
    them. A lost key (Redis down, a sender that never starts) costs at most the tick: the tenant's
    dispatch work is due while a message is pending, and the tick's dispatch starts a sender."""
    from .tasks import send_flow_messages  # noqa: PLC0415  (flows.tasks imports this module)

    try:
        with schema_context(schema):  # the key is the tenant's (the cache's key function)
            if not cache.add(SENDER_KICK_KEY, 1, SENDER_KICK_SECONDS):
                return
    except Exception:  # no cache to ask: kick anyway
        logger.warning("could not check for a pending flow sender kick", exc_info=True)
    try:
        for _ in range(max(1, settings.FLOW_SEND_CONCURRENCY)):
            send_flow_messages.apply_async(headers={"_schema_name": schema}, retry=False)
    except Exception:  # the beat's sweep sends what a lost kick leaves
        logger.warning("could not enqueue the flow sender; beat will send", exc_info=True)


def _versions(runs, flows):
    """Runs of an older version continue at the step with the same id, or leave when it is gone."""
    for run in runs:
        flow = flows[run.flow_id]
        if run.version == flow.version:
            continue
        if run.step_id and run.step_id not in definitions.step_index(flow.steps):
            run.finished = ("exited", "step removed", run.step_id)
        else:
            run.version, run.moved = flow.version, True


def _matching(rules, customer_ids):
    """The customers among `customer_ids` matching `rules` now: one query."""
    try:
        return set(rules_queryset(rules=rules).filter(pk__in=customer_ids).values_list("pk", flat=True))
    except RuleError as exc:  # validated on save; a rule that stopped compiling (a field gone) matches no one
        logger.warning("flow rules no longer compile: %s", exc)
        return set()


def _exit_rules(runs, flows):
    by_flow = defaultdict(list)
    for run in runs:
        if flows[run.flow_id].exit_rules and run.step_id:
            by_flow[run.flow_id].append(run)
    for flow_id, members in by_flow.items():
        matched = _matching(flows[flow_id].exit_rules, [run.customer_id for run in members])
        for run in members:
            if run.customer_id in matched:
                run.finished = ("exited", "exit rules matched", run.step_id)


def _facts(runs, flows):
    """{(flow id, step id): customer ids for whom the branch's rules hold / the awaited thing happened}."""
    branches, waits = defaultdict(list), defaultdict(list)
    for run in runs:
        step = _step(flows[run.flow_id], run.step_id)
        if step is None:
            continue
        if step["type"] == "branch":
            branches[(run.flow_id, step["id"])].append(run.customer_id)
        elif step["type"] == "wait_for" and run.waiting_since is not None:
            waits[(run.flow_id, step["id"], step["event"])].append((run.customer_id, run.waiting_since))
    facts = {}
    for (flow_id, step_id), customer_ids in branches.items():
        facts[(flow_id, step_id)] = _matching(_step(flows[flow_id], step_id)["rules"], customer_ids)
    for (flow_id, step_id, event), waiting in waits.items():
        facts[(flow_id, step_id)] = _happened(event, waiting)
    return facts


def _happened(event, waiting):
    """Customers (of `waiting`: (customer id, since)) with an order / the named event since they
    started waiting: one query."""
    customer_ids = [customer for customer, _ in waiting]
    since = [moment for _, moment in waiting]
    if event == ORDER_PLACED:
        table, condition = (
            Order._meta.db_table,
            "o.status NOT IN ('cancelled', 'refunded') AND o.placed_at >= w.since",
        )
    else:
        table, condition = CustomEvent._meta.db_table, "o.name = %s AND o.occurred_at >= w.since"
    params = [customer_ids, since] + ([] if event == ORDER_PLACED else [event])
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            SELECT w.customer_id FROM unnest(%s::bigint[], %s::timestamptz[]) AS w (customer_id, since)
            WHERE EXISTS (SELECT 1 FROM {table} AS o WHERE o.customer_id = w.customer_id AND {condition})
            """,
            params,
        )
        return {row[0] for row in cursor.fetchall()}


def _step(flow, step_id):
    for step in flow.steps:
        if step.get("id") == step_id:
            return step
    return None


def _go(run, flow, step, jump=None):
    run.step_id = next_step_id(flow.steps, step["id"], jump)
    run.moved = True
    run.waiting_since = None


def _perform(run, flow, done, facts, batch, now, time_zone):
    """Perform the run's current step. True when the run goes on to its next step at once."""
    if not run.step_id:
        run.finished = ("completed", "", "")
        return False
    step = _step(flow, run.step_id)
    if step is None:
        run.finished = ("exited", "step removed", run.step_id)
        return False
    kind = step["type"]
    already = done[run.id].get(step["id"])
    if already is not None:  # performed in an earlier batch whose run row says otherwise: move on
        _go(run, flow, step, step.get(already) if already in ("yes", "no") else None)
        return True
    if kind == "delay":
        _log(batch, run, step, "done", f"waits until {now + timedelta(seconds=duration_seconds(step))}")
        _go(run, flow, step)
        run.due_at = now + timedelta(seconds=duration_seconds(step))
        return False
    if kind == "email":
        opens = window_opens(flow.send_window, time_zone, now)
        if opens is not None:
            run.due_at, run.moved = opens, True
            return False
        _log(batch, run, step, "queued", "", email=(flow.pk, flow.version, step["id"], run.entry_number))
        _go(run, flow, step)
        return True
    if kind == "branch":
        answer = "yes" if run.customer_id in facts.get((flow.pk, step["id"]), ()) else "no"
        _log(batch, run, step, answer, "the rules hold" if answer == "yes" else "the rules do not hold")
        _go(run, flow, step, step.get(answer))
        return True
    if kind == "wait_for":
        timeout = timedelta(seconds=duration_seconds(step["timeout"]))
        if run.waiting_since is None:
            run.waiting_since, run.due_at, run.moved = now, now + timeout, True
            return False
        if run.customer_id in facts.get((flow.pk, step["id"]), ()):
            _log(batch, run, step, "yes", f"{step['event']} happened")
            _go(run, flow, step, step.get("yes"))
            return True
        if now >= run.waiting_since + timeout:
            _log(batch, run, step, "no", f"no {step['event']} within the timeout")
            _go(run, flow, step, step.get("no"))
            return True
        run.due_at, run.moved = run.waiting_since + timeout, True
        return False
    if kind == "tag":
        batch.tags_add += [(run.customer_id, name.strip()) for name in step.get("add", [])]
        batch.tags_remove += [(run.customer_id, name.strip()) for name in step.get("remove", [])]
        _log(batch, run, step, "done", "")
        _go(run, flow, step)
        return True
    # exit
    _log(batch, run, step, "done", "")
    run.finished = ("completed", "exit step", step["id"])
    return False


def _log(batch, run, step, status, detail, email=None):
    batch.logs.append((run, step, status, detail, email))


def effects_write(cursor, flows, batch, now):
    """Write what the batch's steps did, set-based: the email steps' recipient rows, the step logs,
    the tags. Returns how many messages were queued.

    Each statement takes its rows as one JSON document, not as arrays: the driver quotes every
    element of a Python list through a regular expression (a fifth of the dispatcher's time at 500
    runs a batch), while json.dumps runs in C."""
    recipients = {}
    emails = [(run, key) for run, _, _, _, key in batch.logs if key is not None]
    if emails:
        campaign_of = {
            key: carriers.carrier_campaign(flow=flows[key[0]], key=key) for key in {k for _, k in emails}
        }
        rows = [
            {"campaign": campaign_of[key], "customer": run.customer_id}
            for run, key in emails
            if campaign_of[key]
        ]
        if rows:
            # The recipient row is the message's send unit (claim token, lease, Message-ID) and
            # tracking identity; one per address and carrier, as for campaigns.
            cursor.execute(
                f"""
                INSERT INTO {CampaignRecipient._meta.db_table}
                    (campaign_id, customer_id, email, status, message_id, attempts, error)
                SELECT v.campaign, c.id, c.email, 'pending', '', 0, ''
                FROM jsonb_to_recordset(%s::jsonb) AS v (campaign bigint, customer bigint)
                JOIN {Customer._meta.db_table} AS c ON c.id = v.customer
                WHERE c.email IS NOT NULL AND c.email <> ''
                ON CONFLICT (campaign_id, email) DO NOTHING
                RETURNING id, campaign_id, customer_id
                """,
                [json.dumps(rows)],
            )
            recipients = {(campaign, customer): rid for rid, campaign, customer in cursor.fetchall()}
        queued = 0
        for index, (run, step, status, detail, key) in enumerate(batch.logs):
            if key is None:
                continue
            campaign_id = campaign_of[key]
            rid = recipients.get((campaign_id, run.customer_id)) if campaign_id else None
            if rid is None:
                why = "the email template is gone" if not campaign_id else "no email address to send to"
                batch.logs[index] = (run, step, "skipped", why, None)
            else:
                batch.logs[index] = (run, step, status, detail, rid)
                queued += 1
    else:
        queued = 0
    if batch.logs:
        cursor.execute(
            f"""
            INSERT INTO {FlowStepLog._meta.db_table}
                (run_id, flow_id, step_id, step_type, version, status, detail, recipient_id, at)
            SELECT v.run, v.flow, v.step, v.type, v.version, v.status, v.detail, v.recipient, %s
            FROM jsonb_to_recordset(%s::jsonb)
                AS v (run bigint, flow bigint, step text, type text, version int, status text, detail text,
                      recipient bigint)
            ON CONFLICT (run_id, step_id) DO NOTHING
            """,
            [
                now,
                json.dumps(
                    [
                        {
                            "run": run.id,
                            "flow": run.flow_id,
                            "step": step["id"],
                            "type": step["type"],
                            "version": run.version,
                            "status": status,
                            "detail": detail,
                            "recipient": rid if isinstance(rid, int) else None,
                        }
                        for run, step, status, detail, rid in batch.logs
                    ]
                ),
            ],
        )
    _tags(cursor, batch)
    return queued


def _moved_write(cursor, runs, now):
    """The claimed runs' new positions. The finished ones are written once, by runs_finish (with the
    version they finished on): a second UPDATE of the same rows here cost as much as the first (every
    index of flow_runs again)."""
    moved = [run for run in runs if run.finished is None]
    if moved:
        cursor.execute(
            f"""
            UPDATE {FlowRun._meta.db_table} AS r
            SET step_id = v.step, version = v.version, due_at = v.due_at, waiting_since = v.since,
                updated_at = clock_timestamp()
            FROM jsonb_to_recordset(%s::jsonb)
                AS v (id bigint, step text, version int, due_at timestamptz, since timestamptz)
            WHERE r.id = v.id AND r.status = 'active'
            """,
            [
                json.dumps(
                    [
                        {
                            "id": run.id,
                            "step": run.step_id,
                            "version": run.version,
                            # A run that must wait without a moment (none so far) is due again in a minute.
                            "due_at": run.due_at or now + timedelta(minutes=1),
                            "since": run.waiting_since,
                        }
                        for run in moved
                    ],
                    cls=DjangoJSONEncoder,
                )
            ],
        )


def _tags(cursor, batch):
    tags, links = Tag._meta.db_table, CustomerTag._meta.db_table
    changed = set()
    if batch.tags_add:
        customers, names = (list(column) for column in zip(*batch.tags_add, strict=True))
        cursor.execute(
            f"""
            INSERT INTO {tags} (name, created_at)
            SELECT DISTINCT ON (lower(name)) name, clock_timestamp() FROM unnest(%s::text[]) AS v (name)
            ON CONFLICT (lower(name)) DO NOTHING
            """,
            [names],
        )
        cursor.execute(
            f"""
            INSERT INTO {links} (customer_id, tag_id, created_at)
            SELECT DISTINCT v.customer_id, t.id, clock_timestamp()
            FROM unnest(%s::bigint[], %s::text[]) AS v (customer_id, name)
            JOIN {tags} AS t ON lower(t.name) = lower(v.name)
            ON CONFLICT (customer_id, tag_id) DO NOTHING
            RETURNING customer_id
            """,
            [customers, names],
        )
        changed.update(row[0] for row in cursor.fetchall())
    if batch.tags_remove:
        customers, names = (list(column) for column in zip(*batch.tags_remove, strict=True))
        cursor.execute(
            f"""
            DELETE FROM {links} AS l USING {tags} AS t, unnest(%s::bigint[], %s::text[]) AS v (customer_id, name)
            WHERE l.tag_id = t.id AND lower(t.name) = lower(v.name) AND l.customer_id = v.customer_id
            RETURNING l.customer_id
            """,
            [customers, names],
        )
        changed.update(row[0] for row in cursor.fetchall())
    # A tag step can bring its customers into another flow's segment: noted for the next tick, once
    # for the batch (the tick's segment check ran before this dispatch, so not in this very tick).
    hooks.customers_changed_note(customer_ids=sorted(changed))
