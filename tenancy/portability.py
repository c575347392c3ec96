"""A tenant's data out and in: one CSV file per table plus a manifest, round-tripping exactly.

Export copies every table of the tenant's schema (except the migration records, which the manifest
lists instead) with COPY. Import creates a fresh tenant, empties its tables and copies the files in,
all in one transaction: Django's foreign keys are DEFERRABLE INITIALLY DEFERRED, so table order does
not matter until commit. Identity sequences are then moved past the imported ids.

An export holds password hashes, API tokens and personal data: its directory is private (0700) and
its files too (0600). A manifest is input from outside: every table and column it names must exist in
the freshly migrated schema before any statement uses it, and every identifier goes into SQL through
psycopg's `sql.Identifier`, never by string formatting (a column name must not turn COPY into
`COPY ... FROM PROGRAM`).
"""

import json
import os
from pathlib import Path

import psycopg
from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.utils import timezone
from psycopg import sql

from .models import Tenant
from .services import tenant_create
from .work import work_sweep

FORMAT_VERSION = 1
SKIP_TABLES = {"django_migrations"}
PRIVATE_DIRECTORY_MODE = 0o700
PRIVATE_FILE_MODE = 0o600


def _tables(cursor, schema):
    cursor.execute("SELECT tablename FROM pg_tables WHERE schemaname = %s ORDER BY tablename", [schema])
    return [row[0] for row in cursor.fetchall() if row[0] not in SKIP_TABLES]


def _migrations(cursor, schema):
    cursor.execute(
        sql.SQL("SELECT app, name FROM {}.django_migrations ORDER BY app, name").format(
            sql.Identifier(schema)
        )
    )
    return [f"{app}.{name}" for app, name in cursor.fetchall()]


def _columns(cursor, schema):
    """{table: [column, ...]} of every table of `schema`, in column order."""
    cursor.execute(
        "SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = %s "
        "ORDER BY table_name, ordinal_position",
        [schema],
    )
    columns = {}
    for table, column in cursor.fetchall():
        columns.setdefault(table, []).append(column)
    return columns


def _table(schema, table):
    return sql.Identifier(schema, table)


def _column_list(columns):
    return sql.SQL(", ").join(sql.Identifier(column) for column in columns)


def _private_directory(directory):
    directory.mkdir(parents=True, exist_ok=True, mode=PRIVATE_DIRECTORY_MODE)
    os.chmod(directory, PRIVATE_DIRECTORY_MODE)  # mkdir's mode passes through the umask; an old one too


def _private_file(path):
    """`path` opened for binary writing, created 0600 (never readable by others, not even for a moment)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, PRIVATE_FILE_MODE)
    os.fchmod(fd, PRIVATE_FILE_MODE)  # a file left by an earlier export keeps its mode otherwise
    return os.fdopen(fd, "wb")


def tenant_export(*, tenant, directory):
    """Write every table of `tenant` to `directory` as CSV (with header) and a manifest.json."""
    directory = Path(directory)
    _private_directory(directory)
    schema = tenant.schema_name
    tables = {}
    outermost = not connection.in_atomic_block
    with transaction.atomic(), connection.cursor() as wrapper:
        cursor = wrapper.cursor  # psycopg's own cursor: it takes composed SQL and COPY
        if outermost:  # one snapshot for all tables, so the files are consistent with each other
            cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        columns = _columns(cursor, schema)
        for table in _tables(cursor, schema):
            query = sql.SQL("COPY (SELECT {} FROM {} ORDER BY 1) TO STDOUT WITH (FORMAT csv, HEADER)").format(
                _column_list(columns[table]), _table(schema, table)
            )
            with _private_file(directory / f"{table}.csv") as out, cursor.copy(query) as copy:
                for chunk in copy:
                    out.write(chunk)
            tables[table] = {"columns": columns[table]}
        migrations = _migrations(cursor, schema)
    manifest = {
        "format": FORMAT_VERSION,
        "tenant": {"schema": schema, "name": tenant.name},
        "exported_at": timezone.now().isoformat(),
        "migrations": migrations,
        "tables": tables,
    }
    with _private_file(directory / "manifest.json") as out:
        out.write(json.dumps(manifest, indent=2).encode())
    return manifest


def _refuse(message):
    raise ValidationError({"directory": message})


def _manifest_read(directory):
    """The manifest's parts, checked for shape (not yet against the schema)."""
    try:
        manifest = json.loads((directory / "manifest.json").read_text())
    except (OSError, ValueError) as exc:
        _refuse(f"No readable manifest.json in {directory}: {exc}")
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT_VERSION:
        _refuse(
            f"Unsupported export format {manifest.get('format') if isinstance(manifest, dict) else None!r}."
        )
    tables = manifest.get("tables")
    if not isinstance(tables, dict) or not tables:
        _refuse('The manifest\'s `tables` must be an object of table name -> {"columns": [...]}.')
    for table, spec in tables.items():
        columns = spec.get("columns") if isinstance(spec, dict) else None
        if not isinstance(columns, list) or not columns or not all(isinstance(c, str) for c in columns):
            _refuse(f"The manifest's columns of {table!r} must be a list of column names.")
        if len(set(columns)) != len(columns):
            _refuse(f"The manifest names a column of {table!r} twice.")
    migrations = manifest.get("migrations")
    if not isinstance(migrations, list):
        _refuse("The manifest's `migrations` must be a list.")
    name = (manifest.get("tenant") or {}).get("name") if isinstance(manifest.get("tenant"), dict) else None
    if name is not None and not isinstance(name, str):
        _refuse("The manifest's tenant name must be a string.")
    return tables, migrations, name


