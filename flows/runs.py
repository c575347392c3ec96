"""Runs: entering them (set-based, the re-entry policy as the unique entry key) and the one place a
run's status changes (`RUN_TRANSITIONS`, one conditional UPDATE per batch), each change reported to
the outbox in the same statement (`flow.entered`, `flow.exited`, `flow.completed`, as batch rows:
flows.outbox)."""

import json

from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection

from customers.models import Customer
from events.services import outbox_kick

from .models import FlowRun
from .outbox import batch_rows_sql

# active -> completed (walked to the end, or an exit step) | exited (exit rules, a removed step,
# an archived flow). Nothing leaves completed or exited.
RUN_TRANSITIONS = {"active": {"completed", "exited"}}


def runs_enter(*, flow, entries):
    """Enter customers into an active flow: `entries` are (customer_id, trigger key, context dict).

    One statement whatever the number: the unique (flow, customer, entry key) makes it idempotent and
    is the re-entry policy (`never`: the key is "once"; otherwise the trigger's own key, and not while
    the customer has an active run of the flow, nor within `after_days` of the last entry). The
    "not while active" part holds under concurrency too: the partial unique index
    `flow_run_one_active` makes a second transaction's entry wait for the first and then do nothing. Each run
    is due at once; `flow.entered` goes to the outbox in the same statement. Returns the new run ids."""
    if not entries or flow.status != "active":
        return []
    reentry = flow.reentry
    after_days = reentry.get("after_days") if isinstance(reentry, dict) else None
    first_step = flow.steps[0]["id"] if flow.steps else ""
    runs = FlowRun._meta.db_table
    # One JSON document rather than three arrays: the driver quotes a string at C speed, while
    # arrays of a thousand items cost more to quote (client-side binding) than the statement to run.
    rows = json.dumps(
        [{"customer_id": pk, "key": key, "context": context or {}} for pk, key, context in entries],
        cls=DjangoJSONEncoder,
    )
    key = "'once'" if reentry == "never" else "v.key"
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            WITH v AS (
                SELECT DISTINCT ON (customer_id) customer_id, key, context
                FROM jsonb_to_recordset(%(rows)s::jsonb) AS v (customer_id bigint, key text, context jsonb)
                ORDER BY customer_id
            ),
            fresh AS (
                SELECT v.customer_id, {key} AS entry_key, v.context, p.runs
                FROM v JOIN {Customer._meta.db_table} AS c ON c.id = v.customer_id AND c.erased_at IS NULL
                -- What the policy needs of each customer's earlier runs of the flow, in one lookup per
                -- customer through (customer_id, flow_id): an aggregate LATERAL stays a per-row probe.
                -- As a NOT EXISTS it became an anti join, which the planner, underestimating a flow's
                -- runs (a new flow has no statistics until the next ANALYZE), ran against all the
                -- flow's active runs materialised, for every entering customer: quadratic (100,000
                -- customers entering a flow took minutes). `flow_id + 0` keeps it off the flow's
                -- indexes, which it would scan for the same reason.
                CROSS JOIN LATERAL (
                    SELECT count(*) AS runs, count(*) FILTER (WHERE p.status = 'active') AS active,
                           max(p.entered_at) AS last_entered
                    FROM {runs} AS p WHERE p.customer_id = v.customer_id AND p.flow_id + 0 = %(flow)s
                ) AS p
                WHERE p.active = 0
                  AND (%(after_days)s::int IS NULL OR p.last_entered IS NULL
                       OR p.last_entered <= clock_timestamp() - make_interval(days => %(after_days)s::int))
            ),
            entered AS (
                INSERT INTO {runs} (flow_id, customer_id, entry_key, entry_number, version, status, step_id,
                                    due_at, context, exit_reason, entered_at, updated_at)
                SELECT %(flow)s, fresh.customer_id, fresh.entry_key, 1 + fresh.runs,
                       %(version)s, 'active', %(step)s, clock_timestamp(), fresh.context, '',
                       clock_timestamp(), clock_timestamp()
                FROM fresh
                -- No conflict target: the entry key (the policy) and the one active run per customer
                -- (flow_run_one_active) both turn a concurrent second entry into nothing, not an error.
                ON CONFLICT DO NOTHING
                RETURNING id AS run_id, flow_id, customer_id
            ),
            reported AS ({
                batch_rows_sql(
                    "(SELECT run_id, flow_id, customer_id, 'flow.entered' AS type, '' AS reason, '' AS step "
                    "FROM entered)"
                )
            })
            SELECT run_id FROM entered ORDER BY run_id
            """,
            {
                "rows": rows,
                "flow": flow.pk,
                "version": flow.version,
                "step": first_step,
                "after_days": after_days,
                "schema": connection.schema_name,
            },
        )
        ids = [row[0] for row in cursor.fetchall()]
    if ids:
        outbox_kick()
    return ids


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
