from django.core.management.base import BaseCommand, CommandError

from tenancy.models import Tenant
from tenancy.portability import tenant_export
from tenancy.services import schema_for_slug


class Command(BaseCommand):
    help = "Export all of a tenant's data: one CSV file per table and a manifest.json."

    def add_arguments(self, parser):
        parser.add_argument("slug")
        parser.add_argument("directory")

    def handle(self, *args, **options):
        tenant = Tenant.objects.filter(
            schema_name=schema_for_slug(options["slug"]), is_template=False
        ).first()
        if tenant is None or tenant.schema_name == "public":
            raise CommandError(f"No tenant '{options['slug']}'.")
        manifest = tenant_export(tenant=tenant, directory=options["directory"])
        self.stdout.write(
            f"Exported {len(manifest['tables'])} tables of '{tenant.schema_name}' to {options['directory']}"
        )
