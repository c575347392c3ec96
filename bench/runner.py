"""One run of the suite: scratch tenants, data growing through the sizes, every row, the results."""

import tempfile
import time
import traceback
from pathlib import Path

from django.db import connection

from bench import data, results
from bench.context import SCALES, Context
from bench.core import Report, Row
from bench.workloads import (
    w1_import,
    w2_segment,
    w3_freeze,
    w4_send,
    w5_tracking,
    w6_customers_api,
    w7_tenants,
    w8_stats,
    w9_flows,
    w10_attribution,
    w11_periodic,
    w12_design,
)

ALL_ROWS = (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12)
GROWTH_ROWS = (1, 2, 3, 6)
RESULTS_DIR = Path(__file__).resolve().parent / "results"


def _guard(report, ctx, key, workload, fn):
    """Run one workload; a crash becomes an `error` row naming the exception, and the run goes on."""
    try:
        return fn()
    except Exception as exc:  # the table must still be written with what did run
        ctx.log(f"row {key} failed: {exc!r}")
        traceback.print_exc()
        _reconnect()
        report.add(Row(key=key, workload=workload, status="error", note=f"{type(exc).__name__}: {exc}"[:300]))
        return None


def run(
    *,
    scale="small",
    only=None,
    sizes=None,
    tenants=None,
    import_sizes=None,
    idle_tenants=None,
    out_dir=None,
    prefix="bench",
    keep=False,
    reuse=False,
    verbose=True,
    work_dir=None,
):
    """Run the rows in `only` (all by default) at `scale`; returns the Report (and writes it to out_dir)."""
    config = SCALES[scale]
    if sizes:
        config.sizes = sorted(sizes)
    if tenants:
        config.tenants = sorted(tenants)
    if idle_tenants:
        config.idle_tenants = sorted(idle_tenants)
    selected = set(only or ALL_ROWS)
    config.import_sizes = sorted(import_sizes) if import_sizes else list(config.sizes)
    work = Path(work_dir or tempfile.mkdtemp(prefix="crm-bench-"))
    ctx = Context(scale=config, prefix=prefix, work_dir=work, verbose=verbose)
    report = Report(scale=scale)
    started = time.monotonic()
    ctx.log(f"scale {scale}: sizes {config.sizes}, rows {sorted(selected)}, scratch tenants '{prefix}-*'")
    if reuse:
        reused = data.scratch_tenants_drop_but_reusable(prefix=prefix)
        ctx.log(
            f"reusing {reused} scratch tenants of an earlier --keep run (the data tenant, row 11's idle ones)"
        )
    else:
        data.scratch_tenants_drop(prefix=prefix)
    try:
        _run_rows(ctx, report, selected)
    finally:
        # The results first: a database that went away during the last row must not cost the table.
        _reconnect()
        report.seconds = time.monotonic() - started
        report.rows.sort(key=lambda row: (int("".join(ch for ch in row.key if ch.isdigit())), row.key))
        if out_dir is not None:
            results.write(report, ctx, Path(out_dir))
        if not keep:
            for attempt in range(5):
                try:
                    dropped = data.scratch_tenants_drop(prefix=prefix)
                    _outbox_clean(prefix)
                    ctx.log(f"dropped {dropped} scratch tenants")
                    break
                except Exception as exc:  # e.g. PostgreSQL restarting: wait and try again
                    ctx.log(f"clean-up failed ({exc!r}), retrying")
                    time.sleep(3 * (attempt + 1))
                    _reconnect()
    return report


def _reconnect():
    """After a failure the connection may be dead (a restarted server): the next query opens a new one."""
    try:
        connection.close()
    except Exception:
        pass
    try:
        connection.set_schema_to_public()
    except Exception:
        pass


def _outbox_clean(prefix):
    data.outbox_delete(prefix=prefix)


def _run_rows(ctx, report, selected):
    config = ctx.scale
    needs_data = selected & {2, 3, 4, 5, 6, 8, 9, 10, 12}
    if needs_data:
        slug = data.tenant_slug(ctx.prefix, "data")
        tenant = data.scratch_tenant_find(slug=slug) or data.scratch_tenant_create(slug=slug, with_admin=True)
        ctx.data_schema = tenant.schema_name
        ctx.data_domain = tenant.get_primary_domain().domain
        ctx.token = data.admin_token(tenant.schema_name)
    import_schema = None
    if 1 in selected:
        import_schema = data.scratch_tenant_create(slug=data.tenant_slug(ctx.prefix, "import")).schema_name

    largest = config.sizes[-1]
    for size in config.sizes:
        main = size == largest
        if needs_data:
            seconds = data.customers_grow(schema=ctx.data_schema, size=size)
            ctx.log(f"data tenant grown to {size:,} customers in {seconds:.1f} s")
        if import_schema and size in config.import_sizes:
            main_import = size == config.import_sizes[-1]
            outcome = _guard(
                report,
                ctx,
                "1",
                "import customers from CSV",
                lambda s=size, m=main_import: w1_import.run(ctx, schema=import_schema, size=s, main=m),
            )
            _collect(report, outcome)
        if 2 in selected:
            outcome = _guard(
                report,
                ctx,
                "2",
                "count a 4-condition segment",
                lambda s=size, m=main: w2_segment.run(ctx, size=s, main=m),
            )
            _collect(report, outcome)
        if 3 in selected:
            outcome = _guard(
                report,
                ctx,
                "3",
                "freeze a campaign's audience",
                lambda s=size, m=main: w3_freeze.run(ctx, size=s, main=m),
            )
            _collect(report, outcome)
        if 6 in selected:
            outcome = _guard(
                report,
                ctx,
                "6",
                "GET /api/customers",
                lambda s=size, m=main: w6_customers_api.run(ctx, size=s, main=m),
            )
            _collect(report, outcome)
    if 8 in selected:
        row = _guard(report, ctx, "8", "campaign stats", lambda: w8_stats.run(ctx, size=largest))
        if row is not None:
            report.add(row)
    if 12 in selected:
        row = _guard(report, ctx, "12", "render a block template", lambda: w12_design.run(ctx))
        if row is not None:
            report.add(row)
    if 10 in selected:
        rows = _guard(
            report, ctx, "10", "order ingest with attribution", lambda: w10_attribution.run(ctx, size=largest)
        )
        for row in rows or []:
            report.add(row)
    if 4 in selected:
        rows = _guard(report, ctx, "4", "deliver personalised messages", lambda: w4_send.run(ctx))
        for row in rows or []:
            report.add(row)
    if 9 in selected:
        rows = _guard(report, ctx, "9", "flows", lambda: w9_flows.run(ctx))
        for row in rows or []:
            report.add(row)
    if 5 in selected:
        rows = _guard(report, ctx, "5", "open and click endpoints under load", lambda: w5_tracking.run(ctx))
        for row in rows or []:
            report.add(row)
    if 7 in selected:
        outcome = _guard(report, ctx, "7", "create and migrate tenants", lambda: w7_tenants.run(ctx))
        if outcome is not None:
            rows, points = outcome
            for row in rows:
                report.add(row)
            report.growth.extend(points)
    if 11 in selected:
        outcome = _guard(report, ctx, "11", "periodic work with idle tenants", lambda: w11_periodic.run(ctx))
        if outcome is not None:
            rows, points = outcome
            for row in rows:
                report.add(row)
            report.growth.extend(points)


def _collect(report, outcome):
    if outcome is None:
        return
    points, rows = outcome
    points = points if isinstance(points, list) else [points]
    rows = rows if isinstance(rows, list) else ([rows] if rows is not None else [])
    report.growth.extend(points)
    for row in rows:
        report.add(row)
