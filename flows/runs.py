"""Runs: the re-entry policy, writing entering runs (set-based; flows.entry performs their first
steps before), and the one place a run's status changes (`RUN_TRANSITIONS`: an entering run is
written in a state an active run may take; an active one finishes by one conditional UPDATE per
batch), each reported to the outbox in the same statement (`flow.entered`, `flow.exited`,
`flow.completed`, as batch rows: flows.outbox)."""

import json

from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection

from core.sql import id_array
from customers.models import Customer
from events.services import outbox_kick

from .models import FlowRun
from .outbox import batch_rows_sql

# active -> completed (walked to the end, or an exit step) | exited (exit rules, a removed step,
# an archived flow). Nothing leaves completed or exited.
RUN_TRANSITIONS = {"active": {"completed", "exited"}}


def runs_fresh(cursor, *, flow, customer_ids):
    """The re-entry policy: of `customer_ids`, those who may enter `flow` now, each with the number
    of their entry (one more than their last run's): {customer id: entry number}. Not while the
    customer has an active run of the flow, nor within `after_days` of the last entry, nor ever
    again with `never` (whose entry key "once" runs_insert's unique index holds under concurrency)."""
    reentry = flow.reentry
    after_days = reentry.get("after_days") if isinstance(reentry, dict) else None
    cursor.execute(
        f"""
        SELECT c.id, 1 + p.last_number
        FROM {Customer._meta.db_table} AS c
        -- What the policy needs of each customer's earlier runs of the flow, in one lookup per
        -- customer through (customer_id, flow_id): an aggregate LATERAL stays a per-row probe.
        -- As a NOT EXISTS it became an anti join, which the planner, underestimating a flow's
        -- runs (a new flow has no statistics until the next ANALYZE), ran against all the
        -- flow's active runs materialised, for every entering customer: quadratic (100,000
        -- customers entering a flow took minutes). `flow_id + 0` keeps it off the flow's
        -- indexes, which it would scan for the same reason.
        CROSS JOIN LATERAL (
            SELECT coalesce(max(p.entry_number), 0) AS last_number,
                   count(*) FILTER (WHERE p.status = 'active') AS active,
                   max(p.entered_at) AS last_entered
            FROM {FlowRun._meta.db_table} AS p WHERE p.customer_id = c.id AND p.flow_id + 0 = %(flow)s
        ) AS p
        WHERE c.id = ANY(%(ids)s::bigint[]) AND c.erased_at IS NULL AND p.active = 0
          AND (NOT %(never)s OR p.last_number = 0)
          AND (%(after_days)s::int IS NULL OR p.last_entered IS NULL
               OR p.last_entered <= clock_timestamp() - make_interval(days => %(after_days)s::int))
        """,
        {
            "ids": id_array(customer_ids),
            "flow": flow.pk,
            "after_days": after_days,
            "never": reentry == "never",
        },
    )
    return dict(cursor.fetchall())


