"""flow.entered / flow.exited / flow.completed as batch rows of the outbox (events.batches): one compact
row per flow and BATCH_EVENTS events, written in the statement that moves the runs, rendered into
its events when the row is published.

Why: a flow that 100,000 customers enter emits 200,000 events. As one outbox row each, their rows
(six indexes, the customer's email joined in) cost as much as the runs themselves, and the publisher
loaded and marked each row on its own. A batch row holds what the events say and nothing personal:
the email is looked up when the row is published, so a customer erased before that gets no event
(as `customers.services._outbox_scrub` drops an erased customer's unpublished rows).

A batch row's data: {"flow_id", "flow_name", "version", "runs": [[type, run id, customer id, reason,
step], ...]} in run order (a run that entered and ended in one statement: entered first); reason and
step are those of flow.exited (empty for the others).
"""

from django.db import connection

from core.sql import id_array
from customers.models import Customer
from events.batches import BATCH_EVENTS, batch_envelope, batch_renderer_register
from events.services import outbox_insert_sql

from .models import Flow

BATCH_TYPE = "flows.batch"


# A run's events in the order they happened: entered first (a run that enters and ends in one
# statement has both), then how it ended.
EVENT_ORDER = "s.run_id, s.type <> 'flow.entered'"


def batch_rows_sql(source):
    """INSERT of the batch rows for `source` (a FROM item with run_id, flow_id, customer_id, type,
    reason, step): one row per flow and BATCH_EVENTS events, in run order. The tenant is the parameter
    `%(schema)s`; the caller kicks the publisher (outbox_kick) when it wrote any."""
    return outbox_insert_sql(
        event_type=BATCH_TYPE,
        data=f"""jsonb_build_object(
                    'flow_id', f.id, 'flow_name', f.name, 'version', f.version,
                    'runs', jsonb_agg(jsonb_build_array(s.type, s.run_id, s.customer_id, s.reason, s.step)
                                      ORDER BY {EVENT_ORDER})
                )""",
        source=f"""(SELECT *, (row_number() OVER (PARTITION BY flow_id ORDER BY {EVENT_ORDER}) - 1) / {BATCH_EVENTS} AS part
                    FROM {source} AS s) AS s
                   JOIN {Flow._meta.db_table} AS f ON f.id = s.flow_id""",
        group_by="f.id, s.part",
        order_by="min(s.run_id)",
    )


def batch_render(row):
    """The row's events (in its tenant's schema: events.batches), in run order; none for a customer
    erased since."""
    data = row.data
    runs = data.get("runs", [])
    with connection.cursor() as cursor:
        # The ids as one array literal: a thousand-item IN list was half of rendering the row.
        cursor.execute(
            f"SELECT id, email FROM {Customer._meta.db_table} WHERE id = ANY(%s::bigint[]) AND erased_at IS NULL",
            [id_array({run[2] for run in runs})],
        )
        emails = dict(cursor.fetchall())
    envelopes, seen = [], set()
    for kind, run_id, customer_id, reason, step in runs:
        # An event's id comes from the row's and the run's: a run that entered and ended in one
        # statement has two events in the row, and the second one's key adds its type.
        key = run_id if run_id not in seen else f"{run_id}:{kind}"
        seen.add(run_id)
        if customer_id not in emails:
            continue
        event = {
            "flow_id": data["flow_id"],
            "flow_name": data["flow_name"],
            "version": data["version"],
            "run_id": run_id,
            "customer_id": customer_id,
            "email": emails[customer_id],
        }
        if kind == "flow.exited":
            event.update(reason=reason, step=step or None)
        envelopes.append(batch_envelope(row, key=key, type=kind, data=event))
    return envelopes


def register():
    batch_renderer_register(type=BATCH_TYPE, render=batch_render)
