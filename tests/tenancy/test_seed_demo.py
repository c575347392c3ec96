import io

from django.core.management import call_command
from django.db import connection
from django.db.models import Count, Q, Sum
from django_tenants.utils import schema_context

from campaigns.models import Campaign, EmailTemplate
from customers.models import Customer
from flows.models import Flow, FlowRun
from segments.models import Segment
from tenancy.models import Tenant


def test_it_seeds_a_working_demo_tenant_once(db):
    call_command(
        "seed_demo",
        "--slug",
        "demo-test",
        "--domain",
        "demo-test.localhost",
        "--customers",
        "120",
        stdout=io.StringIO(),
    )
    out = io.StringIO()
    call_command("seed_demo", "--slug", "demo-test", "--domain", "demo-test.localhost", stdout=out)
    assert "left as it is" in out.getvalue()
    assert Tenant.objects.filter(schema_name="demo_test").count() == 1
    with schema_context("demo_test"):
        assert Customer.objects.count() == 120
        assert Customer.objects.filter(tags__isnull=False).exists()
        # The newsletter's template, and the welcome and abandoned-cart flows' (two each).
        assert Segment.objects.count() == 1 and EmailTemplate.objects.filter(kind="marketing").count() == 5
        assert Campaign.objects.get().status == "draft"
        assert sorted(Flow.objects.values_list("name", "status")) == [
            ("Abandoned cart", "active"),
            ("Welcome series", "active"),
        ]
        assert FlowRun.objects.filter(flow__name="Abandoned cart", status="active").count() == 5
        # The aggregates are what the services would keep: counting orders only.
        for customer in Customer.objects.annotate(
            n=Count("orders", filter=~Q(orders__status__in=["cancelled", "refunded"])),
            s=Sum("orders__total", filter=~Q(orders__status__in=["cancelled", "refunded"])),
        )[:50]:
            assert customer.order_count == customer.n
            assert customer.total_spent == (customer.s or 0)
    connection.set_schema_to_public()
