"""The dispatcher's marker (tenancy/work.py) for flows: what keeps a tenant's flow tick coming, and
what the tick reads. A flow sender killed mid-batch leaves its messages `sending` under a lease: the
dispatch that reclaims them must come when the lease runs out, even when no run is left to move; a
paused flow's due runs are never claimed and never make the tenant due."""

from datetime import timedelta

import psycopg
from django.db import connection
from django.utils import timezone

from campaigns.models import CampaignRecipient
from flows import engine, sender
from flows.models import Flow, FlowRun
from flows.tasks import RECHECKS, flows_tenant_work
from flows.work import DISPATCH_WORK, dispatch_claim_seconds, flows_next_due
from tenancy.models import TenantWork
from tenancy.work import work_claim_due, work_mark, work_pending
from tests.conftest import verified_sender_domain
from tests.processes import database_url

from .conftest import customer, make_active_flow, make_template, post_event, time_passes

LEASE = 30


def _welcome_flow(api):
    """An hour after signing up, a welcome email. Entering performs the delay: the run waits at the
    email step (the dispatcher's work)."""
    verified_sender_domain("shop.example")
    template = make_template(name="Welcome", subject="Welcome", html="<p>Hi</p>")
    return make_active_flow(
        api,
        {
            "name": "Welcome",
            "trigger": {"type": "event", "name": "signed.up"},
            "steps": [
                {"id": "wait", "type": "delay", "hours": 1},
                {"id": "mail", "type": "email", "template": template.pk},
            ],
            "frequency_cap_hours": 0,
            "from_email": "news@shop.example",
        },
    )


def test_it_keeps_the_dispatch_due_until_a_flow_senders_lease_runs_out(tenant, api):
    _welcome_flow(api)
    anna = customer("anna@example.com")
    assert post_event(api, "e-1", anna, name="signed.up").status_code == 202
    time_passes()
    engine.flows_dispatch()  # the run ends; its email waits in the carrier
    (campaign_id, flow_id, cap), *_ = sender.carriers_with_work()
    TenantWork.objects.filter(kind=DISPATCH_WORK).delete()

    batch = sender.FlowStore(campaign_id, flow_id=flow_id, cap_hours=cap).claim(limit=10, lease_seconds=LEASE)

    # The sender died here: nothing moves, the message is held.
    held = CampaignRecipient.objects.get(pk=batch.claims[0].id)
    assert held.status == "sending"
    assert not FlowRun.objects.filter(status="active").exists()
    # The claim marked the tenant for when the lease can have run out, and a dispatch that finds
    # nothing else to do re-arms the marker for that moment instead of dropping it.
    assert timezone.now() + timedelta(seconds=LEASE - 5) < work_pending()[DISPATCH_WORK]
    assert flows_next_due() == held.lease_until


def test_it_reclaims_a_dead_senders_messages_when_the_dispatch_comes(tenant, api):
    _welcome_flow(api)
    anna = customer("anna@example.com")
    post_event(api, "e-1", anna, name="signed.up")
    time_passes()
    engine.flows_dispatch()
    (campaign_id, flow_id, cap), *_ = sender.carriers_with_work()
    batch = sender.FlowStore(campaign_id, flow_id=flow_id, cap_hours=cap).claim(limit=10, lease_seconds=LEASE)
    CampaignRecipient.objects.filter(pk=batch.claims[0].id).update(
        lease_until=timezone.now() - timedelta(seconds=1)
    )

    assert sender.leases_reclaim_expired() == 1

    assert CampaignRecipient.objects.get(pk=batch.claims[0].id).status == "pending"
    assert flows_next_due() <= timezone.now()  # a queued email: the next tick sends it