def _manifest_check(tables, schema_columns):
    """Every table and column the manifest names exists in the migrated schema (else a ValidationError)."""
    unknown = sorted(table for table in tables if table not in schema_columns)
    if unknown:
        _refuse(f"The manifest names unknown tables: {', '.join(repr(t) for t in unknown)}.")
    for table, spec in tables.items():
        unknown = [column for column in spec["columns"] if column not in schema_columns[table]]
        if unknown:
            _refuse(f"The manifest names unknown columns of {table}: {', '.join(repr(c) for c in unknown)}.")


def tenant_import(*, directory, slug, domain, name=None):
    """Create a new tenant from an export. The code must be at the export's migration state."""
    directory = Path(directory)
    tables, migrations, exported_name = _manifest_read(directory)

    with transaction.atomic():
        created = tenant_create(slug=slug, domain=domain, name=name or exported_name)
        schema = created.tenant.schema_name
        with connection.cursor() as wrapper:
            cursor = wrapper.cursor
            if _migrations(cursor, schema) != migrations:
                _refuse("The export was made at another migration state; migrate first.")
            tables_here = _tables(cursor, schema)
            schema_columns = {t: c for t, c in _columns(cursor, schema).items() if t in tables_here}
            _manifest_check(tables, schema_columns)
            # Only names checked above reach the file system and SQL from here on.
            missing = [table for table in tables if not (directory / f"{table}.csv").is_file()]
            if missing:
                _refuse(f"Missing table files: {', '.join(missing)}")
            # Check what provisioning wrote (TRUNCATE refuses pending checks), then defer for the load.
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
            cursor.execute(
                sql.SQL("TRUNCATE {} CASCADE").format(
                    sql.SQL(", ").join(_table(schema, table) for table in schema_columns)
                )
            )
            cursor.execute("SET CONSTRAINTS ALL DEFERRED")
            for table, spec in tables.items():
                query = sql.SQL("COPY {} ({}) FROM STDIN WITH (FORMAT csv, HEADER)").format(
                    _table(schema, table), _column_list(spec["columns"])
                )
                try:
                    with (directory / f"{table}.csv").open("rb") as source, cursor.copy(query) as copy:
                        while chunk := source.read(1 << 20):
                            copy.write(chunk)
                except psycopg.Error as exc:
                    _refuse(f"{table}.csv could not be loaded: {str(exc).strip()}")
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
                    sql.SQL(
                        "SELECT setval(pg_get_serial_sequence(%s, %s), COALESCE(MAX({}), 0) + 1, false) FROM {}"
                    ).format(sql.Identifier(column), _table(schema, table)),
                    [_table(schema, table).as_string(cursor), column],
                )
    connection.set_schema_to_public()
    tenant = Tenant.objects.get(pk=created.tenant.pk)
    # The imported data's periodic work (scheduled campaigns, hits to roll up) gets its markers now,
    # not at the next hourly sweep.
    work_sweep(tenants=[tenant])
    return tenant
