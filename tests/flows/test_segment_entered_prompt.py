"""`segment_entered` without waiting for the sweep: a customer written through customers' services (a
profile change, tags, an order) is noted in the writer's transaction, and the dispatcher's next tick
enters them; the write pays one cheap statement for it; the sweep stays the repair path."""

from decimal import Decimal

from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from django_tenants.utils import schema_context

from customers import hooks
from customers.services import customer_consent_record, customer_update, customers_tag, order_upsert
from flows import triggers
from flows.models import FlowRun, FlowSegmentChange
from flows.tasks import flows_tenant_work
from flows.work import DISPATCH_WORK, flows_next_due
from segments.models import Segment
from tenancy.models import TenantWork
from tenancy.work import work_marks_forget, work_pending

from .conftest import customer, entered_customers, make_active_flow, make_segment_flow


def test_it_enters_a_customer_whose_profile_change_makes_them_match_on_the_next_tick(tenant, api):
    work_marks_forget()
    flow_id = make_segment_flow(api, [{"field": "city", "operator": "=", "value": "Szeged"}])
    anna, bela = customer("anna@example.com", city="Pécs"), customer("bela@example.com", city="Pécs")
    TenantWork.objects.filter(kind=DISPATCH_WORK).delete()

    customer_update(customer=anna, data={"city": "Szeged"})
    customer_update(customer=bela, data={"first_name": "Béla"})  # changed, still not in the segment

    assert work_pending()[DISPATCH_WORK] <= timezone.now()  # the next beat tick visits this tenant
    flows_tenant_work()  # that tick, without any sweep

    assert entered_customers(flow_id) == [anna.pk]
    assert FlowRun.objects.get(flow_id=flow_id, customer=anna).status == "completed"
    # What the tick looked at is gone; Anna is noted again by the flow's own tag step.
    assert list(FlowSegmentChange.objects.values_list("customer_id", flat=True)) == [anna.pk]
    flows_tenant_work()
    triggers.flow_triggers_sweep()  # the sweep (the repair path) agrees and enters nobody twice
    assert entered_customers(flow_id) == [anna.pk]


def test_it_enters_on_the_next_tick_when_tags_change_or_an_order_arrives(
    tenant, api, django_capture_on_commit_callbacks
):
    tagged_flow = make_segment_flow(api, [{"field": "tags", "operator": "contains", "value": "vip"}], "VIP")
    spender_flow = make_segment_flow(api, [{"field": "total_spent", "operator": ">=", "value": "100"}], "Big")
    anna, bela = customer("anna@example.com"), customer("bela@example.com")

    customers_tag(customer_ids=[anna.pk], tag_names=["vip"])
    with django_capture_on_commit_callbacks(execute=True):  # orders reach flows after commit
        order_upsert(
            data={
                "external_id": "o-1",
                "customer": bela.pk,
                "total": Decimal("150.00"),
                "placed_at": timezone.now(),
                "status": "paid",
            }
        )
    flows_tenant_work()

    assert entered_customers(tagged_flow) == [anna.pk]
    assert entered_customers(spender_flow) == [bela.pk]


def test_it_enters_on_the_next_tick_when_an_admin_records_consent(tenant, api, admin_user):
    flow_id = make_segment_flow(
        api, [{"field": "email_marketing", "operator": "=", "value": True}], "Opted in"
    )
    anna = customer("anna@example.com", consent=False)

    customer_consent_record(customer=anna, give=True, reason="signed the form at the till", author=admin_user)
    flows_tenant_work()

    assert entered_customers(flow_id) == [anna.pk]


def test_it_costs_a_customer_write_one_statement_and_nothing_without_amake_segment_flow(tenant, api):
    anna = customer("anna@example.com", city="Pécs")
    work_marks_forget()

    def statements(city):
        with CaptureQueriesContext(connection) as queries:
            customer_update(customer=anna, data={"city": city})
        return len(queries)

    def without_hook(city):
        saved = hooks.customers_changed[:]
        hooks.customers_changed.clear()
        try:
            return statements(city)
        finally:
            hooks.customers_changed.extend(saved)

    assert statements("Győr") - without_hook("Pécs") == 1  # no segment flow: nothing noted
    assert not FlowSegmentChange.objects.exists()
    make_segment_flow(api, [{"field": "city", "operator": "=", "value": "Szeged"}])
    statements("Győr")  # noted, and the dispatcher marked (work_mark_soon: once a second per process)
    assert list(FlowSegmentChange.objects.values_list("customer_id", flat=True)) == [anna.pk]
    assert flows_next_due() is not None  # the hourly repair of markers finds the noted customer
    assert statements("Pécs") - without_hook("Győr") == 1  # noted already: the note is the statement


def test_it_waits_for_the_first_sweep_before_entering_changed_customers(tenant, api):
    segment = Segment.objects.create(
        name="Szeged",
        kind="dynamic",
        rules={"combinator": "and", "rules": [{"field": "city", "operator": "=", "value": "Szeged"}]},
    )
    flow_id = make_active_flow(
        api,
        {
            "name": "No backfill",
            "trigger": {"type": "segment_entered", "segment": segment.pk},
            "steps": [{"id": "t", "type": "tag", "add": ["entered"]}],
        },
    )
    already = customer("already@example.com", city="Szeged")
    customer_update(customer=already, data={"first_name": "Already"})

    flows_tenant_work()  # before the first sweep: activation never reaches back in time
    triggers.flow_triggers_sweep()

    assert entered_customers(flow_id) == []
    assert FlowRun.objects.get(flow_id=flow_id, customer=already).entry_key == "baseline"


def test_it_keeps_each_tenants_changes_to_itself(tenant, other_tenant, api):
    flow_id = make_segment_flow(api, [{"field": "city", "operator": "=", "value": "Szeged"}])
    anna = customer("anna@example.com", city="Pécs")
    with schema_context(other_tenant.schema_name):
        stranger = customer("stranger@example.com", city="Pécs")
        customer_update(customer=stranger, data={"city": "Szeged"})
        assert not FlowSegmentChange.objects.exists()  # no segment flow in this tenant

    customer_update(customer=anna, data={"city": "Szeged"})
    flows_tenant_work()

    assert entered_customers(flow_id) == [anna.pk]
