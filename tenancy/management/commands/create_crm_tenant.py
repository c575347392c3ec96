import sys

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from tenancy.services import tenant_create


class Command(BaseCommand):
    help = "Create a working tenant: schema (cloned from the template, then migrated), domain, first admin."

    def add_arguments(self, parser):
        parser.add_argument("slug", help="lower-case letters, digits and '-'; becomes the schema name")
        parser.add_argument("--domain", required=True, help="host name, e.g. acme.example.com")
        parser.add_argument("--name", help="display name (default: from the slug)")
        parser.add_argument("--admin-email", help="first admin user (its username is the email)")
        parser.add_argument("--admin-password")

    def handle(self, *args, **options):
        if options["admin_email"] and not options["admin_password"]:
            raise CommandError("--admin-password is required with --admin-email")
        try:
            created = tenant_create(
                slug=options["slug"],
                domain=options["domain"],
                name=options["name"],
                admin_email=options["admin_email"],
                admin_password=options["admin_password"],
            )
        except ValidationError as exc:
            messages = [f"{field}: {msg}" for field, msgs in exc.message_dict.items() for msg in msgs]
            raise CommandError("; ".join(messages))
        out = self.stdout if self.stdout else sys.stdout
        out.write(
            f"Created tenant '{created.tenant.schema_name}' at {created.domain.domain} "
            f"in {created.seconds:.2f} s" + (f"; admin {created.admin_email}" if created.admin_email else "")
        )
