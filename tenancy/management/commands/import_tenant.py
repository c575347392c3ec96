from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from tenancy.portability import tenant_import


class Command(BaseCommand):
    help = "Create a new tenant from an export made by export_tenant."

    def add_arguments(self, parser):
        parser.add_argument("directory")
        parser.add_argument("--slug", required=True)
        parser.add_argument("--domain", required=True)
        parser.add_argument("--name")

    def handle(self, *args, **options):
        try:
            tenant = tenant_import(
                directory=options["directory"],
                slug=options["slug"],
                domain=options["domain"],
                name=options["name"],
            )
        except ValidationError as exc:
            raise CommandError("; ".join(f"{k}: {m}" for k, ms in exc.message_dict.items() for m in ms))
        self.stdout.write(f"Imported into tenant '{tenant.schema_name}' at {options['domain']}")
