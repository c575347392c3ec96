"""Server time of the admin's main pages at a million customers; writes bench/results/admin.md.

    BENCH_DATABASE_URL=postgres://postgres@127.0.0.1:5432/crm_bench make bench ARGS="--scale full --only 8 --keep"
    DATABASE_URL=<the same URL> DEBUG=false python -m bench.admin_pages             # the kept data tenant
    DATABASE_URL=... DEBUG=false python -m bench.admin_pages --size 1000000        # or a tenant of its own

With `--schema` (default: `bench_data`, the tenant `make bench ... --keep` leaves) the pages are timed on
that tenant's data as it is; without such a tenant the script makes `bench-admin` itself (the bench's
own SQL generators: customers with tags, a campaign with one recipient per customer and its counters)
and keeps it. Either way it adds what the pages show and the bench rows do not make (idempotent):
a few segments, draft and sent campaigns, orders and notes of one customer.

Each page is requested through the full Django stack in-process (django.test.Client on the tenant's
host, logged in as the tenant's first admin: middleware, tenant by host, session auth, the admin, the
templates) once to warm up, then `--runs` times; the table has the median and the worst, and the SQL
statements of one request (counted in a separate request, since counting them costs time).
"""

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

from bench.core import machine_description

TARGET_MS = 300
RESULTS = Path(__file__).resolve().parent / "results" / "admin.md"


def _pages(*, campaign_id, customer_id, tag_id):
    """(label, path) of every page timed: what a marketer opens in a working day."""
    return [
        ("dashboard, before the first count is in (a worker counts)", "/admin/", "cold"),
        ("dashboard (customer figures cached)", "/admin/"),
        ("customer list", "/admin/customers/customer/"),
        ("customer list, city filter", "/admin/customers/customer/?city=Budapest"),
        ("customer list, tag filter", f"/admin/customers/customer/?tag={tag_id}"),
        ("customer list, consent filter", "/admin/customers/customer/?consent=yes"),
        ("customer list, lifetime value ≥ 50,000", "/admin/customers/customer/?total_spent_from=50000"),
        ("customer list, search by name", "/admin/customers/customer/?q=anna+kov%C3%A1cs"),
        ("customer list, search by email", "/admin/customers/customer/?q=customer7777"),
        ("customer list, ordered by lifetime value", "/admin/customers/customer/?o=-6"),
        ("customer profile", f"/admin/customers/customer/{customer_id}/change/"),
        ("customer edit form", f"/admin/customers/customer/{customer_id}/change/?edit=1"),
        ("order list", "/admin/customers/order/"),
        ("segment list", "/admin/segments/segment/"),
        ("campaign list", "/admin/campaigns/campaign/"),
        ("campaign page (sent, 1M recipients)", f"/admin/campaigns/campaign/{campaign_id}/change/"),
        ("campaign stats (1M recipients)", f"/admin/tracking/campaignreport/{campaign_id}/stats/"),
        ("campaign reports list", "/admin/tracking/campaignreport/"),
    ]


def _tenant(schema, size, log):
    # Models and the workloads that use them load after django.setup() (main calls it first).
    from django.db import connection
    from django_tenants.utils import schema_context

    from bench import data
    from bench.workloads import w8_stats
    from tenancy.models import Tenant

    connection.set_schema_to_public()
    tenant = Tenant.objects.filter(schema_name=schema).first()
    if tenant is None:
        log(f"no tenant {schema}: making bench-admin with {size:,} customers (minutes)")
        tenant = data.scratch_tenant_create(slug="bench-admin", with_admin=True)
        schema = tenant.schema_name
    grown = data.customers_grow(schema=schema, size=size) if size else 0.0
    if grown:
        log(f"grown to {size:,} customers in {grown:.0f} s")
    campaign = w8_stats._campaign(schema)
    with schema_context(schema):
        _extras(campaign)
    return tenant, campaign


