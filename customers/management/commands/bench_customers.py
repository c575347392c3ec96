"""python manage.py bench_customers --rows 1000000: BENCHMARKS.md rows 1 and 6 in a throwaway tenant."""

import tempfile
import time
from pathlib import Path

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import connection
from django_tenants.utils import schema_context
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from customers import benchmarks
from customers.models import Customer
from customers.selectors import SEARCH_SQL
from events.models import OutboxEvent
from tenancy.models import Domain, Tenant
from tenancy.services import tenant_create


class Command(BaseCommand):
    help = "Benchmark the customers import (vs raw COPY) and list search/ordering (vs SQL) at N customers."

    def add_arguments(self, parser):
        parser.add_argument("--rows", type=int, default=100_000)
        parser.add_argument("--keep", action="store_true", help="Keep the benchmark tenant afterwards.")
        parser.add_argument("--output", help="Also write the result table (Markdown) to this file.")

    def handle(self, *args, rows, keep=False, output=None, **options):
        slug = f"bench-customers-{int(time.time())}"
        created = tenant_create(slug=slug, domain=f"{slug}.localhost", name="Customers benchmark")
        schema = created.tenant.schema_name
        try:
            table = self._run(schema, created.domain.domain, rows)
        finally:
            if not keep:
                connection.set_schema_to_public()
                with connection.cursor() as cursor:
                    cursor.execute(f'DROP SCHEMA "{schema}" CASCADE')
                OutboxEvent.objects.filter(tenant=schema).delete()
                Domain.objects.filter(tenant__schema_name=schema).delete()
                Tenant.objects.filter(schema_name=schema).delete()
        self.stdout.write(table)
        if output:
            Path(output).write_text(table + "\n", encoding="utf-8")

    def _run(self, schema, host, rows):
        with tempfile.TemporaryDirectory() as tmp, schema_context(schema):
            path = benchmarks.customers_csv_generate(path=Path(tmp) / "customers.csv", rows=rows)
            result = benchmarks.bench_import(path=path, rows=rows)
            raw = result["raw"]
            plain, plain_report = result["without_events"]
            ours, report = result["with_events"]
            self.stderr.write(f"raw COPY runs (rows/s): {result['raw_runs']}")
            self.stderr.write(f"import without events: {plain_report.as_dict()}")
            self.stderr.write(f"import with events: {report.as_dict()}")
            with connection.cursor() as cursor:
                # Give the ordering something to order by, then fresh statistics.
                cursor.execute(
                    f"UPDATE {Customer._meta.db_table} SET total_spent = round((random() * 5000)::numeric, 2), "
                    "order_count = 1 WHERE random() < 0.4"
                )
                cursor.execute(f"VACUUM ANALYZE {Customer._meta.db_table}")
            user = get_user_model().objects.create_user(
                username="bench@example.com", password="bench-password-1"
            )
            client = APIClient(HTTP_HOST=host)
            client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
            table = Customer._meta.db_table
            search_api, search_sql = benchmarks.bench_list(
                client=client,
                path="/api/customers?search=kata.varga",
                sql=f"SELECT * FROM {table} WHERE {SEARCH_SQL} LIKE %s ORDER BY id DESC LIMIT 50",
                params=["%kata.varga%"],
            )
            name_api, name_sql = benchmarks.bench_list(
                client=client,
                path="/api/customers?search=M%C3%A1rta%20Papp%201234",
                sql=f"SELECT * FROM {table} WHERE {SEARCH_SQL} LIKE %s AND {SEARCH_SQL} LIKE %s "
                f"AND {SEARCH_SQL} LIKE %s ORDER BY id DESC LIMIT 50",
                params=["%márta%", "%papp%", "%1234%"],
            )
            order_api, order_sql = benchmarks.bench_list(
                client=client,
                path="/api/customers?ordering=-total_spent",
                sql=f"SELECT * FROM {table} ORDER BY total_spent DESC, id DESC LIMIT 50",
            )
        lines = [
            f"Customers benchmarks at {rows:,} customers",
            "",
            "| # | workload | ours | baseline | ratio | target |",
            "|---|---|---|---|---|---|",
            f"| 1 | import {rows:,} customers (CSV), events on (default) | {ours:,.0f} rows/s | "
            f"raw COPY {raw:,.0f} rows/s | {ours / raw:.0%} | >= 60% |",
            f"| 1 | import {rows:,} customers (CSV), --no-events | {plain:,.0f} rows/s | "
            f"raw COPY {raw:,.0f} rows/s | {plain / raw:.0%} | >= 60% |",
            f"| 6 | GET /api/customers?search=kata.varga (p95) | {search_api:.1f} ms | SQL {search_sql:.1f} ms | "
            f"{search_api / max(search_sql, 1e-9):.1f}x | < 50 ms |",
            f"| 6 | GET /api/customers?search=Márta Papp 1234 (p95) | {name_api:.1f} ms | SQL {name_sql:.1f} ms | "
            f"{name_api / max(name_sql, 1e-9):.1f}x | < 50 ms |",
            f"| 6 | GET /api/customers?ordering=-total_spent (p95) | {order_api:.1f} ms | SQL {order_sql:.1f} ms | "
            f"{order_api / max(order_sql, 1e-9):.1f}x | < 50 ms |",
        ]
        return "\n".join(lines)
