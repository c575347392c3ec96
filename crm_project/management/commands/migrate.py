"""`migrate`: django-tenants' migrate_schemas, minus the tenants that have nothing to apply, and the
public (operators') tenant for PUBLIC_DOMAIN, so a fresh deployment serves its public host.

migrate_schemas spends ~0.16 s per schema even when nothing is pending (it builds a migration
executor per schema); with hundreds of tenants a deploy waits minutes for nothing. One SQL query
finds the schemas whose applied migrations differ from the code's, and only those are migrated.
"""

from django.db import connection
from django.db.migrations.loader import MigrationLoader
from django_tenants.management.commands.migrate_schemas import MigrateSchemasCommand
from django_tenants.utils import get_public_schema_name, get_tenant_model

from tenancy.services import public_tenant_ensure


def schemas_behind(schemas):
    """The schemas among `schemas` that lack a migration the code has (or have no migrations table)."""
    if not schemas:
        return []
    expected = sorted(
        f"{app}.{name}" for app, name in MigrationLoader(None, ignore_no_migrations=True).graph.nodes
    )
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT table_schema FROM information_schema.tables "
            "WHERE table_name = 'django_migrations' AND table_schema = ANY(%s)",
            [list(schemas)],
        )
        with_table = {row[0] for row in cursor.fetchall()}
        behind = [schema for schema in schemas if schema not in with_table]
        present = [schema for schema in schemas if schema in with_table]
        for start in range(0, len(present), 200):
            chunk = present[start : start + 200]
            union = " UNION ALL ".join(
                f"SELECT %s, count(*) FROM {connection.ops.quote_name(schema)}.django_migrations "
                f"WHERE app || '.' || name = ANY(%s)"
                for schema in chunk
            )
            params = [value for schema in chunk for value in (schema, expected)]
            cursor.execute(union, params)
            behind += [schema for schema, applied in cursor.fetchall() if applied < len(expected)]
    return behind


class Command(MigrateSchemasCommand):
    help = "Migrate the public schema, then only the tenant schemas that have migrations to apply."

    def handle(self, *args, **options):
        targeted = options.get("app_label") or options.get("schema_name") or options.get("fake")
        targeted = targeted or options.get("plan") or options.get("check_unapplied") or options.get("prune")
        if targeted or options.get("shared") or options.get("tenant"):
            return super().handle(*args, **options)
        super().handle(*args, **{**options, "shared": True, "tenant": False})
        public_tenant_ensure()
        public = get_public_schema_name()
        schemas = list(
            get_tenant_model().objects.exclude(schema_name=public).values_list("schema_name", flat=True)
        )
        behind = schemas_behind(schemas)
        if options.get("verbosity", 1) >= 1:
            self.stdout.write(f"{len(schemas) - len(behind)} of {len(schemas)} tenant schemas are up to date")
        for schema in behind:
            super().handle(*args, **{**options, "shared": False, "tenant": True, "schema_name": schema})
