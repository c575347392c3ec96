"""customer.created / customer.updated for many customers at once (the CSV import), as batch rows of
the outbox (events.batches): one compact row per BATCH_EVENTS changed customers, written set-based in
the import's transaction, rendered into one event per customer when the row is published.

A batch row's data: {"ids": [customer ids, in order], "updated": {"<id>": [changed field names]}}; an
id not in "updated" was created.
"""

from django.db import connection

from events.batches import BATCH_EVENTS, batch_envelope, batch_renderer_register
from events.services import outbox_insert_sql

from .selectors import customer_list
from .services import customer_representation

BATCH_TYPE = "customers.batch"


def batch_rows_insert(cursor, *, touched_table):
    """Write the batch rows for the customers in `touched_table` (id, created, changed); one statement."""
    cursor.execute(
        outbox_insert_sql(
            event_type=BATCH_TYPE,
            data="""jsonb_build_object(
                        'ids', to_jsonb(array_agg(id ORDER BY id)),
                        'updated', COALESCE(jsonb_object_agg(id, changed) FILTER (WHERE NOT created), '{}')
                    )""",
            source=f"""(SELECT id, created, changed, (row_number() OVER (ORDER BY id) - 1) / {BATCH_EVENTS} AS part
                        FROM {touched_table}) AS touched""",
            group_by="part",
            order_by="part",
        ),
        {"schema": connection.schema_name},
    )
    return cursor.rowcount


def batch_render(row):
    """The row's events (in its tenant's schema: events.batches), each the customer as
    GET /api/customers/{id} returns it now (an erased customer: only {"id", "erased": true})."""
    ids, updated = row.data.get("ids", []), row.data.get("updated", {})
    payloads = _payloads(ids=ids)
    envelopes = []
    for customer_id in ids:
        changed = updated.get(str(customer_id))
        data = payloads.get(customer_id)
        if data is None:
            data = {"id": customer_id, "erased": True}
        elif changed is not None:
            data["changed"] = changed
        kind = "customer.created" if changed is None else "customer.updated"
        envelopes.append(batch_envelope(row, key=customer_id, type=kind, data=data))
    return envelopes


def _payloads(*, ids):
    """{id: the customer as the API shows it} (services.customer_payload, for many); erased customers
    are left out."""
    customers = customer_list().filter(pk__in=ids, erased_at__isnull=True)
    return {customer.pk: customer_representation(customer=customer) for customer in customers}


def register():
    batch_renderer_register(type=BATCH_TYPE, render=batch_render)