def test_it_neither_claims_nor_waits_for_the_due_runs_of_a_paused_flow(tenant, api):
    paused_id = _welcome_flow(api)
    anna, bela = customer("anna@example.com"), customer("bela@example.com")
    post_event(api, "e-1", anna, name="signed.up")
    Flow.objects.filter(pk=paused_id).update(status="paused")
    with connection.cursor() as cursor:
        cursor.execute("UPDATE flow_runs SET due_at = clock_timestamp() - interval '1 hour'")

    assert flows_next_due() is None
    assert engine.flows_dispatch().runs == 0
    assert FlowRun.objects.get(customer=anna).status == "active"  # waits for the flow to resume

    active_id = _welcome_flow(api)
    post_event(api, "e-2", bela, name="signed.up")
    time_passes()

    assert engine.flows_dispatch().runs == 1  # only the active flow's run
    assert FlowRun.objects.get(flow_id=active_id).status == "completed"
    assert FlowRun.objects.get(flow_id=paused_id).status == "active"


def test_it_hands_a_killed_dispatchers_tenant_to_a_tick_half_a_minute_later(tenant, settings):
    settings.FLOW_DISPATCH_SECONDS = 20
    work_mark(DISPATCH_WORK)
    now = timezone.now()
    connection.set_schema_to_public()
    try:
        (claim,) = [c for c in work_claim_due(DISPATCH_WORK, now=now) if c.schema_name == tenant.schema_name]
        # The task that took the claim dies with its worker: the claim is never done.
        later = now + timedelta(seconds=dispatch_claim_seconds() - 1)
        assert tenant.schema_name not in {c.schema_name for c in work_claim_due(DISPATCH_WORK, now=later)}

        lapsed = now + timedelta(seconds=dispatch_claim_seconds() + 1)
        again = [c for c in work_claim_due(DISPATCH_WORK, now=lapsed) if c.schema_name == tenant.schema_name]
    finally:
        connection.set_tenant(tenant)

    assert dispatch_claim_seconds() == 30
    assert len(again) == 1 and again[0].token != claim.token


def test_it_runs_one_dispatcher_per_tenant_and_the_second_steps_aside(tenant, api):
    _welcome_flow(api)
    anna = customer("anna@example.com")
    assert post_event(api, "e-1", anna, name="signed.up").status_code == 202
    time_passes()
    other = psycopg.connect(database_url(), autocommit=True)
    try:
        # Another worker's dispatcher of this tenant is at work: this one returns at once, its worker
        # slot free for the senders, and leaves the run to the one at work.
        other.execute(
            "SELECT pg_advisory_lock(%s, hashtext(%s))",
            [engine.DISPATCHER_LOCK_NAMESPACE, tenant.schema_name],
        )
        assert flows_tenant_work() is None
        assert FlowRun.objects.get(customer=anna).status == "active"
    finally:
        other.execute("SELECT pg_advisory_unlock_all()")
        other.close()
    assert flows_tenant_work().runs == 1
    assert FlowRun.objects.get(customer=anna).status == "completed"


def test_it_looks_again_after_letting_go_so_runs_entered_meanwhile_do_not_wait_for_a_tick(
    tenant, api, monkeypatch
):
    """A run that falls due while the dispatcher works, whose kick found it busy, is dispatched by the
    same task once it let go of the lock."""
    _welcome_flow(api)
    anna, bela = customer("anna@example.com"), customer("bela@example.com")
    assert post_event(api, "e-1", anna, name="signed.up").status_code == 202
    time_passes()
    real = engine.flows_dispatch
    calls = []

    def dispatch_while_bela_enters():
        outcome = real()
        if not calls:  # after this pass claimed the due runs, Béla's run falls due
            assert post_event(api, "e-2", bela, name="signed.up").status_code == 202
            time_passes()
        calls.append(outcome.runs)
        return outcome

    monkeypatch.setattr(engine, "flows_dispatch", dispatch_while_bela_enters)
    flows_tenant_work()
    assert calls == [1, 1]
    assert set(FlowRun.objects.values_list("status", flat=True)) == {"completed"}


def test_it_looks_again_a_few_times_at_most(tenant, monkeypatch):
    """Due runs it cannot claim (another transaction holds them, and kicks after its commit) do not
    keep the task spinning: a bounded number of looks, then beat's next tick."""
    passes = []
    monkeypatch.setattr(engine, "flows_dispatch", lambda: passes.append(1) or engine.DispatchOutcome())
    monkeypatch.setattr(engine, "runs_due", lambda: True)
    assert flows_tenant_work().runs == 0
    assert len(passes) == RECHECKS + 1