def _extras(campaign):
    """Segments, drafts, orders and notes: what the list pages and the profile show."""
    from django.utils import timezone  # with the models below, after django.setup()

    from campaigns.models import Campaign
    from customers.models import Customer, Interaction, Order
    from segments.models import Segment

    for name, rules in (
        (
            "Budapest",
            {"combinator": "and", "rules": [{"field": "city", "operator": "=", "value": "Budapest"}]},
        ),
        (
            "Big spenders",
            {"combinator": "and", "rules": [{"field": "total_spent", "operator": ">", "value": 50000}]},
        ),
        ("VIP", {"combinator": "and", "rules": [{"field": "tags", "operator": "contains", "value": "vip"}]}),
    ):
        Segment.objects.get_or_create(name=f"bench: {name}", defaults={"rules": rules})
    # Sent three days ago, as its recipients say (row 8 leaves the campaign without a date).
    Campaign.objects.filter(pk=campaign.pk, sent_at__isnull=True).update(
        sent_at=timezone.now() - timezone.timedelta(days=3),
        started_at=timezone.now() - timezone.timedelta(days=3),
    )
    for n in range(1, 11):
        Campaign.objects.get_or_create(
            name=f"bench: draft {n}", defaults={"subject": f"Draft {n}", "html_body": "<p>Hello</p>"}
        )
    customer = Customer.objects.order_by("id").first()
    if not Order.objects.filter(customer=customer).exists():
        now = timezone.now()
        for n in range(1, 13):
            Order.objects.create(
                external_id=f"bench-admin-{n}", number=str(1000 + n), customer=customer, total=12345 * n,
                currency="HUF", status="paid", placed_at=now - timezone.timedelta(days=n * 9),
            )  # fmt: skip
        for n in range(1, 31):
            Interaction.objects.create(
                customer=customer, kind="note", body=f"Called them ({n})", occurred_at=now
            )
    return customer


def _time_pages(client, pages, runs, log, forget):
    from django.db import connection  # after django.setup()
    from django.test.utils import CaptureQueriesContext

    rows = []
    for label, url, *how in pages:
        response = client.get(url)  # warm-up (and the status check)
        if response.status_code != 200:
            raise RuntimeError(f"{url} answered {response.status_code}")
        times, cpu = [], []
        for _ in range(runs):
            if how == ["cold"]:
                forget()
            started, started_cpu = time.perf_counter(), time.process_time()
            client.get(url)
            times.append((time.perf_counter() - started) * 1000)
            cpu.append((time.process_time() - started_cpu) * 1000)
        if how == ["cold"]:
            forget()
        with CaptureQueriesContext(connection) as queries:
            client.get(url)
        row = {
            "page": label,
            "url": url,
            "median": statistics.median(times),
            "worst": max(times),
            "cpu": statistics.median(cpu),
            "sql": sum(float(query["time"]) for query in queries.captured_queries) * 1000,
            "queries": len(queries),
        }
        log(
            f"{label}: {row['median']:.0f} ms median, {row['worst']:.0f} ms worst, Python CPU "
            f"{row['cpu']:.0f} ms, SQL {row['sql']:.0f} ms in {row['queries']} statements"
        )
        rows.append(row)
    return rows


