"""Row 7: create a tenant (`create_crm_tenant`, its own reported time beyond start-up) against the plain
django-tenants way (CREATE SCHEMA + migrate_schemas of the new schema); and the deploy-time migrate of
many tenants with nothing to apply: the project's `migrate` against plain `migrate_schemas`."""

import re
import subprocess
import sys
import time

from django.conf import settings
from django.core.management import call_command
from django.db import connection, transaction

from bench import data
from bench.context import BASE_DIR
from bench.core import Check, GrowthPoint, Row, median
from crm_project.management.commands.migrate import schemas_behind
from tenancy.models import Domain, Tenant

CREATE_TARGET = "< 1.5 s"
MIGRATE_TARGET = "1,000 tenants < 30 s"


def _manage(ctx, *args):
    started = time.perf_counter()
    process = subprocess.run(
        [_python(), str(BASE_DIR / "manage.py"), *args],
        capture_output=True,
        text=True,
        env=ctx.child_env(DEBUG="false"),
        cwd=BASE_DIR,
        check=False,
    )
    seconds = time.perf_counter() - started
    if process.returncode != 0:
        raise RuntimeError(f"manage.py {' '.join(args)} failed: {process.stderr[-1500:]}")
    return seconds, process.stdout


def _python():
    return sys.executable


def _create_rows(ctx):
    """Our create (the command, as operators run it) against CREATE SCHEMA + migrate_schemas."""
    ours = []
    for number in range(1, ctx.scale.creates + 1):
        slug = f"{ctx.prefix}-c{number:02d}"
        _, output = _manage(
            ctx,
            "create_crm_tenant",
            slug,
            "--domain",
            f"{slug}.localhost",
            "--admin-email",
            f"admin@{slug}.localhost",
            "--admin-password",
            "bench-password-1",
        )
        match = re.search(r"in ([\d.]+) s", output)
        if not match:
            raise RuntimeError(f"create_crm_tenant said: {output!r}")
        ours.append(float(match.group(1)))
    plain = []
    for number in range(1, min(ctx.scale.creates, 3) + 1):
        schema = f"{ctx.prefix}-p{number:02d}".replace("-", "_")
        connection.set_schema_to_public()
        started = time.perf_counter()
        with transaction.atomic():
            tenant = Tenant(schema_name=schema, name=f"Plain {number}")
            tenant.save()
            Domain.objects.create(
                domain=f"{schema.replace('_', '-')}.localhost", tenant=tenant, is_primary=True
            )
            with connection.cursor() as cursor:
                cursor.execute(f'CREATE SCHEMA "{schema}"')
            call_command("migrate_schemas", schema_name=schema, tenant=True, interactive=False, verbosity=0)
        plain.append(time.perf_counter() - started)
        connection.set_schema_to_public()
    ours_s, plain_s = median(ours), median(plain)
    ctx.log(f"row 7 create: create_crm_tenant {ours_s:.2f} s (median of {len(ours)}), plain {plain_s:.2f} s")
    made = Tenant.objects.filter(schema_name__startswith=f"{ctx.prefix}_c".replace("-", "_")).count()
    return Row(
        key="7a",
        workload="create a tenant (create_crm_tenant)",
        unit="s",
        ours=ours_s,
        baseline=plain_s,
        target=CREATE_TARGET,
        rule=lambda o, b, ratio: o < 1.5,
        note=f"median of {len(ours)}, as the command reports it (beyond its start-up); baseline: CREATE SCHEMA "
        f"+ migrate_schemas of the new schema, median of {len(plain)}",
        checks=[Check("tenants created", made, ctx.scale.creates)],
    )


def _tenant_count():
    connection.set_schema_to_public()
    return Tenant.objects.exclude(schema_name="public").count()


def _migrate_at(ctx, count):
    """Grow the database to `count` tenant schemas (clones), then time both migrates."""
    have = _tenant_count()
    if have < count:
        started = time.perf_counter()
        existing = Tenant.objects.filter(schema_name__startswith=f"{ctx.prefix}_m".replace("-", "_")).count()
        data.bulk_tenants_create(prefix=ctx.prefix, count=count - have, start=existing + 1)
        ctx.log(f"row 7: {count - have} tenants cloned in {time.perf_counter() - started:.1f} s")
    ours, _ = _manage(ctx, "migrate", "--noinput", "-v", "0")
    plain, _ = _manage(ctx, "migrate_schemas", "--noinput", "-v", "0")
    startup, _ = _manage(ctx, "check", "--database", "default")
    connection.set_schema_to_public()
    tenants = _tenant_count()
    schemas = list(Tenant.objects.exclude(schema_name="public").values_list("schema_name", flat=True))
    behind = schemas_behind(schemas)
    ctx.log(
        f"row 7 migrate @ {tenants} tenants: ours {ours:.1f} s, migrate_schemas {plain:.1f} s (start-up ~{startup:.1f} s)"
    )
    return ours, plain, startup, tenants, behind


def run(ctx):
    rows, points = [], []
    try:
        rows.append(_create_rows(ctx))
    finally:
        connection.set_schema_to_public()
    counts = ctx.scale.tenants
    for index, count in enumerate(counts):
        ours, plain, startup, tenants, behind = _migrate_at(ctx, count)
        points.append(GrowthPoint("7 migrate, tenants up to date", tenants, ours, plain))
        key = "7" + "bcdefgh"[index]
        per_tenant = (plain - startup) / tenants if tenants else 0
        rows.append(
            Row(
                key=key,
                workload=f"migrate {tenants:,} tenants with nothing to apply",
                unit="s",
                ours=ours,
                baseline=plain,
                target=MIGRATE_TARGET if count == counts[-1] else "(growth)",
                # The target is stated for 1,000 tenants; a smaller last count is extrapolated linearly
                # (start-up included, so the extrapolation errs against us).
                rule=(lambda o, b, ratio, n=tenants: o * max(1.0, 1000 / max(n, 1)) < 30)
                if count == counts[-1]
                else None,
                note=f"both include the command's start-up (~{startup:.1f} s here); migrate_schemas spends "
                f"{per_tenant:.2f} s per tenant beyond it",
                checks=[
                    Check(f"at least {count} tenant schemas", tenants >= count, True),
                    Check("schemas behind the code after migrate", behind, []),
                ],
            )
        )
    settings_note = getattr(settings, "TENANT_MULTIPROCESSING_MAX_PROCESSES", None)
    if settings_note:
        ctx.facts["TENANT_MULTIPROCESSING_MAX_PROCESSES"] = settings_note
    return rows, points
