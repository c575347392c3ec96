"""Writes of the flows app: flows and their state machine, versions, custom events.

Every status change of a flow goes through `flow_transition` (one table of allowed transitions, one
conditional UPDATE that checks one row changed); runs change status only in flows.runs."""

import json
import logging

from django.core.exceptions import ValidationError
from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection, transaction
from django.utils import timezone

from campaigns.senders import sender_problem
from customers.models import Customer, Interaction

from . import triggers
from .definitions import DEFINITION_FIELDS, validate_definition
from .models import CustomEvent, Flow, FlowRun, FlowVersion
from .runs import runs_finish
from .work import SWEEP_TRIGGERS, flows_dispatch_mark, flows_sweep_mark

logger = logging.getLogger(__name__)

TRANSITIONS = {
    "draft": {"active", "archived"},
    "active": {"paused", "archived"},
    "paused": {"active", "archived"},
    "archived": set(),
}
EDITABLE = ("name", "from_email", "from_name") + DEFINITION_FIELDS


class FlowStateError(Exception):
    """An illegal transition or edit (the API's 409)."""


def _definition(flow):
    return {field: getattr(flow, field) for field in DEFINITION_FIELDS}


def _has_nul(value):
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_has_nul(k) or _has_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_nul(item) for item in value)
    return False


def _validate(*, data):
    for field, value in data.items():
        if _has_nul(value):  # PostgreSQL refuses NUL characters in text and jsonb: a 400, not a 500
            raise ValidationError({field: ["NUL characters are not allowed."]})
    if "name" in data and (
        not isinstance(data["name"], str) or not data["name"].strip() or len(data["name"]) > 200
    ):
        raise ValidationError({"name": ["A name of 1 to 200 characters."]})
    validate_definition(data)
    if data.get("from_email"):
        problem = sender_problem(data["from_email"])
        if problem:
            raise ValidationError({"from_email": [problem]})


def flow_create(*, name, **fields):
    fields = {key: value for key, value in fields.items() if key in EDITABLE}
    data = {"trigger": {}, "steps": [], **fields, "name": name}
    _validate(data=data)
    return Flow.objects.create(name=name, **fields)


def flow_update(*, flow, **changes):
    """Edit a flow. A flow that was ever active gets a new version when its definition changes: runs
    in it continue at the step with the same id (engine), or leave when that step is gone."""
    changes = {key: value for key, value in changes.items() if key in EDITABLE}
    if flow.status == "archived":
        raise FlowStateError("An archived flow cannot be edited.")
    _validate(data={**_definition(flow), **changes, "from_email": changes.get("from_email", flow.from_email)})
    for key in ("from_name",):
        if key in changes and (not isinstance(changes[key], str) or len(changes[key]) > 200):
            raise ValidationError({key: ["Text of at most 200 characters."]})
    with transaction.atomic():
        locked = Flow.objects.select_for_update().get(pk=flow.pk)
        before = _definition(locked)
        for key, value in changes.items():
            setattr(locked, key, value)
        if locked.activated_at is not None and _definition(locked) != before:
            locked.version += 1
            FlowVersion.objects.create(flow=locked, version=locked.version, definition=_definition(locked))
        locked.save()
    return locked


def flow_delete(*, flow):
    if flow.status != "draft":
        raise FlowStateError(
            f"Only a draft flow can be deleted; this one is {flow.status}. Archive it instead."
        )
    flow.delete()


def flow_transition(*, flow, to):
    """Move a flow to `to` if the table allows it from its current status: one conditional UPDATE."""
    with transaction.atomic():
        current = Flow.objects.select_for_update().filter(pk=flow.pk).values_list("status", flat=True).first()
        if current is None:
            raise FlowStateError("The flow no longer exists.")
        if to not in TRANSITIONS[current]:
            raise FlowStateError(f"A {current} flow cannot become {to}.")
        fields = {"status": to, "updated_at": timezone.now()}
        if to == "active":
            if current == "draft":
                validate_definition(_definition(flow), complete=True)
                fields["activated_at"] = timezone.now()
                fields["swept_at"] = None
                FlowVersion.objects.get_or_create(
                    flow=flow, version=flow.version, defaults={"definition": _definition(flow)}
                )
        changed = Flow.objects.filter(pk=flow.pk, status=current).update(**fields)
        if changed != 1:
            raise FlowStateError("The flow changed meanwhile; try again.")
        if to == "active":  # its waiting runs and periodic triggers are the tenant's work again
            flows_dispatch_mark()
            if (flow.trigger or {}).get("type") in SWEEP_TRIGGERS:
                flows_sweep_mark()
        if to == "archived":
            # Runs of an archived flow leave at once, set-based.
            ids = list(FlowRun.objects.filter(flow_id=flow.pk, status="active").values_list("id", "step_id"))
            with connection.cursor() as cursor:
                runs_finish(
                    cursor=cursor, finished=[(pk, "exited", "flow archived", step) for pk, step in ids]
                )
    flow.refresh_from_db()
    return flow