def runs_insert(cursor, *, flow, runs):
    """Write entering runs (engine.Run, each with its `entry_key`) in the state their first steps
    left them in: active at their next step, or already completed / exited (RUN_TRANSITIONS: the
    state an active run may take). Their events go to the outbox in the same statement:
    `flow.entered`, and `flow.completed` / `flow.exited` for those that ended.

    Idempotent and safe under concurrency through the unique indexes, with no conflict target: the
    entry key (the policy), the customer's entry number (two entries read the same earlier runs:
    the second does nothing, even when the first ended at once) and one active run per customer
    (flow_run_one_active). Returns {customer id: run id} of the runs written."""
    for run in runs:
        if run.finished is not None and run.finished[0] not in RUN_TRANSITIONS["active"]:
            raise ValueError(f"a run cannot become {run.finished[0]!r}")
    # One JSON document rather than arrays: the driver quotes a string at C speed, while arrays of a
    # thousand items cost more to quote (client-side binding) than the statement to run.
    rows = json.dumps(
        [
            {
                "customer": run.customer_id,
                "key": run.entry_key,
                "number": run.entry_number,
                "version": run.version,
                "context": run.context,
                "status": run.finished[0] if run.finished else "active",
                "step": "" if run.finished else run.step_id,
                # isoformat: DjangoJSONEncoder would cut the moments to milliseconds.
                "due_at": None if run.finished or run.due_at is None else run.due_at.isoformat(),
                "since": None if run.finished or run.waiting_since is None else run.waiting_since.isoformat(),
                "reason": run.finished[1] if run.finished else "",
                "at_step": run.finished[2] if run.finished else "",
            }
            for run in runs
        ],
        cls=DjangoJSONEncoder,
    )
    cursor.execute(
        f"""
        WITH v AS (
            SELECT * FROM jsonb_to_recordset(%(rows)s::jsonb)
                AS v (customer bigint, key text, number int, version int, context jsonb, status text, step text,
                      due_at timestamptz, since timestamptz, reason text, at_step text)
        ),
        entered AS (
            INSERT INTO {
            FlowRun._meta.db_table
        } (flow_id, customer_id, entry_key, entry_number, version, status,
                step_id, due_at, waiting_since, context, exit_reason, entered_at, finished_at, updated_at)
            SELECT %(flow)s, v.customer, v.key, v.number, v.version, v.status, v.step, v.due_at, v.since,
                   v.context, v.reason, clock_timestamp(),
                   CASE WHEN v.status <> 'active' THEN clock_timestamp() END, clock_timestamp()
            FROM v
            ON CONFLICT DO NOTHING
            RETURNING id AS run_id, flow_id, customer_id, status
        ),
        reported AS ({
            batch_rows_sql(
                "(SELECT run_id, flow_id, customer_id, 'flow.entered' AS type, '' AS reason, '' AS step "
                "FROM entered "
                "UNION ALL "
                "SELECT e.run_id, e.flow_id, e.customer_id, 'flow.' || e.status, v.reason, v.at_step "
                "FROM entered AS e JOIN v ON v.customer = e.customer_id WHERE e.status <> 'active')"
            )
        })
        SELECT customer_id, run_id FROM entered
        """,
        {"rows": rows, "flow": flow.pk, "schema": connection.schema_name},
    )
    written = dict(cursor.fetchall())
    if written:
        outbox_kick()
    return written


def runs_finish(*, cursor, finished, versions=None):
    """Finish active runs: `finished` is a list of (run id, "completed"|"exited", reason, step id);
    `versions` ({run id: version}) records the flow version a run finished on when it moved to a
    newer one on its way (the dispatcher's runs: their last position is this same write).

    One conditional UPDATE (`status = 'active'`): a run that is no longer active is left alone and
    reports nothing. Returns the ids that changed."""
    if not finished:
        return []
    for _, to, _, _ in finished:
        if to not in RUN_TRANSITIONS["active"]:
            raise ValueError(f"a run cannot become {to!r}")
    versions = versions or {}
    # One JSON document rather than five arrays (see engine._write).
    rows = json.dumps(
        [
            {
                "id": run_id,
                "status": to,
                "reason": reason,
                "step": step,
                "version": versions.get(run_id),
            }
            for run_id, to, reason, step in finished
        ]
    )
    runs = FlowRun._meta.db_table
    cursor.execute(
        f"""
        WITH v AS (
            SELECT * FROM jsonb_to_recordset(%(rows)s::jsonb)
                AS v (id bigint, status text, reason text, step text, version int)
        ),
        done AS (
            UPDATE {runs} AS r
            SET status = v.status, exit_reason = v.reason, step_id = '', due_at = NULL, waiting_since = NULL,
                version = coalesce(v.version, r.version), finished_at = clock_timestamp(),
                updated_at = clock_timestamp()
            FROM v
            WHERE r.id = v.id AND r.status = 'active'
            RETURNING r.id AS run_id, r.flow_id, r.customer_id, r.status, v.reason, v.step
        ),
        reported AS ({
            batch_rows_sql(
                "(SELECT run_id, flow_id, customer_id, 'flow.' || status AS type, reason, step FROM done)"
            )
        })
        SELECT run_id FROM done
        """,
        {"rows": rows, "schema": connection.schema_name},
    )
    changed = [row[0] for row in cursor.fetchall()]
    if changed:
        outbox_kick()
    return changed
