"""Row 1: import N customers from CSV with the product's importer, against COPY of the same file into
an identically indexed bare table (LIKE customers_customer INCLUDING ALL)."""

import json
import subprocess
import sys
import time

from django.db import connection
from django_tenants.utils import schema_context

from bench import data
from bench.core import Check, GrowthPoint, Row

BASELINE_TABLE = "bench_copy_baseline"
TARGET = "≥ 60% of baseline rows/s"


def _reset(schema):
    with schema_context(schema), connection.cursor() as cursor:
        cursor.execute(
            "TRUNCATE customers_customertag, customers_customer_address, customers_interaction, "
            "customers_orderitem, customers_order, campaign_recipients, segments_segmentmember, "
            "customers_customer, customers_tag CASCADE"
        )
    connection.set_schema_to_public()
    data.outbox_delete(tenants=[schema])


def _baseline_copy(schema, path):
    """COPY the file into a bare table with every column, constraint and index of the customers table."""
    data.setup_timeout()  # a baseline of 1M rows, no web request
    columns = ", ".join(data.CSV_COLUMNS)
    with schema_context(schema), connection.cursor() as cursor:
        cursor.execute(f"DROP TABLE IF EXISTS {BASELINE_TABLE}")
        cursor.execute(f"CREATE TABLE {BASELINE_TABLE} (LIKE customers_customer INCLUDING ALL)")
        cursor.execute(f"ALTER TABLE {BASELINE_TABLE} ADD COLUMN tags text")
        # Django keeps its defaults in Python; the bare table needs them in SQL for COPY.
        for column, default in (
            ("attributes", "'{}'::jsonb"),
            ("email_transactional", "true"),
            ("total_spent", "0"),
            ("order_count", "0"),
            ("created_at", "now()"),
            ("updated_at", "now()"),
        ):
            cursor.execute(f"ALTER TABLE {BASELINE_TABLE} ALTER COLUMN {column} SET DEFAULT {default}")
        started = time.perf_counter()
        with (
            open(path, "rb") as handle,
            cursor.cursor.copy(
                f"COPY {BASELINE_TABLE} ({columns}) FROM STDIN WITH (FORMAT csv, HEADER true)"
            ) as copy,
        ):
            while chunk := handle.read(1 << 20):
                copy.write(chunk)
        seconds = time.perf_counter() - started
        cursor.execute(f"SELECT count(*) FROM {BASELINE_TABLE}")
        copied = cursor.fetchone()[0]
        cursor.execute(f"DROP TABLE {BASELINE_TABLE}")
    return seconds, copied


def _ours(ctx, schema, path):
    process = subprocess.run(
        [sys.executable, "-m", "bench.child", "import", schema, str(path)],
        capture_output=True,
        text=True,
        env=ctx.child_env(),
        check=False,
    )
    if process.returncode != 0:
        raise RuntimeError(f"import child failed: {process.stderr[-2000:]}")
    return json.loads(process.stdout.strip().splitlines()[-1])


def run(ctx, *, schema, size, main):
    """Import `size` rows into the (emptied) import tenant; returns (GrowthPoint, Row or None)."""
    path = ctx.work_dir / f"customers-{size}.csv"
    if not path.exists():
        data.csv_write(path=path, rows=size)
    _reset(schema)
    base_seconds, copied = _baseline_copy(schema, path)
    result = _ours(ctx, schema, path)
    in_table = data.customers_count(schema)
    _reset(schema)  # a million imported customers are not needed again
    ours_rate, base_rate = size / result["seconds"], size / base_seconds
    point = GrowthPoint("1 import", size, result["seconds"], base_seconds, result["peak_rss_mb"])
    ctx.log(
        f"row 1 @ {size:,}: importer {result['seconds']:.2f} s ({ours_rate:,.0f} rows/s, peak RSS "
        f"{result['peak_rss_mb']:.0f} MB), COPY {base_seconds:.2f} s ({base_rate:,.0f} rows/s)"
    )
    if not main:
        return point, None
    row = Row(
        key="1",
        workload=f"import {size:,} customers from CSV",
        unit="rows/s",
        ours=ours_rate,
        baseline=base_rate,
        sense="higher",
        target=TARGET,
        rule=lambda ours, base, ratio: ratio >= 0.6,
        note=f"peak RSS of the import process {result['peak_rss_mb']:.0f} MB",
        checks=[
            Check("rows read", result["rows"], size),
            Check("customers created", result["created"], size),
            Check("rows failed", result["failed"], 0),
            Check("customers in the table", in_table, size),
            Check("rows copied by the baseline", copied, size),
        ],
    )
    return point, row
