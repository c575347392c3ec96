"""Outbox rows that stand for many events: a bulk import writes one compact row per thousand changed
customers in its own transaction, and the publisher expands each row into one message per event.

Why: a million customer.created payloads built and indexed inside the import cost more than the import
itself. The row records which customers changed, how and when, in the change's transaction, so nothing
is lost or reordered; the payload is rendered when the row is published (seconds later), so it is the
customer as the API returns it then: an erased customer's event carries no personal data.

The app that writes such rows registers how to render them (`batch_renderer_register`); the events
app never imports it (dependencies point down to events). A renderer runs in the row's tenant schema
and is not called when that schema is gone (the tenant was deleted: its events go nowhere).
"""

import hashlib

from django.db import connection
from django_tenants.utils import schema_context

_RENDERERS = {}

# At most this many events in one outbox row: a row is published whole or, after a failure, again
# whole (at least once; the event ids are the same every time).
BATCH_EVENTS = 1000


def batch_renderer_register(*, type, render):
    """`render(row)` -> the row's envelopes, in order: see `batch_envelope`."""
    _RENDERERS[type] = render


def batch_renderer(type):
    return _RENDERERS.get(type)


def batch_envelopes(row):
    """The envelopes of a batch row (its type's renderer), rendered in the row's tenant schema; none
    when the schema is gone."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", [row.tenant])
        if cursor.fetchone() is None:
            return []
    with schema_context(row.tenant):
        return _RENDERERS[row.type](row)


def batch_envelope(row, *, key, type, data):
    """One event of a batch row. Its id is derived from the row's id and `key` (the customer's id), so
    publishing the row again gives every event the id it had the first time."""
    return {
        "id": event_uuid(row.event_id, key),
        "type": type,
        "tenant": row.tenant,
        "occurred_at": _occurred_at(row),
        "data": data,
    }


def _occurred_at(row):
    """The row's time as the envelopes say it: formatted once per row, not once per event."""
    text = getattr(row, "_occurred_at_text", None)
    if text is None:
        text = row._occurred_at_text = row.occurred_at.isoformat()
    return text


def event_uuid(namespace, key):
    """str(uuid.uuid5(namespace, str(key))), computed as RFC 4122 says (SHA-1 of the namespace's bytes
    and the name, version 5, RFC variant) without building two UUID objects: a batch row of a
    thousand events spent a third of its rendering there."""
    digest = hashlib.sha1(namespace.bytes + str(key).encode(), usedforsecurity=False).hexdigest()
    variant = "89ab"[int(digest[16], 16) & 0x3]  # the top two bits of byte 8: 10
    return f"{digest[:8]}-{digest[8:12]}-5{digest[13:16]}-{variant}{digest[17:20]}-{digest[20:32]}"