def flow_activate(*, flow):
    return flow_transition(flow=flow, to="active")


def flow_pause(*, flow):
    return flow_transition(flow=flow, to="paused")


def flow_archive(*, flow):
    return flow_transition(flow=flow, to="archived")


def events_record(*, events):
    """Store custom events (`POST /api/events`), each once per `id`, each also an interaction on the
    customer's activity, and enter / wake flows for the new ones. `events` are dicts with event_id,
    name, customer_id, occurred_at, properties (ids, not Customer instances: a bulk caller has ids,
    and building a model instance per event cost a third of the whole ingest). Returns the ids that
    were new.

    One statement: INSERT ... ON CONFLICT DO NOTHING RETURNING (a repeated id, a retry of the webshop or
    the same id twice in one batch, is stored once and triggers nothing the second time, even under
    concurrency), and the activity entries of the rows it stored, written from its RETURNING in the
    same statement (building them as model instances cost more than all the statement's SQL)."""
    if not events:
        return []
    by_id = {}
    for event in events:
        by_id.setdefault(event["event_id"], event)
    events = list(by_id.values())
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            f"""
            WITH stored AS (
                INSERT INTO {CustomEvent._meta.db_table} (event_id, name, customer_id, occurred_at, properties, received_at)
                SELECT v.event_id, v.name, v.customer_id, v.occurred_at, v.properties, clock_timestamp()
                -- One JSON document, not five arrays: quoting big arrays costs more than the insert.
                FROM jsonb_to_recordset(%s::jsonb)
                     AS v (event_id text, name text, customer_id bigint, occurred_at timestamptz, properties jsonb)
                ON CONFLICT (event_id) DO NOTHING
                RETURNING event_id, name, customer_id, occurred_at, properties
            ),
            noted AS (
                INSERT INTO {Interaction._meta.db_table} (customer_id, kind, body, data, occurred_at, created_at)
                SELECT customer_id, 'custom_event', name,
                       jsonb_build_object('event_id', event_id, 'name', name, 'properties', properties),
                       occurred_at, clock_timestamp()
                FROM stored
            )
            SELECT event_id FROM stored
            """,
            [
                json.dumps(
                    [
                        {
                            "event_id": e["event_id"],
                            "name": e["name"],
                            "customer_id": e["customer_id"],
                            "occurred_at": e["occurred_at"].isoformat(),  # microseconds kept
                            "properties": e.get("properties") or {},
                        }
                        for e in events
                    ],
                    cls=DjangoJSONEncoder,
                )
            ],
        )
        stored = {row[0] for row in cursor.fetchall()}
        fresh = [e for e in events if e["event_id"] in stored]
        if fresh:
            triggers.events_arrived(
                events=[
                    (e["customer_id"], e["event_id"], e["name"], e.get("properties") or {}, e["occurred_at"])
                    for e in fresh
                ]
            )
    return [e["event_id"] for e in fresh]


def customer_for_event(*, customer_id=None, email=None):
    if customer_id is not None:
        return Customer.objects.filter(pk=customer_id, erased_at__isnull=True).first()
    return Customer.objects.filter(email=(email or "").strip().lower(), erased_at__isnull=True).first()


def customer_erased(*, customer_id, **_):
    """customers.hooks.customer_erased, inside the erase transaction: what the webshop told us about
    the customer (event properties, the context of their runs) goes; the runs and step log stay,
    without personal data, for the flow's figures."""
    CustomEvent.objects.filter(customer_id=customer_id).update(properties={})
    FlowRun.objects.filter(customer_id=customer_id).update(context={})
