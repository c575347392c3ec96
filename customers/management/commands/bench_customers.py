"""python manage.py bench_customers --rows 1000000: BENCHMARKS.md rows 1 and 6 in a throwaway tenant.

(The project-wide harness, `python -m bench`, runs the same rows among all others; this command is the
customers app's own quick check, with the importer's per-phase timings.)
"""

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

# Customers like the generated CSV's, written in SQL (for --skip-import).
FILL_SQL = """
INSERT INTO {table} (email, external_id, first_name, last_name, phone, city, country, attributes,
                     email_marketing, email_transactional, total_spent, order_count, created_at, updated_at)
SELECT lower(translate(f || '.' || l, 'áéíóöőúüű', 'aeiooouuu')) || '.' || g || '@example' || (g %% 97) || '.com',
       'ws-' || g, f, l, '+3630' || (1000000 + (g * 7919) %% 8999999), c, 'HU', '{{}}', g %% 5 < 3, true, 0, 0, now(), now()
  FROM generate_series(0::bigint, %s::bigint - 1) AS g,
       LATERAL (SELECT (ARRAY[{first}])[1 + (g * 31) %% 20] AS f, (ARRAY[{last}])[1 + (g / 20 * 7) %% 20] AS l,
                       (ARRAY[{cities}])[1 + (g * 13) %% 12] AS c) AS names
"""


def _array(words):
    return ", ".join("'" + word + "'" for word in words)


class Command(BaseCommand):
    help = "Benchmark the customers import (vs raw COPY) and list search/ordering (vs SQL) at N customers."

    def add_arguments(self, parser):
        parser.add_argument("--rows", type=int, default=100_000)
        parser.add_argument("--keep", action="store_true", help="Keep the benchmark tenant afterwards.")
        parser.add_argument("--output", help="Also write the result table (Markdown) to this file.")
        parser.add_argument(
            "--skip-import",
            action="store_true",
            help="Only row 6: fill the tenant in SQL instead of importing.",
        )

    def handle(self, *args, rows, keep=False, output=None, skip_import=False, **options):
        slug = f"bench-customers-{int(time.time())}"
        created = tenant_create(slug=slug, domain=f"{slug}.localhost", name="Customers benchmark")
        schema = created.tenant.schema_name
        self.lines = [
            f"Customers benchmarks at {rows:,} customers",
            "",
            "| # | workload | ours | baseline | ratio | target |",
            "|---|---|---|---|---|---|",
        ]
        try:
            self._run(schema, created.domain.domain, rows, skip_import)
        finally:
            table = "\n".join(self.lines)
            self.stdout.write(table)
            if output:
                Path(output).write_text(table + "\n", encoding="utf-8")
            if not keep:
                connection.set_schema_to_public()
                with connection.cursor() as cursor:
                    cursor.execute(f'DROP SCHEMA "{schema}" CASCADE')
                OutboxEvent.objects.filter(tenant=schema).delete()
                Domain.objects.filter(tenant__schema_name=schema).delete()
                Tenant.objects.filter(schema_name=schema).delete()

    def _row(self, line):
        self.lines.append(line)
        self.stderr.write(line)

    def _run(self, schema, host, rows, skip_import):
        table = Customer._meta.db_table
        with tempfile.TemporaryDirectory() as tmp, schema_context(schema):
            if skip_import:
                with connection.cursor() as cursor:
                    sql = FILL_SQL.format(
                        table=table,
                        first=_array(benchmarks.FIRST),
                        last=_array(benchmarks.LAST),
                        cities=_array(benchmarks.CITIES),
                    )
                    cursor.execute(sql, [rows])
            else:
                self._import(Path(tmp), rows)
            with connection.cursor() as cursor:
                # Give the ordering something to order by, then fresh statistics.
                cursor.execute(
                    f"UPDATE {table} SET total_spent = round((random() * 5000)::numeric, 2), "
                    "order_count = 1 WHERE random() < 0.4"
                )
                cursor.execute(f"VACUUM ANALYZE {table}")
            user = get_user_model().objects.create_user(
                username="bench@example.com", password="bench-password-1"
            )
            client = APIClient(HTTP_HOST=host)
            client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
            for label, path, sql, params in (
                (
                    "search=kata.varga (an email fragment)",
                    "/api/customers?search=kata.varga",
                    f"SELECT * FROM {table} WHERE {SEARCH_SQL} LIKE %s ORDER BY id DESC LIMIT 50",
                    ["%kata.varga%"],
                ),
                (
                    "search=Márta Papp 1234 (name words, phone digits)",
                    "/api/customers?search=M%C3%A1rta%20Papp%201234",
                    f"SELECT * FROM {table} WHERE {SEARCH_SQL} LIKE %s AND {SEARCH_SQL} LIKE %s "
                    f"AND {SEARCH_SQL} LIKE %s ORDER BY id DESC LIMIT 50",
                    ["%márta%", "%papp%", "%1234%"],
                ),
                (
                    "ordering=-total_spent",
                    "/api/customers?ordering=-total_spent",
                    f"SELECT * FROM {table} ORDER BY total_spent DESC, id DESC LIMIT 50",
                    [],
                ),
            ):
                api, raw, api_median, raw_median = benchmarks.bench_list(
                    client=client, path=path, sql=sql, params=params
                )
                self._row(
                    f"| 6 | GET /api/customers?{label}: p95 (median) | {api:.1f} ms ({api_median:.1f}) | "
                    f"SQL page {raw:.1f} ms ({raw_median:.1f}) | {api / max(raw, 1e-9):.1f}x | p95 < 50 ms |"
                )

    def _import(self, tmp, rows):
        path = benchmarks.customers_csv_generate(path=tmp / "customers.csv", rows=rows)
        result = benchmarks.bench_import(path=path, rows=rows)
        raw = result["raw"]
        plain, plain_report = result["without_events"]
        ours, report = result["with_events"]
        self.stderr.write(f"raw COPY runs (rows/s): {result['raw_runs']}")
        self.stderr.write(f"import without events: {plain_report.as_dict()}")
        self.stderr.write(f"import with events: {report.as_dict()}")
        self._row(
            f"| 1 | import {rows:,} customers (CSV), events on (default) | {ours:,.0f} rows/s | "
            f"raw COPY {raw:,.0f} rows/s | {ours / raw:.0%} | >= 60% |"
        )
        self._row(
            f"| 1 | import {rows:,} customers (CSV), --no-events | {plain:,.0f} rows/s | "
            f"raw COPY {raw:,.0f} rows/s | {plain / raw:.0%} | >= 60% |"
        )
