"""Entering a flow: the re-entry policy, then each entering run's first steps performed in the
entering transaction, by the engine's own step code (engine.runs_advance: exit rules, branches, the
send window, versions decided in one place), and the run written once, in the state those steps
leave it in.

Why: a run written `active` and due at once cost a second transaction for every entrant: the
dispatcher claimed it, performed its first steps in its own Python, and wrote it a second time
(every index of flow_runs again) with a second event row (BENCHMARKS row 9: 100,000 customers
entering a one-email flow). Now a one-email flow's run is written completed, with its message
queued, its step log and both events, in the transaction that enters it; a flow that starts with a
delay writes its runs waiting at the next step.

What entry does not perform stays for the dispatcher as before: a run still moving after every
step (a flow longer than MAX_STEPS) is written active and due now, and the dispatcher is kicked."""

import logging
from collections import defaultdict

from django.db import connection, transaction
from django.utils import timezone

from . import engine
from .runs import runs_fresh, runs_insert
from .work import flows_dispatch_mark

logger = logging.getLogger(__name__)


def runs_enter(*, flow, entries):
    """Enter customers into an active flow: `entries` are (customer_id, trigger key, context dict);
    the first entry of a customer counts. The trigger key is the entry key (re-entry `never`: "once"),
    unique per flow and customer, so entering is idempotent. Returns the new run ids."""
    if not entries or flow.status != "active":
        return []
    wanted = {}
    for customer_id, key, context in entries:
        wanted.setdefault(customer_id, ("once" if flow.reentry == "never" else key, context or {}))
    now = timezone.now()
    first_step = flow.steps[0]["id"] if flow.steps else ""
    with transaction.atomic(), connection.cursor() as cursor:
        fresh = runs_fresh(cursor, flow=flow, customer_ids=list(wanted))
        if not fresh:
            return []
        runs = [
            engine.Run(
                id=None,
                flow_id=flow.pk,
                customer_id=customer_id,
                step_id=first_step,
                version=flow.version,
                entry_number=number,
                waiting_since=None,
                context=wanted[customer_id][1],
                due_at=now,
                entry_key=wanted[customer_id][0],
            )
            for customer_id, number in sorted(fresh.items())
        ]
        flows, batch = {flow.pk: flow}, engine.Batch()
        engine.runs_advance(runs, flows, done=defaultdict(dict), batch=batch, now=now)
        written = runs_insert(cursor, flow=flow, runs=runs)
        for run in runs:
            run.id = written.get(run.customer_id)
        # What the steps of a run that was not written (a concurrent entry won) did is dropped with it.
        batch.logs = [log for log in batch.logs if log[0].id is not None]
        batch.tags_add = [tag for tag in batch.tags_add if tag[0] in written]
        batch.tags_remove = [tag for tag in batch.tags_remove if tag[0] in written]
        queued = engine.effects_write(cursor, flows, batch, now)
        waiting = [run.due_at for run in runs if run.id is not None and run.finished is None]
        if queued:
            engine.senders_kick()
        if waiting and min(waiting) <= now:
            dispatcher_kick()
        elif queued or waiting:
            # The tenant's dispatch work falls due with its next run (or now, for a queued message:
            # the tick sends what a lost sender kick leaves), in this transaction.
            flows_dispatch_mark(due_at=now if queued else min(waiting))
    return sorted(written.values())


def dispatcher_kick():
    """Dispatch the tenant's due runs once this transaction commits; the marker of its dispatch work
    is set due in the transaction, so a lost kick is only late by one tick."""
    from .tasks import dispatch_flows_tenant  # noqa: PLC0415  (flows.tasks imports the engine and triggers)

    schema = connection.schema_name
    flows_dispatch_mark()

    def kick():
        try:
            dispatch_flows_tenant.apply_async(headers={"_schema_name": schema}, retry=False)
        except Exception:  # beat dispatches within its tick anyway
            logger.warning("could not enqueue the flow dispatcher; beat will dispatch", exc_info=True)

    transaction.on_commit(kick)
