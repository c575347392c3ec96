"""Two triggers for one customer at the same moment, each in its own transaction on its own connection:
re-entry `always` lets a customer walk a flow again, but never twice at once."""

import threading

import pytest
from django.db import connections, transaction
from django.utils import timezone
from django_tenants.utils import schema_context

from customers.models import Customer
from flows.entry import runs_enter
from flows.models import Flow, FlowRun, FlowStepLog
from tests.conftest import throwaway_tenant_create, throwaway_tenant_drop


@pytest.mark.django_db  # also makes pytest-django set up the test database when this module runs alone
def test_it_has_the_tenants_to_race_in(tenant):
    assert Customer.objects.count() == 0


@pytest.fixture
def race_tenant(django_db_setup, django_db_blocker):
    """A tenant with committed data (other connections see it), dropped after. Yields its schema."""
    with django_db_blocker.unblock():
        created = throwaway_tenant_create("flow-race", admin_password=None)
        try:
            yield created.tenant.schema_name
        finally:
            throwaway_tenant_drop(created.tenant)


def _enter_in_threads(schema, flow_id, customer_id, keys):
    """The first thread enters and holds its transaction open until the second has sent its own
    INSERT; then both commit. Returns the run ids each entered."""
    results, errors = [None, None], []
    first_inserted, second_sending = threading.Event(), threading.Event()

    def work(index):
        try:
            with schema_context(schema), transaction.atomic():
                flow = Flow.objects.get(pk=flow_id)
                if index == 1:
                    first_inserted.wait(10)
                    second_sending.set()
                results[index] = runs_enter(flow=flow, entries=[(customer_id, keys[index], {})])
                if index == 0:
                    first_inserted.set()
                    second_sending.wait(10)
                    # The second INSERT is on its way (it blocks here once the fix is in); give it time.
                    threading.Event().wait(0.5)
        except Exception as exc:  # surfaced by the test
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=work, args=(index,)) for index in (0, 1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert not errors, errors
    return results


def test_it_enters_one_run_when_two_triggers_race_with_reentry_always(race_tenant, django_db_blocker):
    with django_db_blocker.unblock(), schema_context(race_tenant):
        flow = Flow.objects.create(
            name="Race",
            status="active",
            trigger={"type": "event", "name": "cart.abandoned"},
            steps=[{"id": "wait", "type": "delay", "hours": 1}],
            reentry="always",
            activated_at=timezone.now(),
        )
        anna = Customer.objects.create(email="anna@example.com", email_marketing=True)

        results = _enter_in_threads(race_tenant, flow.pk, anna.pk, ["event:e-1", "event:e-2"])

    with django_db_blocker.unblock(), schema_context(race_tenant):
        assert FlowRun.objects.filter(flow=flow, customer=anna, status="active").count() == 1
        assert sorted(len(ids) for ids in results) == [0, 1]
        # `always` still lets her in again once that run is over.
        FlowRun.objects.filter(flow=flow).update(status="completed", due_at=None)
        assert len(runs_enter(flow=flow, entries=[(anna.pk, "event:e-3", {})])) == 1


def test_it_enters_one_run_when_two_triggers_race_and_the_first_run_ends_as_it_enters(
    race_tenant, django_db_blocker
):
    """The first run is written completed (its one step performed as it entered), so no active run
    holds the second back; both read the same earlier runs, and the customer's entry number lets
    only one of them in (the other would be a second message of the same round)."""
    with django_db_blocker.unblock(), schema_context(race_tenant):
        flow = Flow.objects.create(
            name="Race",
            status="active",
            trigger={"type": "event", "name": "cart.abandoned"},
            steps=[{"id": "mark", "type": "tag", "add": ["raced"]}],
            reentry={"after_days": 30},
            activated_at=timezone.now(),
        )
        anna = Customer.objects.create(email="anna@example.com", email_marketing=True)

        results = _enter_in_threads(race_tenant, flow.pk, anna.pk, ["event:e-1", "event:e-2"])

    with django_db_blocker.unblock(), schema_context(race_tenant):
        (run,) = FlowRun.objects.filter(flow=flow, customer=anna)
        assert (run.status, run.entry_number) == ("completed", 1)
        assert sorted(len(ids) for ids in results) == [0, 1]
        assert list(FlowStepLog.objects.filter(flow=flow).values_list("run_id", flat=True)) == [run.pk]
