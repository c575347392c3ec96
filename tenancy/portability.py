"""A tenant's data out and in: one CSV file per table plus a manifest, round-tripping exactly.

Export copies every table of the tenant's schema (except the migration records, which the manifest
lists instead) with COPY. Import creates a fresh tenant, empties its tables and copies the files in,
all in one transaction: Django's foreign keys are DEFERRABLE INITIALLY DEFERRED, so table order does
not matter until commit. Identity sequences are then moved past the imported ids.
"""

import json
from pathlib import Path

from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.utils import timezone

from .models import Tenant

FORMAT_VERSION = 1
SKIP_TABLES = {"django_migrations"}


def _tables(schema):
    with connection.cursor() as cursor:
        cursor.execute("SELECT tablename FROM pg_tables WHERE schemaname = %s ORDER BY tablename", [schema])
        return [row[0] for row in cursor.fetchall() if row[0] not in SKIP_TABLES]


def _migrations(schema):
    with connection.cursor() as cursor:
        cursor.execute(f'SELECT app, name FROM "{schema}".django_migrations ORDER BY app, name')
        return [f"{app}.{name}" for app, name in cursor.fetchall()]


def _columns(schema, table):
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = %s AND table_name = %s "
            "ORDER BY ordinal_position",
            [schema, table],
        )
        return [row[0] for row in cursor.fetchall()]


def tenant_export(*, tenant, directory):
    """Write every table of `tenant` to `directory` as CSV (with header) and a manifest.json."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    schema = tenant.schema_name
    tables = {}
    outermost = not connection.in_atomic_block
    with transaction.atomic(), connection.cursor() as cursor:
        if outermost:  # one snapshot for all tables, so the files are consistent with each other
            cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        for table in _tables(schema):
            columns = _columns(schema, table)
            column_list = ", ".join(f'"{c}"' for c in columns)
            rows = 0
            with (directory / f"{table}.csv").open("wb") as out:
                with cursor.cursor.copy(
                    f'COPY (SELECT {column_list} FROM "{schema}"."{table}" ORDER BY 1) TO STDOUT WITH (FORMAT csv, HEADER)'
                ) as copy:
                    for chunk in copy:
                        out.write(chunk)
                        rows += bytes(chunk).count(b"\n")
            tables[table] = {"columns": columns}
    manifest = {
        "format": FORMAT_VERSION,
        "tenant": {"schema": schema, "name": tenant.name},
        "exported_at": timezone.now().isoformat(),
        "migrations": _migrations(schema),
        "tables": tables,
    }
    (directory / "manifest.json").write_text(json.dumps(manifest, indent=2))
    return manifest


def tenant_import(*, directory, slug, domain, name=None):
    """Create a new tenant from an export. The code must be at the export's migration state."""
    from .services import tenant_create

    directory = Path(directory)
    try:
        manifest = json.loads((directory / "manifest.json").read_text())
    except (OSError, ValueError) as exc:
        raise ValidationError({"directory": f"No readable manifest.json in {directory}: {exc}"})
    if manifest.get("format") != FORMAT_VERSION:
        raise ValidationError({"directory": f"Unsupported export format {manifest.get('format')!r}."})
    missing = [t for t in manifest["tables"] if not (directory / f"{t}.csv").exists()]
    if missing:
        raise ValidationError({"directory": f"Missing table files: {', '.join(missing)}"})

    with transaction.atomic():
        created = tenant_create(slug=slug, domain=domain, name=name or manifest["tenant"]["name"])
        schema = created.tenant.schema_name
        if _migrations(schema) != manifest["migrations"]:
            raise ValidationError(
                {"directory": "The export was made at another migration state; migrate first."}
            )
        tables = _tables(schema)
        unknown = set(manifest["tables"]) - set(tables)
        if unknown:
            raise ValidationError({"directory": f"Tables not in this version: {', '.join(sorted(unknown))}"})
        with connection.cursor() as cursor:
            # Check what provisioning wrote (TRUNCATE refuses pending checks), then defer for the load.
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
            cursor.execute("TRUNCATE " + ", ".join(f'"{schema}"."{t}"' for t in tables) + " CASCADE")
            cursor.execute("SET CONSTRAINTS ALL DEFERRED")
            for table, spec in manifest["tables"].items():
                column_list = ", ".join(f'"{c}"' for c in spec["columns"])
                with (directory / f"{table}.csv").open("rb") as source:
                    with cursor.cursor.copy(
                        f'COPY "{schema}"."{table}" ({column_list}) FROM STDIN WITH (FORMAT csv, HEADER)'
                    ) as copy:
                        while chunk := source.read(1 << 20):
                            copy.write(chunk)
            cursor.execute(
                """
                SELECT cl.relname, a.attname FROM pg_attribute a
                JOIN pg_class cl ON cl.oid = a.attrelid JOIN pg_namespace ns ON ns.oid = cl.relnamespace
                WHERE ns.nspname = %s AND cl.relkind = 'r' AND a.attidentity IN ('a', 'd')
                """,
                [schema],
            )
            for table, column in cursor.fetchall():
                cursor.execute(
                    f'SELECT setval(pg_get_serial_sequence(%s, %s), COALESCE(MAX("{column}"), 0) + 1, false) '
                    f'FROM "{schema}"."{table}"',
                    [f'"{schema}"."{table}"', column],
                )
    connection.set_schema_to_public()
    return Tenant.objects.get(pk=created.tenant.pk)