def _write(rows, *, customers, recipients, runs, out, notes):
    lines = [
        "# Admin pages at a million customers",
        "",
        f"Server time of each page (in-process, full Django stack, logged in as the tenant's admin), median "
        f"and worst of {runs} requests after a warm-up; {customers:,} customers, a sent campaign with "
        f"{recipients:,} recipients. Target: every page under {TARGET_MS} ms. Made by `python -m "
        "bench.admin_pages` (its docstring says how).",
        "",
        "| page | median ms | worst ms | Python CPU ms | SQL ms | CPU + SQL ms | statements | < 300 ms |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for row in rows:
        own = row["cpu"] + row["sql"]
        if row["median"] < TARGET_MS:
            verdict = "yes"
        elif own < TARGET_MS:
            verdict = "CPU + SQL only"
        else:
            verdict = "no"
        lines.append(
            f"| {row['page']} (`{row['url']}`) | {row['median']:.0f} | {row['worst']:.0f} | {row['cpu']:.0f} "
            f"| {row['sql']:.0f} | {own:.0f} | {row['queries']} | {verdict} |"
        )
    lines += [
        "",
        "Python CPU is the median CPU time of the serving process per request (what the page costs without "
        "waiting for a core); SQL is the database time of one request (a separate one, timed by Django's "
        "debug cursor). On a shared machine the wall-clock figures move with the other work on it; their "
        "sum is what a quiet machine would show.",
        "",
        "Machine: "
        + ", ".join(f"{key} {value}" for key, value in machine_description().items())
        + "; load average (1, 5, 15 min) at the end: "
        + " ".join(f"{value:.2f}" for value in os.getloadavg()),
        "",
    ]
    if notes:
        lines += [notes.strip(), ""]
    out.parent.mkdir(parents=True, exist_ok=True)
    previous = out.read_text() if out.exists() else ""
    marker = "## What was fixed"
    if marker in previous:  # the hand-written part below the table survives a new run
        lines += [previous[previous.index(marker) :].rstrip(), ""]
    out.write_text("\n".join(lines))


def main(argv=None):
    parser = argparse.ArgumentParser(prog="bench.admin_pages", description=__doc__)
    parser.add_argument("--schema", default="bench_data", help="the tenant's schema (default bench_data)")
    parser.add_argument("--size", type=int, default=1_000_000, help="grow the tenant to this many customers")
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--only", help="time only pages whose label contains this")
    parser.add_argument("--out", default=str(RESULTS))
    args = parser.parse_args(argv)

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "crm_project.settings")
    os.environ.setdefault("DEBUG", "false")
    import django

    django.setup()
    from django.contrib.auth import get_user_model  # these need the apps django.setup() loaded
    from django.core.cache import cache
    from django.db import connection
    from django.test import Client
    from django_tenants.utils import schema_context

    from crm_project.dashboard import (
        CUSTOMER_FIGURES_KEY,
        CUSTOMER_FIGURES_SECONDS,
        CUSTOMER_RECOUNT_LOCK,
        dashboard_customers_count,
    )
    from customers.models import Customer, Tag

    def log(message):
        print(f"[admin-bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)

    tenant, campaign = _tenant(args.schema, args.size, log)
    domain = tenant.get_primary_domain().domain
    with schema_context(tenant.schema_name):
        user = get_user_model().objects.filter(is_superuser=True).order_by("id").first()
        customer = Customer.objects.order_by("id").first()
        tag_id = Tag.objects.filter(name="vip").values_list("id", flat=True).first()
        customers = Customer.objects.count()
        recipients = campaign.recipients.count()
        client = Client(HTTP_HOST=domain)
        client.force_login(user)
    connection.set_schema_to_public()
    pages = _pages(campaign_id=campaign.pk, customer_id=customer.pk, tag_id=tag_id)
    if args.only:
        pages = [page for page in pages if args.only in page[0]]

    def forget():
        """The dashboard's customer figures, as before the account's first count (its count already
        handed to a worker: the lock taken, so the run queues no task nobody here would take)."""
        with schema_context(tenant.schema_name):
            cache.delete(CUSTOMER_FIGURES_KEY)
            cache.set(CUSTOMER_RECOUNT_LOCK, 1, 60)
        connection.set_schema_to_public()

    rows = _time_pages(client, pages, args.runs, log, forget)
    if not args.only:
        with schema_context(tenant.schema_name):
            recounts = []
            for _ in range(3):
                started = time.perf_counter()
                dashboard_customers_count()
                recounts.append((time.perf_counter() - started) * 1000)
        connection.set_schema_to_public()
        notes = (
            f"The worker's count of the dashboard's customer figures (off the request, at most once per "
            f"{CUSTOMER_FIGURES_SECONDS // 60} minutes): {statistics.median(recounts):.0f} ms, median of 3."
        )
        log(notes)
        _write(
            rows, customers=customers, recipients=recipients, runs=args.runs, out=Path(args.out), notes=notes
        )
        log(f"wrote {args.out}")
    over = [row["page"] for row in rows if row["median"] >= TARGET_MS]
    return 1 if over else 0


if __name__ == "__main__":
    sys.exit(main())
